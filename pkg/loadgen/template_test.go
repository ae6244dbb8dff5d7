package loadgen

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/demo"
)

// normalise decodes a capture-output value, its data string included, with event uuids
// replaced by their position in the journey (new uuids are random on both sides).
func normalise(t *testing.T, value []byte, uuids []string) map[string]any {
	t.Helper()
	pairs := make([]string, 0, 2*len(uuids))
	for k, u := range uuids {
		pairs = append(pairs, u, "uuid-"+string(rune('a'+k)))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.NewReplacer(pairs...).Replace(string(value))), &m); err != nil {
		t.Fatal(err)
	}
	if data, ok := m["data"].(string); ok {
		var inner any
		if err := json.Unmarshal([]byte(data), &inner); err != nil {
			t.Fatal(err)
		}
		m["data"] = inner
	}
	return m
}

func TestTemplateRendersWhatDemoAgainPlays(t *testing.T) {
	tmpl, err := newJourneyTemplate()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	user := freshUser(start)
	for _, speed := range []float64{1, 5.6} {
		want, err := demo.Again(user, start, speed)
		if err != nil {
			t.Fatal(err)
		}
		got := tmpl.render(user, start, speed)
		if len(got.Events) != len(want.Events) || got.SessionID != want.SessionID || got.UserID != want.UserID {
			t.Fatalf("rendered %d events for %s, want %d for %s", len(got.Events), got.SessionID, len(want.Events), want.SessionID)
		}
		var wantIDs, gotIDs []string
		for i := range want.Events {
			wantIDs = append(wantIDs, want.Events[i].UUID)
			gotIDs = append(gotIDs, got.Events[i].UUID)
		}
		for i := range want.Events {
			w, g := want.Events[i], got.Events[i]
			if g.Name != w.Name || !g.Time.Equal(w.Time) {
				t.Fatalf("speed %g event %d: %s at %s, want %s at %s", speed, i, g.Name, g.Time, w.Name, w.Time)
			}
			if gm, wm := normalise(t, g.Value, gotIDs), normalise(t, w.Value, wantIDs); !reflect.DeepEqual(gm, wm) {
				t.Fatalf("speed %g event %d differs:\n got %v\nwant %v", speed, i, gm, wm)
			}
		}
	}
}

func TestFreshUsersDoNotRepeat(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		u := freshUser(time.Now())
		for _, id := range []string{u.SessionID, u.AnonID, u.UserID, u.Email} {
			if seen[id] {
				t.Fatalf("id %s handed out twice", id)
			}
			seen[id] = true
		}
	}
}

// BenchmarkRenderPass measures how fast the generator makes events: far above the rates it
// produces, so it does not take the machine from the pipeline it loads.
func BenchmarkRenderPass(b *testing.B) {
	tmpl, err := newJourneyTemplate()
	if err != nil {
		b.Fatal(err)
	}
	user := freshUser(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		tmpl.render(user, time.Now(), 5)
	}
	b.ReportMetric(float64(b.N*len(tmpl.events))/b.Elapsed().Seconds(), "events/s")
}
