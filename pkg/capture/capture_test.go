package capture

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

// recorder is a Publisher that keeps what it is given, and fails when told to.
type recorder struct {
	mu      sync.Mutex
	batches [][]CapturedEvent
	err     error
}

func (r *recorder) Publish(_ context.Context, events []CapturedEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.batches = append(r.batches, append([]CapturedEvent(nil), events...))
	return nil
}

func (r *recorder) take() [][]CapturedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batches
	r.batches = nil
	return b
}

// clock is a settable server clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

type testServer struct {
	*httptest.Server
	pub   *recorder
	clock *clock
	reg   *prometheus.Registry
}

func newServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &testServer{pub: &recorder{}, clock: &clock{t: time.Date(2025, 3, 14, 10, 20, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	s.Server = httptest.NewServer(NewHandler(cfg, s.pub, zap.NewNop(), s.reg, s.clock.now))
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) do(t *testing.T, method, path string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// upstreamRecord is one record of PostHog's recorded capture requests (see testdata SOURCE.md).
type upstreamRecord struct {
	Path                string           `json:"path"`
	Method              string           `json:"method"`
	ContentEncoding     string           `json:"content_encoding"`
	ContentType         string           `json:"content_type"`
	IP                  string           `json:"ip"`
	Now                 string           `json:"now"`
	Body                string           `json:"body"`
	Output              []map[string]any `json:"output"`
	HistoricalMigration bool             `json:"historical_migration"`
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := posthog.ParseTimestamp(s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return ts
}

func parseJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %.200s", err, s)
	}
	return v
}

// TestUpstreamRequestsGolden replays PostHog's recorded capture requests as its own Django-compatibility
// test does: every record is accepted and produces exactly its expected messages, compared after the
// normalisation SOURCE.md describes.
func TestUpstreamRequestsGolden(t *testing.T) {
	s := newServer(t, DefaultConfig())
	lines := posthogtest.ReadLines(t, filepath.Join("..", "..", "testdata", "posthog-upstream", "requests_dump_public.jsonl"))
	records, messages := 0, 0
	for i, line := range lines {
		var rec upstreamRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Method != http.MethodPost {
			t.Fatalf("record %d: method %q", i, rec.Method)
		}
		body, err := base64.StdEncoding.DecodeString(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		header := map[string]string{"X-Forwarded-For": rec.IP}
		if rec.ContentType != "" {
			header["Content-Type"] = rec.ContentType
		}
		if rec.ContentEncoding != "" {
			header["Content-Encoding"] = rec.ContentEncoding
		}
		now := mustTime(t, rec.Now)
		s.clock.set(now)
		resp, respBody := s.do(t, rec.Method, rec.Path, body, header)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(respBody)) != `{"status":1}` {
			t.Fatalf("record %d (%s): %d %s", i, rec.Path, resp.StatusCode, respBody)
		}
		batches := s.pub.take()
		if len(batches) != 1 {
			t.Fatalf("record %d: %d publishes, want 1", i, len(batches))
		}
		got := batches[0]
		if len(got) != len(rec.Output) {
			t.Fatalf("record %d: %d events, want %d", i, len(got), len(rec.Output))
		}
		for j, want := range rec.Output {
			ev := got[j]
			where := rec.Path + " event " + want["uuid"].(string)
			// data: compared as JSON, without the fields posthog-node adds and capture drops
			wantData := parseJSON(t, want["data"].(string)).(map[string]any)
			for _, k := range []string{"type", "library", "library_version"} {
				delete(wantData, k)
			}
			if gotData := parseJSON(t, ev.Data); !reflect.DeepEqual(gotData, any(wantData)) {
				t.Errorf("%s: data differs:\n got %.300s\nwant %.300v", where, ev.Data, wantData)
			}
			if ev.UUID != want["uuid"] || ev.DistinctID != want["distinct_id"] || ev.IP != want["ip"] || ev.Token != want["token"] {
				t.Errorf("%s: uuid %q distinct %q ip %q token %q, want %v %v %v %v", where, ev.UUID, ev.DistinctID, ev.IP, ev.Token,
					want["uuid"], want["distinct_id"], want["ip"], want["token"])
			}
			if !mustTime(t, ev.Now).Equal(mustTime(t, want["now"].(string))) {
				t.Errorf("%s: now %s, want %s", where, ev.Now, want["now"])
			}
			switch wantSent := want["sent_at"].(string); {
			case wantSent == "" && ev.SentAt != "":
				t.Errorf("%s: sent_at %q, want none", where, ev.SentAt)
			case wantSent != "" && (ev.SentAt == "" || !mustTime(t, ev.SentAt).Equal(mustTime(t, wantSent))):
				t.Errorf("%s: sent_at %q, want %s", where, ev.SentAt, wantSent)
			}
			if ev.HistoricalMigration != rec.HistoricalMigration {
				t.Errorf("%s: historical_migration %v, want %v", where, ev.HistoricalMigration, rec.HistoricalMigration)
			}
			if ev.Event != wantData["event"] {
				t.Errorf("%s: event %q, want %v", where, ev.Event, wantData["event"])
			}
			// the same decoder reads what capture produced
			msg, _ := json.Marshal(ev)
			evs, err := posthog.Decode(msg, now.Add(time.Hour))
			if err != nil {
				t.Fatalf("%s: Decode of the captured event: %v", where, err)
			}
			if evs[0].UUID != ev.UUID || evs[0].Name != ev.Event || !evs[0].Timestamp.Equal(mustTime(t, ev.Timestamp)) || evs[0].Shape != posthog.ShapeCaptureOutput {
				t.Errorf("%s: decoded back as %+v", where, evs[0])
			}
			messages++
		}
		records++
	}
	if records != 11 || messages != 54 {
		t.Fatalf("%d records with %d messages, want the 11 and 54 SOURCE.md counts", records, messages)
	}
	if got := s.metric(t, "threadline_capture_events_total", nil); got != 54 {
		t.Errorf("events metric %v, want 54", got)
	}
	if got := s.metric(t, "threadline_capture_requests_total", map[string]string{"route": "/e", "code": "200"}); got != 10 {
		t.Errorf("requests metric for /e %v, want 10", got)
	}
}

// metric returns the value of the counter name with the given labels (0 when absent).
func (s *testServer) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestJourneyAsPostHogCapture posts the journey as posthog-js does (gzip, text/plain) and checks the
// messages against what PostHog's own capture produced for it.
func TestJourneyAsPostHogCapture(t *testing.T) {
	s := newServer(t, Config{Tokens: []string{posthogtest.Token}, MaxBodyBytes: DefaultMaxBodyBytes,
		MaxBatchBodyBytes: DefaultMaxBatchBodyBytes, MaxDecodedBytes: DefaultMaxDecodedBytes, TrustForwardedFor: true})
	dir := posthogtest.Dir()
	var got []CapturedEvent
	for _, l := range posthogtest.ReadLines(t, filepath.Join(dir, "journey_capture_batch.jsonl")) {
		s.clock.set(posthogtest.RequestNow(t, l))
		resp, body := s.do(t, http.MethodPost, "/e/", posthogtest.Gzip(t, l), map[string]string{
			"Content-Type": "text/plain", "X-Forwarded-For": "203.0.113.77, 10.0.0.1", "Origin": "https://app.acme.dev"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		for _, b := range s.pub.take() {
			got = append(got, b...)
		}
	}
	want := posthogtest.ReadLines(t, filepath.Join(dir, "journey_kafka_events_plugin_ingestion.jsonl"))
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, line := range want {
		var w CapturedEvent
		if err := json.Unmarshal(line, &w); err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g.UUID != w.UUID || g.DistinctID != w.DistinctID || g.IP != w.IP || g.Token != w.Token || g.Event != w.Event {
			t.Errorf("event %d: %+v\nwant %+v", i, g, w)
		}
		for _, pair := range [][2]string{{g.Now, w.Now}, {g.SentAt, w.SentAt}, {g.Timestamp, w.Timestamp}} {
			if !mustTime(t, pair[0]).Equal(mustTime(t, pair[1])) {
				t.Errorf("event %d (%s): time %s, want %s", i, g.Event, pair[0], pair[1])
			}
		}
		if !reflect.DeepEqual(parseJSON(t, g.Data), parseJSON(t, w.Data)) {
			t.Errorf("event %d: data differs", i)
		}
		if g.Key() != w.Token+":"+w.DistinctID {
			t.Errorf("event %d: key %q", i, g.Key())
		}
	}
}
