package kafka

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of a dead-letter record. Its value (messages.DeadLetter) holds the same facts.
const (
	HeaderSourceTopic     = "threadline.source-topic"
	HeaderSourcePartition = "threadline.source-partition"
	HeaderSourceOffset    = "threadline.source-offset"
	HeaderService         = "threadline.service"
	HeaderError           = "threadline.error"
	HeaderReason          = "threadline.reason"
)

// maxDeadLetterError bounds the error text kept in a dead-letter record, in bytes.
const maxDeadLetterError = 2048

// MaxDeadLetterValue bounds the source value a dead letter carries. Base64 inside JSON grows it by
// a third, so a larger one could exceed the broker's record limit and stall the partition; a
// longer value is cut to this size and the error says so with the original size.
const MaxDeadLetterValue = 256 << 10

// DeadLetterRecord returns the record that dead-letters rec on topic dlqTopic: key = rec's key,
// value = JSON of messages.DeadLetter, and headers naming the source, service, reason and error.
func DeadLetterRecord(dlqTopic, service string, rec *kgo.Record, reason string, cause error, now time.Time) (*kgo.Record, error) {
	errText := truncateUTF8(fmt.Sprint(cause), maxDeadLetterError)
	value := rec.Value
	if len(value) > MaxDeadLetterValue {
		errText = truncateUTF8(fmt.Sprintf("%s (value of %d bytes cut to its first %d)", errText, len(value), MaxDeadLetterValue), maxDeadLetterError)
		value = value[:MaxDeadLetterValue]
	}
	dl := messages.DeadLetter{
		Version:     messages.Version,
		Service:     service,
		SourceTopic: rec.Topic,
		Partition:   rec.Partition,
		Offset:      rec.Offset,
		Reason:      reason,
		Error:       errText,
		Key:         rec.Key,
		Value:       value,
		FailedAt:    now.UTC(),
	}
	encoded, err := json.Marshal(dl)
	if err != nil {
		return nil, fmt.Errorf("kafka: encode dead letter of %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	return &kgo.Record{
		Topic: dlqTopic,
		Key:   rec.Key,
		Value: encoded,
		Headers: []kgo.RecordHeader{
			{Key: HeaderSourceTopic, Value: []byte(rec.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
			{Key: HeaderService, Value: []byte(service)},
			{Key: HeaderError, Value: []byte(errText)},
			{Key: HeaderReason, Value: []byte(reason)},
		},
	}, nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	// Drop a rune the cut split in two (at most UTFMax-1 bytes).
	for i := 1; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s + "…"
}
