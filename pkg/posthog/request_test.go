package posthog

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParseCaptureRequest(t *testing.T) {
	t.Run("batch object", func(t *testing.T) {
		req, err := ParseCaptureRequest([]byte(`{"api_key":"phc_a","historical_migration":true,"sent_at":"2025-03-14T10:15:05.119Z",
			"batch":[{"uuid":"u1","event":"a","distinct_id":"d1","timestamp":"2025-03-14T10:15:00Z"},{"event":"b","$distinct_id":"d2","offset":1500,"properties":{"$ignore_sent_at":true}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if req.Shape != ShapeCaptureBatch || req.Token != "phc_a" || !req.HistoricalMigration || len(req.Events) != 2 ||
			!req.SentAt.Equal(time.Date(2025, 3, 14, 10, 15, 5, 119000000, time.UTC)) {
			t.Fatalf("request %+v", req)
		}
		a, b := req.Events[0], req.Events[1]
		if a.UUID != "u1" || a.Name != "a" || a.DistinctID != "d1" || a.Timestamp != "2025-03-14T10:15:00Z" || a.HasOffset {
			t.Errorf("event a %+v", a)
		}
		if b.UUID != "" || b.DistinctID != "d2" || !b.HasOffset || b.Offset != 1500*time.Millisecond || !b.IgnoreSentAt {
			t.Errorf("event b %+v", b)
		}
	})
	t.Run("array with tokens in properties", func(t *testing.T) {
		req, err := ParseCaptureRequest([]byte(`[{"event":"a","properties":{"distinct_id":"d","token":"phc_x"}},{"event":"b","properties":{"distinct_id":"d","token":"phc_x"}}]`))
		if err != nil {
			t.Fatal(err)
		}
		if req.Shape != ShapeCaptureArray || req.Token != "phc_x" || req.Events[1].Token != "phc_x" {
			t.Fatalf("request %+v", req)
		}
	})
	t.Run("single event with a top-level token", func(t *testing.T) {
		req, err := ParseCaptureRequest([]byte(`{"event":"a","distinct_id":"d","$token":"phc_y","properties":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		if req.Shape != ShapeCaptureEvent || req.Token != "phc_y" || len(req.Events) != 1 {
			t.Fatalf("request %+v", req)
		}
	})
	for _, c := range []struct {
		name, body string
		want       error
	}{
		{"mixed tokens", `[{"event":"a","distinct_id":"d","token":"t1"},{"event":"b","distinct_id":"d","token":"t2"}]`, ErrMixedTokens},
		{"second event without a name", `[{"event":"a","distinct_id":"d"},{"distinct_id":"d"}]`, ErrInvalidEvent},
		{"distinct id null", `{"event":"a","distinct_id":null}`, ErrInvalidEvent},
		{"distinct id object", `{"event":"a","distinct_id":{"x":1}}`, ErrInvalidEvent},
		{"empty batch", `{"api_key":"t","batch":[]}`, ErrInvalidEvent},
		{"not json", `{"event":`, ErrMalformed},
		{"a string", `"x"`, ErrMalformed},
	} {
		if _, err := ParseCaptureRequest([]byte(c.body)); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCaptureJSON(t *testing.T) {
	plain := `{"uuid":"u","event":"e","properties":{"distinct_id":"d"},"offset":5}`
	req, err := ParseCaptureRequest([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(req.Events[0].CaptureJSON()); got != plain {
		t.Errorf("an event with only kept keys changed: %s", got)
	}
	legacy := `{"type":"capture","library":"posthog-node","event":"e","distinct_id":"d","library_version":"4.0.0","properties":{"a":[1,2]},"$set":{"b":"c"},"timestamp":"2024-04-17T10:00:00Z"}`
	req, err = ParseCaptureRequest([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(req.Events[0].CaptureJSON(), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(`{"event":"e","distinct_id":"d","properties":{"a":[1,2]},"$set":{"b":"c"},"timestamp":"2024-04-17T10:00:00Z"}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CaptureJSON = %v, want %v", got, want)
	}
}
