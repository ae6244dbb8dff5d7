package posthog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

func TestDecodeBadInput(t *testing.T) {
	for _, c := range []struct {
		name, value string
		want        error
	}{
		{"empty", "", ErrMalformed},
		{"whitespace", " \n", ErrMalformed},
		{"not json", "hello", ErrMalformed},
		{"truncated", `{"uuid":"u","event":"$pageview","properties":{"distinct_id":"d"`, ErrMalformed},
		{"trailing garbage", `{"event":"e","properties":{"distinct_id":"d"}} x`, ErrMalformed},
		{"number", `42`, ErrMalformed},
		{"unknown object", `{"foo":"bar"}`, ErrUnknownShape},
		{"event as a number", `{"event":42,"properties":{}}`, ErrUnknownShape},
		{"array of non-events", `[1,2]`, ErrInvalidEvent},
		{"empty array", `[]`, ErrInvalidEvent},
		{"event without a name", `{"event":"","properties":{"distinct_id":"d"}}`, ErrInvalidEvent},
		{"event without a distinct id", `{"event":"e","properties":{"token":"t"}}`, ErrInvalidEvent},
		{"batch not an array", `{"api_key":"t","batch":{}}`, ErrInvalidEvent},
		{"batch with one bad event", `{"api_key":"t","batch":[{"event":"e","distinct_id":"d"},{"event":"e"}]}`, ErrInvalidEvent},
		{"properties not an object", `{"event":"e","distinct_id":"d","properties":[1]}`, ErrInvalidEvent},
		{"capture output, data not JSON", `{"uuid":"u","distinct_id":"d","data":"not json","now":"2025-03-14T10:15:05Z","token":"t"}`, ErrInvalidEvent},
		{"capture output, data truncated", `{"uuid":"u","distinct_id":"d","data":"{\"event\":","now":"2025-03-14T10:15:05Z","token":"t"}`, ErrMalformed},
		{"capture output, bad escape", `{"data":"\x","now":"n","token":"t"}`, ErrMalformed},
		{"clickhouse, properties string not JSON", `{"uuid":"u","event":"e","team_id":2,"distinct_id":"d","properties":"{nope","timestamp":"2025-03-14 10:15:02.203000"}`, ErrMalformed},
		{"clickhouse, properties string not an object", `{"uuid":"u","event":"e","team_id":2,"distinct_id":"d","properties":"[1]","timestamp":"2025-03-14 10:15:02.203000"}`, ErrInvalidEvent},
		{"clickhouse without uuid", `{"event":"e","team_id":2,"distinct_id":"d","properties":"{}","timestamp":"2025-03-14 10:15:02.203000"}`, ErrInvalidEvent},
		{"cdp without distinct id", `{"event":{"uuid":"u","event":"e","properties":{}},"person":{}}`, ErrInvalidEvent},
		{"cdp, person properties not an object", `{"event":{"uuid":"u","event":"e","distinct_id":"d","properties":{}},"person":{"properties":7}}`, ErrInvalidEvent},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage!")), ErrMalformed},
		{"deep nesting", `{"event":"e","distinct_id":"d","properties":{"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}}`, ErrMalformed},
	} {
		evs, err := Decode([]byte(c.value), processingTime)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if err != nil && evs != nil {
			t.Errorf("%s: events returned with an error", c.name)
		}
	}
}

func TestDecodeDetails(t *testing.T) {
	t.Run("server SDK event without uuid gets a stable id", func(t *testing.T) {
		msg := []byte(`{"api_key":"phc_t","batch":[{"event":"subscription_upgraded","distinct_id":"usr_1","timestamp":"2025-03-14T10:16:02.114Z","properties":{"$lib":"posthog-go","plan":"pro"}}]}`)
		a, err := Decode(msg, processingTime)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(msg, processingTime.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if a[0].UUID == "" || a[0].UUID != b[0].UUID || len(a[0].UUID) != 36 {
			t.Fatalf("uuids %q and %q", a[0].UUID, b[0].UUID)
		}
		if a[0].Token != "phc_t" || a[0].DistinctID != "usr_1" || a[0].Prop("plan") != "pro" || a[0].SessionID != "" {
			t.Fatalf("event: %+v", a[0])
		}
		if !a[0].Timestamp.Equal(time.Date(2025, 3, 14, 10, 16, 2, 114000000, time.UTC)) {
			t.Fatalf("time %s", a[0].Timestamp)
		}
	})
	t.Run("top-level $set wins over properties.$set", func(t *testing.T) {
		evs, err := Decode([]byte(`{"event":"$identify","distinct_id":"u","$set":{"email":"top@example.com"},"properties":{"$set":{"email":"inner@example.com","plan":"pro"}}}`), processingTime)
		if err != nil {
			t.Fatal(err)
		}
		ev := evs[0]
		if ev.PersonValue("email") != "top@example.com" || ev.PersonValue("plan") != "pro" {
			t.Fatalf("email %q plan %q", ev.PersonValue("email"), ev.PersonValue("plan"))
		}
		if m := ev.Set.Map(); len(m) != 2 || m["email"] != "top@example.com" {
			t.Fatalf("Set.Map() = %v", m)
		}
	})
	t.Run("non-string distinct ids are stringified and cut", func(t *testing.T) {
		long := strings.Repeat("é", 250)
		evs, err := Decode([]byte(`[{"event":"a","distinct_id":12345},{"event":"b","properties":{"distinct_id":"`+long+`"}}]`), processingTime)
		if err != nil {
			t.Fatal(err)
		}
		if evs[0].DistinctID != "12345" || evs[1].DistinctID != strings.Repeat("é", MaxDistinctIDLength) {
			t.Fatalf("distinct ids %q, %d runes", evs[0].DistinctID, len([]rune(evs[1].DistinctID)))
		}
	})
	t.Run("$elements array when no chain", func(t *testing.T) {
		evs, err := Decode([]byte(`{"event":"$autocapture","distinct_id":"d","properties":{"$event_type":"click","$elements":[{"tag_name":"button","$el_text":"Save"}]}}`), processingTime)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs[0].Elements) != 1 || evs[0].Elements[0].Text != "Save" || evs[0].Properties.Has("$elements") {
			t.Fatalf("elements %+v", evs[0].Elements)
		}
	})
	t.Run("chain wins over $elements", func(t *testing.T) {
		evs, err := Decode([]byte(`{"event":"$autocapture","distinct_id":"d","properties":{"$elements_chain":"a:text=\"Chain\"","$elements":[{"tag_name":"button","$el_text":"Array"}]}}`), processingTime)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs[0].Elements) != 1 || evs[0].Elements[0].Text != "Chain" {
			t.Fatalf("elements %+v", evs[0].Elements)
		}
	})
	t.Run("properties are decoded as encoding/json would", func(t *testing.T) {
		raw := `{"s":"caf\u00e9","n":-1.5e2,"b":true,"z":null,"o":{"k":[1,"x"]},"s":"last"}`
		evs, err := Decode([]byte(`{"event":"e","distinct_id":"d","properties":`+raw+`}`), processingTime)
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		got := evs[0].Properties.Map()
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Fatalf("properties %s, want %s", gotJSON, wantJSON)
		}
		if evs[0].Prop("n") != "-1.5e2" || evs[0].Prop("s") != "last" || evs[0].Prop("o") != "" || !evs[0].Properties.Has("z") {
			t.Fatalf("Prop: n=%q s=%q o=%q", evs[0].Prop("n"), evs[0].Prop("s"), evs[0].Prop("o"))
		}
	})
	t.Run("decoded events do not share the caller's buffer", func(t *testing.T) {
		msg := []byte(`{"event":{"uuid":"u","event":"e","distinct_id":"d","properties":{"plan":"pro"}},"person":{"properties":{"email":"a@example.com"}}}`)
		evs, err := Decode(msg, processingTime)
		if err != nil {
			t.Fatal(err)
		}
		for i := range msg {
			msg[i] = 'x'
		}
		if evs[0].Prop("plan") != "pro" || evs[0].PersonValue("email") != "a@example.com" {
			t.Fatalf("after overwriting the message: plan %q email %q", evs[0].Prop("plan"), evs[0].PersonValue("email"))
		}
	})
}

// upstreamRecord is one record of PostHog's own capture golden file.
type upstreamRecord struct {
	Path   string `json:"path"`
	Now    string `json:"now"`
	Body   string `json:"body"`
	Output []struct {
		UUID       string `json:"uuid"`
		DistinctID string `json:"distinct_id"`
		Data       string `json:"data"`
		Now        string `json:"now"`
		SentAt     string `json:"sent_at"`
		Token      string `json:"token"`
	} `json:"output"`
}

// TestDecodeUpstreamCaptureOutput decodes every Kafka message PostHog's Django capture produced in the
// upstream golden file: old capture output, without event or timestamp beside data.
func TestDecodeUpstreamCaptureOutput(t *testing.T) {
	lines := readLines(t, filepath.Join("..", "..", "testdata", "posthog-upstream", "requests_dump_public.jsonl"))
	messages := 0
	for _, line := range lines {
		var rec upstreamRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		for _, out := range rec.Output {
			msg, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := Decode(msg, processingTime)
			if err != nil {
				t.Fatalf("%s: %v", out.UUID, err)
			}
			messages++
			ev := evs[0]
			var data struct {
				Event string `json:"event"`
			}
			if err := json.Unmarshal([]byte(out.Data), &data); err != nil {
				t.Fatal(err)
			}
			if ev.Shape != ShapeCaptureOutput || ev.UUID != out.UUID || ev.DistinctID != out.DistinctID || ev.Token != out.Token || ev.Name != data.Event {
				t.Errorf("%s: decoded %s %q %q %q %q", out.UUID, ev.Shape, ev.UUID, ev.DistinctID, ev.Token, ev.Name)
			}
			if ev.Timestamp.IsZero() || ev.Timestamp.After(processingTime) {
				t.Errorf("%s: time %s", out.UUID, ev.Timestamp)
			}
		}
	}
	if messages != 54 {
		t.Fatalf("decoded %d messages, want the 54 SOURCE.md counts", messages)
	}
}

// TestDecodeUpstreamTimes checks event times of upstream messages worked out by hand from their
// fields.
func TestDecodeUpstreamTimes(t *testing.T) {
	lines := readLines(t, filepath.Join("..", "..", "testdata", "posthog-upstream", "requests_dump_public.jsonl"))
	byName := map[string][]byte{} // the first message of each event name
	for _, line := range lines {
		var rec upstreamRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		for _, out := range rec.Output {
			var data struct {
				Event string `json:"event"`
			}
			if err := json.Unmarshal([]byte(out.Data), &data); err != nil {
				t.Fatal(err)
			}
			if _, seen := byName[data.Event]; !seen {
				byName[data.Event], _ = json.Marshal(out)
			}
		}
	}
	for _, c := range []struct{ name, want, why string }{
		// timestamp 09:15:02.319Z, sent_at 02.319, now 02.322717: no skew, 3.717 ms in flight
		{"$pageview", "2023-09-15T09:15:02.322717Z", "timestamp corrected by sent_at"},
		// offset 3026 ms before now 09:15:05.358129
		{"$set", "2023-09-15T09:15:02.332129Z", "offset"},
		// Temporal export: timestamp with +00:00 and sent_at "": taken as given
		{"test-no-prop-0", "2023-04-24T06:34:00Z", "timestamp alone"},
	} {
		evs, err := Decode(byName[c.name], processingTime)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want, _ := time.Parse(time.RFC3339Nano, c.want)
		if evs[0].Name != c.name || !evs[0].Timestamp.Equal(want) {
			t.Errorf("%s (%s): %s at %s, want %s", c.name, c.why, evs[0].Name, evs[0].Timestamp.Format(time.RFC3339Nano), c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range posthogtest.Journey(f, posthogtest.Dir()) {
		f.Add(s.Messages[len(s.Messages)/2].Value)
	}
	for _, s := range posthogtest.Encoded(f, posthogtest.Dir()) {
		f.Add(s.Messages[0].Value)
	}
	for _, s := range []string{`{"event":{"event":"e","distinct_id":"d"},"person":null}`, `[{"event":"e","distinct_id":1}]`, `{"data":"{}","now":"","token":""}`} {
		f.Add([]byte(s))
	}
	dirty := posthogtest.Journey(f, posthogtest.Dir())[0].Messages[0].Value
	f.Fuzz(func(t *testing.T, value []byte) {
		evs, err := Decode(value, processingTime)
		// a Decoder whose buffers hold another message decodes the same
		var d Decoder
		if _, err := d.Decode(dirty, processingTime); err != nil {
			t.Fatal(err)
		}
		if devs, derr := d.Decode(value, processingTime); (derr == nil) != (err == nil) || !reflect.DeepEqual(devs, evs) {
			t.Fatalf("Decoder: %v %+v, Decode: %v %+v", derr, devs, err, evs)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownShape) && !errors.Is(err, ErrInvalidEvent) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		for _, ev := range evs {
			if ev.Name == "" || ev.DistinctID == "" || ev.UUID == "" || ev.Shape == "" || ev.Timestamp.IsZero() {
				t.Fatalf("incomplete event %+v", ev)
			}
			ev.Properties.Map()
			ev.Set.Map()
			ev.PersonProperties.Map()
		}
	})
}
