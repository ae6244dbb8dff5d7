package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestErrorClassification(t *testing.T) {
	cause := errors.New("unexpected end of JSON input")
	perm := fmt.Errorf("handle record: %w", Permanent("decode", cause))
	if reason, ok := IsPermanent(perm); !ok || reason != "decode" {
		t.Fatalf("IsPermanent(wrapped) = %q, %v", reason, ok)
	}
	if !errors.Is(perm, cause) || perm.Error() != "handle record: unexpected end of JSON input" {
		t.Fatalf("permanent error lost its cause: %v", perm)
	}
	if reason, _ := IsPermanent(Permanent("", nil)); reason != "permanent" {
		t.Fatalf("empty reason = %q, want the default", reason)
	}
	fatal := fmt.Errorf("outer: %w", Fatal(cause))
	if !IsFatal(fatal) || !errors.Is(fatal, cause) || IsFatal(cause) {
		t.Fatalf("IsFatal: %v", fatal)
	}
	if _, ok := IsPermanent(fatal); ok {
		t.Fatal("a fatal error classified as permanent")
	}
	for err, want := range map[error]string{
		cause:                             classTransient,
		perm:                              classPermanent,
		fatal:                             classFatal,
		&RecordError{Index: 2, Err: perm}: classPermanent,
	} {
		if got := classify(err); got != want {
			t.Errorf("classify(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestSplitHandlerError(t *testing.T) {
	cause := errors.New("boom")
	cases := []struct {
		err      error
		n, done  int
		wantSame bool
	}{
		{cause, 5, 0, true},
		{&RecordError{Index: 3, Err: cause}, 5, 3, true},
		{fmt.Errorf("wrapped: %w", &RecordError{Index: 1, Err: cause}), 5, 1, true},
		{&RecordError{Index: 9, Err: cause}, 5, 5, true},
		{&RecordError{Index: -1, Err: cause}, 5, 0, true},
	}
	for _, tc := range cases {
		done, got := splitHandlerError(tc.err, tc.n)
		if done != tc.done || !errors.Is(got, cause) {
			t.Errorf("splitHandlerError(%v, %d) = %d, %v; want %d, %v", tc.err, tc.n, done, got, tc.done, cause)
		}
	}
}

func TestPerRecordReportsTheFailingIndex(t *testing.T) {
	recs := []*kgo.Record{{Offset: 10}, {Offset: 11}, {Offset: 12}}
	var seen []int64
	h := PerRecord(func(_ context.Context, r *kgo.Record) error {
		seen = append(seen, r.Offset)
		if r.Offset == 11 {
			return Permanent("invalid", errors.New("bad"))
		}
		return nil
	})
	err := h.Handle(context.Background(), recs)
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("err = %v, want RecordError at index 1", err)
	}
	if reason, ok := IsPermanent(err); !ok || reason != "invalid" {
		t.Fatalf("classification lost through RecordError: %q %v", reason, ok)
	}
	if len(seen) != 2 {
		t.Fatalf("PerRecord went on past the failing record: %v", seen)
	}
	if err := h.Handle(context.Background(), recs[2:]); err != nil {
		t.Fatalf("all good: %v", err)
	}
}

func TestDeadLetterRecord(t *testing.T) {
	src := &kgo.Record{Topic: "product.actions", Partition: 4, Offset: 1234, Key: []byte("sess-1"), Value: []byte(`{"oops"`)}
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.FixedZone("CEST", 7200))
	long := strings.Repeat("é", maxDeadLetterError) // two bytes each: the cut lands mid-rune
	dl, err := DeadLetterRecord("threadline.dlq", "ingest", src, "decode", errors.New(long), now)
	if err != nil {
		t.Fatal(err)
	}
	if dl.Topic != "threadline.dlq" || string(dl.Key) != "sess-1" {
		t.Fatalf("record = %+v", dl)
	}
	h := map[string]string{}
	for _, hd := range dl.Headers {
		h[hd.Key] = string(hd.Value)
	}
	if h[HeaderSourceTopic] != "product.actions" || h[HeaderSourcePartition] != "4" || h[HeaderSourceOffset] != "1234" ||
		h[HeaderService] != "ingest" || h[HeaderReason] != "decode" {
		t.Fatalf("headers = %v", h)
	}
	if !utf8.ValidString(h[HeaderError]) || len(h[HeaderError]) > maxDeadLetterError+len("…") {
		t.Fatalf("error header not truncated to valid UTF-8 (%d bytes)", len(h[HeaderError]))
	}
	var body messages.DeadLetter
	if err := messages.Decode(dl.Value, &body); err != nil {
		t.Fatal(err)
	}
	if body.Version != messages.Version || body.Service != "ingest" || body.SourceTopic != "product.actions" ||
		body.Partition != 4 || body.Offset != 1234 || body.Reason != "decode" || string(body.Key) != "sess-1" ||
		string(body.Value) != `{"oops"` || body.Error != h[HeaderError] || !body.FailedAt.Equal(now) || body.FailedAt.Location() != time.UTC {
		t.Fatalf("body = %+v", body)
	}
	var raw map[string]any
	if err := json.Unmarshal(dl.Value, &raw); err != nil || raw["value"] != "eyJvb3BzIg==" {
		t.Fatalf("value is not base64 in JSON: %v (%v)", raw["value"], err)
	}
}

func TestBackoffIsCappedExponentialWithJitter(t *testing.T) {
	cfg := DefaultConsumerConfig("g")
	cfg.RetryBackoffMin, cfg.RetryBackoffMax = 100*time.Millisecond, 1*time.Second
	w := &partitionWorker{c: &Consumer{cfg: cfg}}
	for attempt, ceiling := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		ceiling *= time.Millisecond
		for range 50 {
			d := w.backoff(attempt)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: backoff %s outside [%s, %s]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := w.backoff(1 << 20); d > cfg.RetryBackoffMax {
		t.Fatalf("huge attempt: %s", d)
	}
}

func TestDeadLetterOfAHugeRecordStaysWithinTheBrokerLimit(t *testing.T) {
	huge := make([]byte, 900<<10)
	rec := &kgo.Record{Topic: "posthog.events.raw", Partition: 1, Offset: 7, Value: huge}
	dl, err := DeadLetterRecord("threadline.dlq", "ingest", rec, "decode", errors.New("bad"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(dl.Value) > 512<<10 {
		t.Fatalf("dead letter of %d bytes", len(dl.Value))
	}
	var got messages.DeadLetter
	if err := json.Unmarshal(dl.Value, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Value) != MaxDeadLetterValue || !strings.Contains(got.Error, "921600 bytes") {
		t.Fatalf("value %d bytes, error %q", len(got.Value), got.Error)
	}
}
