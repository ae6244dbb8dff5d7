package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/capture"
)

// CapturePublisher writes accepted capture events to the raw PostHog topic in PostHog's own
// capture-output shape, keyed like PostHog keys them (token:distinct_id).
type CapturePublisher struct {
	out     AsyncProducer
	topic   string
	timeout time.Duration
}

// NewCapturePublisher builds the publisher; a request waits at most timeout for Kafka.
func NewCapturePublisher(out AsyncProducer, topic string, timeout time.Duration) *CapturePublisher {
	return &CapturePublisher{out: out, topic: topic, timeout: timeout}
}

// Publish implements capture.Publisher.
func (p *CapturePublisher) Publish(ctx context.Context, events []capture.CapturedEvent) error {
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("capture: encode: %w", err)
		}
		if len(b) > maxRecordBytes {
			return fmt.Errorf("%w: %d bytes", capture.ErrEventTooLarge, len(b))
		}
		recs[i] = &kgo.Record{Topic: p.topic, Key: []byte(ev.Key()), Value: b}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := produceWithin(ctx, p.out, recs...); err != nil {
		return fmt.Errorf("capture: produce %d events: %w", len(recs), err)
	}
	return nil
}
