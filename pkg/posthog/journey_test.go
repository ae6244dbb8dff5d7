package posthog

import (
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

// processingTime is when the tests pretend to consume a message (later than every journey event).
var processingTime = posthogtest.ProcessingTime()

func decodeAll(tb testing.TB, msgs []posthogtest.Message) []Event {
	tb.Helper()
	var out []Event
	for i, m := range msgs {
		evs, err := Decode(m.Value, m.Now)
		if err != nil {
			tb.Fatalf("message %d: %v", i, err)
		}
		out = append(out, evs...)
	}
	return out
}

func readLines(tb testing.TB, path string) [][]byte { return posthogtest.ReadLines(tb, path) }

func TestDecodeJourneyEveryShape(t *testing.T) {
	dir := posthogtest.Dir()
	wantTimes := posthogtest.ResolvedTimes(t, dir)
	if len(wantTimes) != posthogtest.Events {
		t.Fatalf("fixture has %d events, want %d", len(wantTimes), posthogtest.Events)
	}
	shapes := append(posthogtest.Journey(t, dir), posthogtest.Encoded(t, dir)...)
	reference := decodeAll(t, shapes[0].Messages)

	for _, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			got := decodeAll(t, s.Messages)
			if len(got) != len(reference) {
				t.Fatalf("%d events, want %d", len(got), len(reference))
			}
			for i, ev := range got {
				ref := reference[i]
				if string(ev.Shape) != s.Shape {
					t.Errorf("event %d: shape %q, want %q", i, ev.Shape, s.Shape)
				}
				if ev.UUID != ref.UUID || ev.Name != ref.Name || ev.DistinctID != ref.DistinctID || ev.SessionID != posthogtest.Session {
					t.Errorf("event %d: %s %s %s %s, want %s %s %s %s", i, ev.UUID, ev.Name, ev.DistinctID, ev.SessionID,
						ref.UUID, ref.Name, ref.DistinctID, posthogtest.Session)
				}
				want := wantTimes[ev.UUID]
				if (s.Shape == string(ShapeCaptureArray) || s.Shape == string(ShapeCaptureEvent)) && ev.Name == "$pageleave" {
					// a beacon event in a body without sent_at: its timestamp is taken as given
					want = want.Add(-posthogtest.CaptureLatency)
				}
				if !ev.Timestamp.Equal(want) {
					t.Errorf("event %d (%s): time %s, want %s", i, ev.Name, ev.Timestamp.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
				}
				if ev.Token != posthogtest.Token {
					t.Errorf("event %d: token %q", i, ev.Token)
				}
				if got, want := ev.Prop("$current_url"), ref.Prop("$current_url"); got != want || got == "" {
					t.Errorf("event %d: $current_url %q, want %q", i, got, want)
				}
				if len(ev.Elements) != len(ref.Elements) {
					t.Fatalf("event %d (%s): %d elements, want %d", i, ev.Name, len(ev.Elements), len(ref.Elements))
				}
				if len(ev.Elements) > 0 {
					g, w := ev.Elements[0], ref.Elements[0]
					if g.Tag != w.Tag || g.Text != w.Text || g.Attr("data-attr") != w.Attr("data-attr") || g.Attr("name") != w.Attr("name") {
						t.Errorf("event %d: target %+v, want %+v", i, g, w)
					}
				}
				if ev.Properties.Has("$elements_chain") || ev.Properties.Has("$elements") || ev.Properties.Has("$set") {
					t.Errorf("event %d: a property with a field of its own left in Properties", i)
				}
				switch ev.Name {
				case "$identify":
					if ev.AnonDistinctID() != posthogtest.AnonID || ev.DistinctID != posthogtest.UserID || ev.UserID() != posthogtest.UserID {
						t.Errorf("$identify: anon %q distinct %q user %q", ev.AnonDistinctID(), ev.DistinctID, ev.UserID())
					}
					if ev.PersonValue("email") != "jane.doe@example.com" || ev.PersonValue("intercom_user_id") != posthogtest.UserID {
						t.Errorf("$identify: email %q intercom id %q", ev.PersonValue("email"), ev.PersonValue("intercom_user_id"))
					}
					if ev.PersonValue("$initial_pathname") != "/pricing" {
						t.Errorf("$identify: $set_once lost: %v", ev.SetOnce.Map())
					}
				case "payment_validation_failed":
					if ev.Prop("error_code") != "incorrect_number" || ev.Prop("amount_cents") != "4900" {
						t.Errorf("custom event properties: %v", ev.Properties.Map())
					}
				case "$exception":
					v, _ := ev.Properties.Get("$exception_list")
					list, _ := v.([]any)
					if len(list) != 1 || list[0].(map[string]any)["type"] != "CardValidationError" {
						t.Errorf("$exception_list: %v", v)
					}
				}
			}
		})
	}
}

// TestDecodeShapeDetection checks each shape is told apart by its own signals.
func TestDecodeShapeDetection(t *testing.T) {
	dir := posthogtest.Dir()
	for _, s := range append(posthogtest.Journey(t, dir), posthogtest.Encoded(t, dir)...) {
		evs, err := Decode(s.Messages[0].Value, s.Messages[0].Now)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if string(evs[0].Shape) != s.Shape {
			t.Errorf("%s: detected %q, want %q", s.Name, evs[0].Shape, s.Shape)
		}
	}
}
