package posthog

import (
	"runtime"
	"testing"

	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

// BenchmarkDecode measures decoding per shape over the whole journey with a Decoder, as ingest does, beside a bare encoding/json
// unmarshal of the same bytes into map[string]any (for capture output that leaves `data` a string:
// the baseline does less work than Decode there). It reports events/s and events/cpu-s (per second of
// process CPU time, robust on a shared machine) for both, and x-vs-json, Decode's rate over the
// baseline's. Run it on one core: go test -run XXX -bench Decode -cpu 1 ./pkg/posthog
func BenchmarkDecode(b *testing.B) {
	// One core, whatever -cpu says: the target is per core, and with a second P idle the runtime
	// lets garbage-collection workers burn it, which counts as CPU time spent normalising.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, shape := range posthogtest.Journey(b, posthogtest.Dir()) {
		b.Run(shape.Name, func(b *testing.B) {
			msgs := shape.Messages
			perRound := 0
			var size int64
			for _, m := range msgs {
				evs, err := Decode(m.Value, m.Now)
				if err != nil {
					b.Fatal(err)
				}
				perRound += len(evs)
				size += int64(len(m.Value))
			}
			b.SetBytes(size)
			b.ReportAllocs()
			var d Decoder
			var rr posthogtest.RateReport
			runtime.GC() // the previous shape's garbage (its encoding/json baseline above all) is not this one's
			rr.Start()
			for b.Loop() {
				for _, m := range msgs {
					if _, err := d.Decode(m.Value, m.Now); err != nil {
						b.Fatal(err)
					}
				}
			}
			rr.Report(b, perRound, posthogtest.JSONBaseline(b, msgs))
		})
	}
}

// BenchmarkParseElementsChain measures the chain parser on the journey's longest chain.
func BenchmarkParseElementsChain(b *testing.B) {
	chain := `button.btn.btn-pay.btn-primary:attr__class="btn btn-primary btn-pay"attr__data-attr="checkout-pay"attr__type="submit"nth-child="1"nth-of-type="1"text="Pay $49.00";div.form-actions:attr__class="form-actions"nth-child="5"nth-of-type="4";form.checkout-form:attr__class="checkout-form"attr__data-attr="checkout-form"attr__id="checkout-form"attr__method="post"attr_id="checkout-form"nth-child="3"nth-of-type="1";section.checkout-panel:attr__class="checkout-panel"nth-child="2"nth-of-type="2";main.checkout-page:attr__class="checkout-page"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`
	b.SetBytes(int64(len(chain)))
	b.ReportAllocs()
	for b.Loop() {
		if els := ParseElementsChain(chain); len(els) != 6 {
			b.Fatalf("parsed %d elements", len(els))
		}
	}
}
