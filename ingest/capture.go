package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/capture"
)

// CapturePublisher writes accepted capture events to the raw PostHog topic in PostHog's own
// capture-output shape, keyed like PostHog keys them (token:distinct_id).
type CapturePublisher struct {
	out   Producer
	topic string
}

// NewCapturePublisher builds the publisher.
func NewCapturePublisher(out Producer, topic string) *CapturePublisher {
	return &CapturePublisher{out: out, topic: topic}
}

// Publish implements capture.Publisher.
func (p *CapturePublisher) Publish(ctx context.Context, events []capture.CapturedEvent) error {
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("capture: encode: %w", err)
		}
		recs[i] = &kgo.Record{Topic: p.topic, Key: []byte(ev.Token + ":" + ev.DistinctID), Value: b}
	}
	if err := p.out.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("capture: produce: %w", err)
	}
	return nil
}
