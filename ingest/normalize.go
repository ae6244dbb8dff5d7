package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/phrasing"
	"github.com/threadline/threadline/pkg/posthog"
)

// Producer is the part of a Kafka client ingest needs.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Normalizer turns the raw topics into the pipeline's messages: PostHog events into readable,
// redacted product.actions (key: session id), and Intercom notifications into
// conversation.events (key: conversation id). What cannot be decoded goes to the dead-letter
// topic with its reason.
type Normalizer struct {
	phraser  *phrasing.Phraser
	intercom intercom.NormalizeConfig
	out      Producer
	topics   kafka.Topics
	log      *zap.Logger

	actions *prometheus.CounterVec
}

// NewNormalizer builds the normaliser.
func NewNormalizer(phraser *phrasing.Phraser, ic intercom.NormalizeConfig, out Producer, topics kafka.Topics, log *zap.Logger, reg prometheus.Registerer) *Normalizer {
	n := &Normalizer{phraser: phraser, intercom: ic, out: out, topics: topics, log: log,
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "ingest", Name: "events_total",
			Help: "Decoded events by outcome: action (produced), noise (dropped by the noise rule), ignored.",
		}, []string{"source", "outcome"}),
	}
	reg.MustRegister(n.actions)
	return n
}

// Handle processes the records of one partition of a raw topic.
func (n *Normalizer) Handle(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	out := make([]*kgo.Record, 0, len(recs))
	for i, rec := range recs {
		var err error
		if rec.Topic == n.topics.IntercomRaw {
			out, err = n.notification(rec, out)
		} else {
			out, err = n.productEvents(rec, out)
		}
		if err != nil {
			if perr := n.produce(ctx, out); perr != nil {
				return perr
			}
			return &kafka.RecordError{Index: i, Err: err}
		}
	}
	return n.produce(ctx, out)
}

func (n *Normalizer) productEvents(rec *kgo.Record, out []*kgo.Record) ([]*kgo.Record, error) {
	events, err := posthog.Decode(rec.Value, rec.Timestamp)
	if err != nil {
		reason := "decode"
		if errors.Is(err, posthog.ErrUnknownShape) {
			reason = "unknown_shape"
		}
		return out, kafka.Permanent(reason, err)
	}
	for _, ev := range events {
		pa, keep := n.phraser.Action(ev)
		if !keep {
			n.actions.WithLabelValues("posthog", "noise").Inc()
			continue
		}
		if pa.Action.SessionID == "" {
			// Server-side events have no browser session; the user is their own session.
			pa.Action.SessionID = "user:" + pa.Identity.DistinctID
		}
		b, err := json.Marshal(pa)
		if err != nil {
			return out, kafka.Permanent("encode", err)
		}
		n.actions.WithLabelValues("posthog", "action").Inc()
		out = append(out, &kgo.Record{Topic: n.topics.ProductActions, Key: []byte(pa.Action.SessionID), Value: b})
	}
	return out, nil
}

func (n *Normalizer) notification(rec *kgo.Record, out []*kgo.Record) ([]*kgo.Record, error) {
	note, err := intercom.ParseNotification(rec.Value)
	if err != nil {
		return out, kafka.Permanent("decode", err)
	}
	ev, ok, err := intercom.Normalize(note, n.intercom)
	if err != nil {
		return out, kafka.Permanent("invalid", err)
	}
	if !ok {
		n.actions.WithLabelValues("intercom", "ignored").Inc()
		return out, nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return out, kafka.Permanent("encode", err)
	}
	n.actions.WithLabelValues("intercom", "event").Inc()
	key := ev.ConversationID
	if key == "" { // a contact merge concerns a contact, not one conversation
		key = "contact:" + ev.ContactID
	}
	return append(out, &kgo.Record{Topic: n.topics.ConversationEvents, Key: []byte(key), Value: b}), nil
}

func (n *Normalizer) produce(ctx context.Context, out []*kgo.Record) error {
	if len(out) == 0 {
		return nil
	}
	if err := n.out.ProduceSync(ctx, out...).FirstErr(); err != nil {
		return fmt.Errorf("ingest: produce: %w", err)
	}
	return nil
}
