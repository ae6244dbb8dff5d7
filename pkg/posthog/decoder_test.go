package posthog

import (
	"reflect"
	"testing"

	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

// TestDecoderMatchesDecode decodes every shape of the journey, and messages Decode refuses, with one
// Decoder in turn, and checks each result against Decode's while it is valid.
func TestDecoderMatchesDecode(t *testing.T) {
	var msgs []posthogtest.Message
	for _, s := range append(posthogtest.Journey(t, posthogtest.Dir()), posthogtest.Encoded(t, posthogtest.Dir())...) {
		msgs = append(msgs, s.Messages...)
	}
	for _, bad := range []string{`{"data":"{\"event\":1}","now":"x"}`, `[{"event":"e"}]`, `{"event":{"event":"e","distinct_id":"d"}}`, `nope`} {
		msgs = append(msgs, posthogtest.Message{Value: []byte(bad), Now: processingTime})
	}
	var d Decoder
	for round := 0; round < 2; round++ {
		for i, m := range msgs {
			want, wantErr := Decode(m.Value, m.Now)
			got, err := d.Decode(m.Value, m.Now)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Fatalf("message %d: error %v, want %v", i, err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("message %d: the Decoder's events differ from Decode's:\n%+v\n%+v", i, got, want)
			}
		}
	}
}
