package messages_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/schemas"
)

// TestMarshalWritesWhatEncodingJSONWrites holds the message codec to encoding/json's bytes for
// every Go-built value and every example of every message type, and for values with the
// characters encoding/json escapes.
func TestMarshalWritesWhatEncodingJSONWrites(t *testing.T) {
	var values []any
	for _, c := range contracts() {
		values = append(values, c.populated...)
		values = append(values, c.minimal)
		for _, ex := range examplesOf(t, c.schema) {
			m, err := c.decode(ex.Data)
			if err != nil {
				t.Fatalf("examples/%s/%s: %v", c.schema, ex.Name, err)
			}
			values = append(values, m)
		}
	}
	odd := fullAction()
	odd.Text = "<b>\"Tom & Jerry\"</b>\t\\ \u2028\u2029 é \x01 \xff"
	odd.EventTime = time.Date(2025, 3, 14, 10, 15, 2, 1, time.FixedZone("", -5*3600))
	values = append(values, odd, messages.ConversationActions{Version: messages.Version, Actions: []messages.Action{odd}},
		messages.ProductAction{Version: messages.Version, Action: odd, Properties: map[string]string{"z": "1", "a": "<&>"}})
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := messages.Marshal(v)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T:\n got %s\nwant %s", v, got, want)
		}
	}
}

// FuzzDecodeAgreesWithEncodingJSON feeds arbitrary bytes to Decode and to encoding/json: both
// accept or both refuse, and what they accept decodes to the same value.
func FuzzDecodeAgreesWithEncodingJSON(f *testing.F) {
	for _, name := range []string{schemas.ProductActions, schemas.ConversationEvents} {
		examples, err := schemas.Examples(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, ex := range examples {
			f.Add(ex.Data)
			f.Add(ex.Data[:len(ex.Data)/2])
		}
	}
	f.Add([]byte(`{"version":1,"action":{"action_id":"a\u00e9\ud83d\ude00","TEXT":"x","event_time":"2025-03-14T10:15:02+05:30"},"identity":{},"properties":{"k":"v"},"extra":[1,{"a":null}]}`))
	f.Add([]byte(`{"version":1,"action":{"event_time":null,"page":"\ud800"}}`))
	f.Add([]byte(`{"version":1.0}`))
	f.Add([]byte(`{"version":1,"action":{"text":"a\qb"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		compare(t, data, new(messages.ProductAction), new(messages.ProductAction))
		compare(t, data, new(messages.ConversationEvent), new(messages.ConversationEvent))
	})
}

func compare[T messages.Versioned](t *testing.T, data []byte, got, want *T) {
	t.Helper()
	errGot := messages.Decode(data, got)
	errStd := json.Unmarshal(data, want)
	if errStd == nil && (*want).MessageVersion() != messages.Version {
		errStd = fmt.Errorf("unsupported version %d", (*want).MessageVersion())
	}
	if (errGot == nil) != (errStd == nil) {
		t.Fatalf("%T %q: Decode error %v, encoding/json error %v", *got, data, errGot, errStd)
	}
	if errGot != nil {
		return
	}
	a, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%T %q:\nDecode        %s\nencoding/json %s", *got, data, a, b)
	}
}
