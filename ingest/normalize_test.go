package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

var update = flag.Bool("update", false, "rewrite the golden files of the ingest tests")

// journeyDir is the shared journey fixtures, seen from this package.
var journeyDir = filepath.Join("..", "testdata", "posthog")

// goldenAction is what the golden file fixes of each journey action.
type goldenAction struct {
	ActionID  string `json:"action_id"`
	SessionID string `json:"session_id"`
	Key       string `json:"key"`
	Event     string `json:"event"`
	Kind      string `json:"kind"`
	Page      string `json:"page,omitempty"`
	Path      string `json:"path,omitempty"`
	Target    string `json:"target,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Text      string `json:"text"`
}

func goldenOf(rec *kgo.Record, pa messages.ProductAction) goldenAction {
	a := pa.Action
	return goldenAction{ActionID: a.ActionID, SessionID: a.SessionID, Key: string(rec.Key), Event: a.Event, Kind: a.Kind,
		Page: a.Page, Path: a.Path, Target: a.Target, Detail: a.Detail, Text: a.Text}
}

// readGolden reads (or with -update writes) a golden JSON file of testdata/.
func readGolden[T any](t *testing.T, name string, got T) T {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return want
}

// journeyActions is how many actions the journey makes: its events less the two that are noise
// ($web_vitals and $feature_flag_called).
const journeyActions = posthogtest.Events - 2

func TestJourneyInEveryShapeBecomesTheSameActions(t *testing.T) {
	ing := startIngest(t)
	topics := ing.topics()
	shapes := append(posthogtest.Journey(t, journeyDir), posthogtest.Encoded(t, journeyDir)...)
	var recs []*kgo.Record
	for _, s := range shapes {
		for _, m := range s.Messages {
			// one key for all: one partition, so the actions come out in the order of the shapes;
			// the record time is when capture received the message, as PostHog's capture sets it
			recs = append(recs, &kgo.Record{Topic: topics.PosthogRaw, Key: []byte("journey"), Value: m.Value, Timestamp: m.Now})
		}
	}
	ing.produce(t, recs...)

	out := ing.consume(t, topics.ProductActions, journeyActions*len(shapes))
	actions := productActions(t, out)
	reference := make([]goldenAction, journeyActions)
	for i := range reference {
		reference[i] = goldenOf(out[i], actions[i])
	}
	want := readGolden(t, "journey_actions.golden.json", reference)
	times := posthogtest.ResolvedTimes(t, journeyDir)

	for si, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			for i := range journeyActions {
				rec, pa := out[si*journeyActions+i], actions[si*journeyActions+i]
				if got := goldenOf(rec, pa); got != want[i] {
					t.Errorf("action %d:\n got %+v\nwant %+v", i, got, want[i])
				}
				wantTime := times[pa.Action.ActionID]
				if (s.Shape == "capture_array" || s.Shape == "capture_event") && pa.Action.Event == "$pageleave" {
					// a beacon event in a body without sent_at: its timestamp is taken as given
					wantTime = wantTime.Add(-posthogtest.CaptureLatency)
				}
				if !pa.Action.EventTime.Equal(wantTime) {
					t.Errorf("action %d (%s): time %s, want %s", i, pa.Action.Event,
						pa.Action.EventTime.Format(time.RFC3339Nano), wantTime.Format(time.RFC3339Nano))
				}
				if pa.Identity.DistinctID == "" {
					t.Errorf("action %d: no distinct id", i)
				}
				if pa.Action.Event == "$identify" {
					id := pa.Identity
					if id.DistinctID != posthogtest.UserID || id.AnonDistinctID != posthogtest.AnonID || id.UserID != posthogtest.UserID {
						t.Errorf("$identify identity %+v", id)
					}
					if !strings.HasPrefix(id.EmailHash, "h:") {
						t.Errorf("$identify: email hash %q", id.EmailHash)
					}
				}
			}
		})
	}
	if got := ing.count(t, topics.DLQ); got != 0 {
		t.Errorf("%d records dead-lettered from valid journeys", got)
	}
}

// dlqCase is a raw message the normaliser must dead-letter, with the reason it must give.
type dlqCase struct {
	name   string
	topic  string
	value  string
	reason string
}

func TestUndecodableMessagesGoToTheDeadLetterTopicAndTheConsumerCarriesOn(t *testing.T) {
	ing := startIngest(t)
	topics := ing.topics()
	cases := []dlqCase{
		{"broken JSON", topics.PosthogRaw, `{"uuid":"0195aaaa-0000-7000-8000-000000000001","event":"$pageview",`, reasonDecode},
		{"not JSON, not an encoding", topics.PosthogRaw, "\x00\x01 definitely not an event", reasonDecode},
		{"gzip magic, broken stream", topics.PosthogRaw, "\x1f\x8b\x08\x00garbage", reasonDecode},
		{"empty", topics.PosthogRaw, ``, reasonDecode},
		{"an object of no known shape", topics.PosthogRaw, `{"hello":"world","answer":42}`, reasonUnknownShape},
		{"a JSON number", topics.PosthogRaw, `42`, reasonDecode},
		{"event name is a number", topics.PosthogRaw,
			`{"uuid":"0195aaaa-0000-7000-8000-000000000002","event":42,"distinct_id":"d1","properties":{}}`, reasonUnknownShape},
		{"properties is a number", topics.PosthogRaw,
			`{"uuid":"0195aaaa-0000-7000-8000-000000000003","event":"$pageview","distinct_id":"d1","properties":7,"timestamp":"2025-03-14T10:15:00Z"}`, reasonInvalid},
		{"capture output whose data is not an event", topics.PosthogRaw,
			`{"uuid":"0195aaaa-0000-7000-8000-000000000004","distinct_id":"d1","ip":"","data":"[1,2]","now":"2025-03-14T10:15:00Z","token":"phc_x"}`, reasonInvalid},
		{"notification that is not JSON", topics.IntercomRaw, `<html>oops</html>`, reasonDecode},
		{"notification without a topic", topics.IntercomRaw, `{"type":"notification_event","data":{"item":{"type":"conversation","id":"1"}}}`, reasonDecode},
		{"conversation notification without a conversation id", topics.IntercomRaw,
			`{"type":"notification_event","id":"notif_x1","topic":"conversation.user.created","created_at":1741947302,"data":{"item":{"type":"conversation","source":{}}}}`, reasonInvalid},
		{"conversation notification about a contact", topics.IntercomRaw,
			`{"type":"notification_event","id":"notif_x2","topic":"conversation.admin.closed","created_at":1741947302,"data":{"item":{"type":"contact","id":"c1"}}}`, reasonInvalid},
	}
	var recs []*kgo.Record
	for _, c := range cases {
		recs = append(recs, &kgo.Record{Topic: c.topic, Key: []byte("bad"), Value: []byte(c.value)})
	}
	// after the bad records, on the same partitions, good ones: the consumer must reach them
	recs = append(recs, markerEvent(t, topics.PosthogRaw, "bad", "0195aaaa-0000-7000-8000-0000000000ff"))
	ing.produce(t, recs...)

	dead := ing.consume(t, topics.DLQ, len(cases))
	byValue := map[string]*kgo.Record{}
	for _, d := range dead {
		var dl messages.DeadLetter
		if err := messages.Decode(d.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if header(d, kafka.HeaderReason) != dl.Reason || header(d, kafka.HeaderSourceTopic) != dl.SourceTopic {
			t.Errorf("headers %v disagree with the value %+v", d.Headers, dl)
		}
		if header(d, kafka.HeaderService) != serviceName || dl.Error == "" {
			t.Errorf("dead letter without service or error: %+v", dl)
		}
		byValue[dl.SourceTopic+"\x00"+string(dl.Value)] = d
	}
	for _, c := range cases {
		d, ok := byValue[c.topic+"\x00"+c.value]
		if !ok {
			t.Errorf("%s: not dead-lettered", c.name)
			continue
		}
		if got := header(d, kafka.HeaderReason); got != c.reason {
			t.Errorf("%s: reason %q, want %q (error: %s)", c.name, got, c.reason, header(d, kafka.HeaderError))
		}
	}
	marker := productActions(t, ing.consume(t, topics.ProductActions, 1))
	if marker[0].Action.Text != "User triggered marker reached" {
		t.Errorf("the event after the bad ones: %+v", marker[0].Action)
	}
	if got := ing.count(t, topics.DLQ); got != int64(len(cases)) {
		t.Errorf("%d dead letters, want %d", got, len(cases))
	}
	// the dead letters are counted by reason
	wantByReason := map[string]int{}
	for _, c := range cases {
		wantByReason[c.reason]++
	}
	for reason, n := range wantByReason {
		if got := ing.metric(t, "threadline_consumer_dlq_records_total", `reason="`+reason+`"`, `service="ingest"`); got != float64(n) {
			t.Errorf("dlq_records_total{reason=%q} = %v, want %d", reason, got, n)
		}
	}
}
