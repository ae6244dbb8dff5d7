package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/metrics"
	"github.com/threadline/threadline/pkg/phrasing"
	"github.com/threadline/threadline/pkg/posthog"
)

// ContactEnricher fills the identity of a conversation event whose notification named its contact
// only by id. ContactLookup is one; an error means "retry later".
type ContactEnricher interface {
	Enrich(ctx context.Context, ev *messages.ConversationEvent) error
}

// Dead-letter reasons of the normaliser.
const (
	reasonDecode       = "decode"        // not a message of any kind: broken JSON, bad encoding
	reasonUnknownShape = "unknown_shape" // JSON, but no PostHog shape Threadline knows
	reasonInvalid      = "invalid"       // a known shape whose fields have the wrong types or are missing
	reasonTooLarge     = "too_large"     // inflates beyond the payload limit
	reasonEncode       = "encode"        // the output could not be encoded (a bug)
)

// maxRecordBytes is the largest record ingest produces, below the brokers' default limit of 1 MB
// (message.max.bytes) with room for headers and batch overhead. A larger one could never be
// stored, and retrying it would stall its partition: it is refused as too large instead.
const maxRecordBytes = 900 << 10

// Normalizer turns the raw topics into the pipeline's messages: PostHog events into readable,
// redacted product.actions (key: session id), and Intercom notifications into
// conversation.events (key: conversation id). What cannot be decoded goes to the dead-letter
// topic with its reason.
type Normalizer struct {
	phraser  *phrasing.Phraser
	intercom intercom.NormalizeConfig
	contacts ContactEnricher // nil: no lookup
	out      Producer
	topics   kafka.Topics
	decoders sync.Pool // of *posthog.Decoder: partitions are handled concurrently

	postHogActions, postHogNoise, intercomEvents, intercomIgnored prometheus.Counter
}

// NewNormalizer builds the normaliser; contacts may be nil (no contact lookup). Its metric is
// registered on reg. The phraser, the notification normaliser and the contact lookup each redact
// or pseudonymise what they write, so nothing unredacted is produced.
func NewNormalizer(phraser *phrasing.Phraser, ic intercom.NormalizeConfig, contacts ContactEnricher, out Producer, topics kafka.Topics, reg prometheus.Registerer) (*Normalizer, error) {
	events, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threadline", Subsystem: "ingest", Name: "events_total",
		Help: "Decoded events by outcome: action (produced), noise (dropped by the noise rule), ignored.",
	}, []string{"source", "outcome"}))
	if err != nil {
		return nil, fmt.Errorf("ingest: register normaliser metrics: %w", err)
	}
	return &Normalizer{phraser: phraser, intercom: ic, contacts: contacts,
		out: out, topics: topics, decoders: sync.Pool{New: func() any { return new(posthog.Decoder) }},
		postHogActions:  events.WithLabelValues("posthog", "action"),
		postHogNoise:    events.WithLabelValues("posthog", "noise"),
		intercomEvents:  events.WithLabelValues("intercom", "event"),
		intercomIgnored: events.WithLabelValues("intercom", "ignored"),
	}, nil
}

// Handle processes the records of one partition of a raw topic. Undecodable records are returned
// as Permanent (the consumer dead-letters them and carries on); a failed contact lookup or produce
// is transient (retried without committing).
func (n *Normalizer) Handle(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	out := make([]*kgo.Record, 0, len(recs))
	for i, rec := range recs {
		var err error
		if rec.Topic == n.topics.IntercomRaw {
			out, err = n.notification(ctx, rec, out)
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
	// the decoder's events live until its next message: everything produced is copied out of them
	dec := n.decoders.Get().(*posthog.Decoder)
	defer n.decoders.Put(dec)
	events, err := dec.Decode(rec.Value, rec.Timestamp)
	if err != nil {
		return out, kafka.Permanent(decodeReason(err), err)
	}
	for _, ev := range events {
		pa, keep := n.phraser.Action(ev)
		if !keep {
			n.postHogNoise.Inc()
			continue
		}
		if pa.Action.SessionID == "" {
			// Server-side events have no browser session; the user is their own session.
			pa.Action.SessionID = "user:" + pa.Identity.DistinctID
		}
		b, err := messages.Marshal(pa)
		if err != nil {
			return out, kafka.Permanent(reasonEncode, err)
		}
		if len(b) > maxRecordBytes {
			return out, kafka.Permanent("too_large", fmt.Errorf("product action of %d bytes exceeds the record limit of %d", len(b), maxRecordBytes))
		}
		n.postHogActions.Inc()
		out = append(out, &kgo.Record{Topic: n.topics.ProductActions, Key: []byte(pa.Action.SessionID), Value: b})
	}
	return out, nil
}

// decodeReason names why posthog.Decode refused a message.
func decodeReason(err error) string {
	switch {
	case errors.Is(err, posthog.ErrUnknownShape):
		return reasonUnknownShape
	case errors.Is(err, posthog.ErrInvalidEvent):
		return reasonInvalid
	case errors.Is(err, posthog.ErrTooLarge):
		return reasonTooLarge
	}
	return reasonDecode
}

func (n *Normalizer) notification(ctx context.Context, rec *kgo.Record, out []*kgo.Record) ([]*kgo.Record, error) {
	note, err := intercom.ParseNotification(rec.Value)
	if err != nil {
		return out, kafka.Permanent(reasonDecode, err)
	}
	ev, ok, err := intercom.Normalize(note, n.intercom)
	if err != nil {
		return out, kafka.Permanent(reasonInvalid, err)
	}
	if !ok {
		n.intercomIgnored.Inc()
		return out, nil
	}
	if n.contacts != nil {
		if err := n.contacts.Enrich(ctx, &ev); err != nil {
			return out, fmt.Errorf("ingest: look up the contact of %s: %w", ev.EventID, err)
		}
	}
	b, err := messages.Marshal(ev)
	if err != nil {
		return out, kafka.Permanent(reasonEncode, err)
	}
	n.intercomEvents.Inc()
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
