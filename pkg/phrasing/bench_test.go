package phrasing

import (
	"runtime"
	"testing"

	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
	"github.com/threadline/threadline/pkg/redact"
)

// BenchmarkNormalize measures what ingest does per raw message, per shape: decode (with a reused
// posthog.Decoder), then phrase every
// event with the real redactor (noise dropped). Beside it, a bare encoding/json unmarshal of the same
// bytes into map[string]any; x-vs-json is normalise's rate over the baseline's. Run it on one core:
// go test -run XXX -bench Normalize -cpu 1 ./pkg/phrasing
func BenchmarkNormalize(b *testing.B) {
	// One core, whatever -cpu says: the target is per core, and with a second P idle the runtime
	// lets garbage-collection workers burn it, which counts as CPU time spent normalising.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := New(DefaultConfig(), redact.New(redact.DefaultConfig()), IdentityFuncs{Key: redact.IdentityKey, Email: redact.EmailHash})
	for _, shape := range posthogtest.Journey(b, posthogtest.Dir()) {
		b.Run(shape.Name, func(b *testing.B) {
			msgs := shape.Messages
			var d posthog.Decoder
			round := func() (events int) {
				for _, m := range msgs {
					evs, err := d.Decode(m.Value, m.Now)
					if err != nil {
						b.Fatal(err)
					}
					for _, ev := range evs {
						p.Action(ev)
					}
					events += len(evs)
				}
				return events
			}
			perRound := round()
			b.ReportAllocs()
			var rr posthogtest.RateReport
			runtime.GC() // the previous shape's garbage (its encoding/json baseline above all) is not this one's
			rr.Start()
			for b.Loop() {
				round()
			}
			rr.Report(b, perRound, posthogtest.JSONBaseline(b, msgs))
		})
	}
}
