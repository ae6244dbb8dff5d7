// Package posthogtest gives tests the shared PostHog user journey in every shape a raw topic can carry:
// the fixtures as they are, shapes derived from them (older capture output, batch-export rows, capture
// arrays and single-event bodies) and the capture bodies encoded as SDKs send them (gzip, base64).
package posthogtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/testkit/cputime"
)

// CaptureLatency is the journey's clock: capture received every request this long after the client
// sent it, without clock skew.
const CaptureLatency = 85 * time.Millisecond

// Session, AnonID and UserID are the journey's session and the person's ids before and after $identify.
const (
	Session = "01959426-703f-7f3a-b1ec-ebbd1410ab41"
	AnonID  = "01959426-703e-763a-8dbe-41488fb87214"
	UserID  = "usr_2Qm8xK4p"
	Token   = "phc_Xq4T7mVb2LkP9sWcY3nH8dRf6JzA1eGuKo5iMtBw0Nv"
	Events  = 19
)

// ProcessingTime is when tests pretend to consume a message: later than every journey event.
func ProcessingTime() time.Time { return time.Date(2025, 3, 14, 10, 20, 0, 0, time.UTC) }

// Message is one raw-topic message value and the time it is processed at (the server receive time for
// raw capture bodies).
type Message struct {
	Value []byte
	Now   time.Time
}

// Shape is the journey in one shape. Shape is the name Decode gives it (posthog.Shape's value).
type Shape struct {
	Name     string
	Shape    string
	Messages []Message
}

// Dir is where the journey fixtures are, seen from a package directory two levels below the module
// root (pkg/<name>).
func Dir() string { return filepath.Join("..", "..", "testdata", "posthog") }

// ReadLines returns the non-empty, non-comment lines of a JSONL file.
func ReadLines(tb testing.TB, path string) [][]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 || sc.Bytes()[0] == '#' {
			continue
		}
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustObject(tb testing.TB, b []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// RequestNow is the server receive time of a journey capture request: its sent_at plus the latency.
func RequestNow(tb testing.TB, request []byte) time.Time {
	tb.Helper()
	sentAt, _ := mustObject(tb, request)["sent_at"].(string)
	sent, err := time.Parse(time.RFC3339Nano, sentAt)
	if err != nil {
		tb.Fatal(err)
	}
	return sent.Add(CaptureLatency)
}

// clickHouseTime reads ClickHouse DateTime64 text (UTC).
func clickHouseTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func isoMicros(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000+00:00") }

// Journey returns the journey in every shape Decode reads, the reference shape
// (events_plugin_ingestion) first.
func Journey(tb testing.TB, dir string) []Shape {
	tb.Helper()
	var shapes []Shape
	add := func(name, shape string, msgs []Message) {
		shapes = append(shapes, Shape{Name: name, Shape: shape, Messages: msgs})
	}
	asIs := func(lines [][]byte) []Message {
		var out []Message
		for _, l := range lines {
			out = append(out, Message{Value: l, Now: ProcessingTime()})
		}
		return out
	}

	plugin := ReadLines(tb, filepath.Join(dir, "journey_kafka_events_plugin_ingestion.jsonl"))
	add("events_plugin_ingestion", "events_plugin_ingestion", asIs(plugin))

	var legacy []Message
	for _, l := range plugin {
		m := mustObject(tb, l)
		delete(m, "event")
		delete(m, "timestamp")
		legacy = append(legacy, Message{Value: mustJSON(tb, m), Now: ProcessingTime()})
	}
	add("events_plugin_ingestion_legacy", "events_plugin_ingestion", legacy)

	ch := ReadLines(tb, filepath.Join(dir, "journey_kafka_clickhouse_events_json.jsonl"))
	add("clickhouse_events_json", "clickhouse_events_json", asIs(ch))

	var export []Message
	for _, l := range ch {
		row := mustObject(tb, l)
		created := clickHouseTime(tb, row["created_at"].(string))
		out := map[string]any{
			"uuid":              row["uuid"],
			"event":             row["event"],
			"distinct_id":       row["distinct_id"],
			"person_id":         row["person_id"],
			"properties":        json.RawMessage(row["properties"].(string)),
			"person_properties": json.RawMessage(row["person_properties"].(string)),
			"elements_chain":    row["elements_chain"],
			"timestamp":         isoMicros(clickHouseTime(tb, row["timestamp"].(string))),
			"created_at":        isoMicros(created),
			"_inserted_at":      isoMicros(created.Add(time.Second)),
		}
		export = append(export, Message{Value: mustJSON(tb, out), Now: ProcessingTime()})
	}
	add("batch_export", "batch_export", export)

	add("cdp_destination", "cdp_destination", asIs(ReadLines(tb, filepath.Join(dir, "journey_cdp_destination_payload.jsonl"))))

	var batch, array, single []Message
	for _, l := range ReadLines(tb, filepath.Join(dir, "journey_capture_batch.jsonl")) {
		req := mustObject(tb, l)
		now := RequestNow(tb, l)
		batch = append(batch, Message{Value: l, Now: now})
		array = append(array, Message{Value: mustJSON(tb, req["batch"]), Now: now})
		for _, ev := range req["batch"].([]any) {
			single = append(single, Message{Value: mustJSON(tb, ev), Now: now})
		}
	}
	add("capture_batch", "capture_batch", batch)
	add("capture_array", "capture_array", array)
	add("capture_event", "capture_event", single)
	return shapes
}

// Gzip compresses b as posthog-js does.
func Gzip(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Encoded returns the journey's capture batch bodies wrapped as SDKs send them over HTTP: gzip,
// base64, and base64url of gzip.
func Encoded(tb testing.TB, dir string) []Shape {
	tb.Helper()
	var gz, b64, gzb64 []Message
	for _, l := range ReadLines(tb, filepath.Join(dir, "journey_capture_batch.jsonl")) {
		now := RequestNow(tb, l)
		z := Gzip(tb, l)
		gz = append(gz, Message{Value: z, Now: now})
		b64 = append(b64, Message{Value: []byte(base64.StdEncoding.EncodeToString(l)), Now: now})
		gzb64 = append(gzb64, Message{Value: []byte(base64.RawURLEncoding.EncodeToString(z)), Now: now})
	}
	return []Shape{
		{Name: "capture_batch_gzip", Shape: "capture_batch", Messages: gz},
		{Name: "capture_batch_base64", Shape: "capture_batch", Messages: b64},
		{Name: "capture_batch_gzip_base64url", Shape: "capture_batch", Messages: gzb64},
	}
}

// ResolvedTimes reads the event times capture resolved on the events_plugin_ingestion fixture, by uuid.
func ResolvedTimes(tb testing.TB, dir string) map[string]time.Time {
	tb.Helper()
	out := map[string]time.Time{}
	for _, l := range ReadLines(tb, filepath.Join(dir, "journey_kafka_events_plugin_ingestion.jsonl")) {
		m := mustObject(tb, l)
		ts, err := time.Parse(time.RFC3339Nano, m["timestamp"].(string))
		if err != nil {
			tb.Fatal(err)
		}
		out[m["uuid"].(string)] = ts
	}
	return out
}

// RateReport measures a benchmark's per-event rate against a baseline run the same number of rounds,
// and reports events/s and events/cpu-s for both and their ratio (x-vs-json: above 1 is faster than
// the baseline). Call Start before b.Loop and Report after it.
type RateReport struct {
	cpu0 time.Duration
}

// Start marks the beginning of the measured loop.
func (r *RateReport) Start() { r.cpu0, _ = cputime.Process() }

// Report reports the rates of the loop just run (events per round) against baseline.
func (r *RateReport) Report(b *testing.B, eventsPerRound int, baseline func()) {
	cpu1, cpuOK := cputime.Process()
	events := float64(eventsPerRound * b.N)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")

	b.StopTimer()
	bcpu0, _ := cputime.Process()
	start := time.Now()
	for range b.N {
		baseline()
	}
	wall := time.Since(start)
	bcpu1, _ := cputime.Process()
	b.ReportMetric(events/wall.Seconds(), "json-events/s")
	ratio := wall.Seconds() / b.Elapsed().Seconds()
	if cpuOK && cpu1 > r.cpu0 && bcpu1 > bcpu0 {
		b.ReportMetric(events/(cpu1-r.cpu0).Seconds(), "events/cpu-s")
		b.ReportMetric(events/(bcpu1-bcpu0).Seconds(), "json-events/cpu-s")
		ratio = (bcpu1 - bcpu0).Seconds() / (cpu1 - r.cpu0).Seconds()
	}
	b.ReportMetric(ratio, "x-vs-json")
}

// JSONBaseline returns a round of bare encoding/json unmarshals of msgs into `any` (map[string]any
// for objects), the baseline decoders are measured against.
func JSONBaseline(b *testing.B, msgs []Message) func() {
	return func() {
		for _, m := range msgs {
			var v any
			if err := json.Unmarshal(m.Value, &v); err != nil {
				b.Fatal(err)
			}
		}
	}
}
