package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/triggers"
)

// Producer is the part of a Kafka client the linker needs.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Store is the Redis-held join the linker drives.
type Store interface {
	RouteBatch(ctx context.Context, actions []messages.ProductAction) ([]messages.ConversationActions, error)
	ApplyHeld(ctx context.Context, ev messages.ConversationEvent, hold func(sessions []string)) ([]messages.ConversationActions, error)
}

var _ Store = (*linkstore.Store)(nil)

// Triggers decides which product actions become Intercom data events (nil: triggers are off).
type Triggers interface {
	EvaluateBatch(ctx context.Context, in []triggers.Input) ([]messages.IntercomEvent, error)
	Tick(ctx context.Context, now time.Time) ([]messages.IntercomEvent, error)
	Confirm(ctx context.Context, evs []messages.IntercomEvent) error
	RememberContact(ctx context.Context, contacts ...triggers.Contact) error
	NewestEventTime() time.Time
}

var _ Triggers = (*triggers.Engine)(nil)

// Linker joins product.actions with conversation.events and writes conversation.actions.
//
// Delivery: a poll batch is routed through Redis (one pipelined round of scripts), its output
// produced, and only then are the offsets marked. A crash between the Redis write and the commit
// replays the batch; the store answers a repeat with the same output, so nothing is lost and any
// repeat carries the same action ids, which the notewriter drops. Kafka transactions would not
// make the Redis side effect atomic with the commit, so they are not used here.
//
// Order at the link: the pre-conversation batch must reach conversation.actions before the first
// live action of the session. Link-and-produce holds the sessions it links exclusively and
// route-and-produce holds the sessions of its batch shared (see sessionOrder), so within one
// linker process a live action never overtakes the flush, while batches of other sessions go on
// meanwhile. (Across replicas the two topics' partitions may live in different processes; then a
// live action can precede the flush by the few milliseconds of its produce.)
//
// With trigger rules, every routed batch is also evaluated for Intercom data events, which go to
// intercom.events (key: user) before the batch is marked; an event is confirmed once produced, and
// the engine sends an unconfirmed one again after a crash.
type Linker struct {
	store    Store
	triggers Triggers
	out      Producer
	topics   kafka.Topics
	order    *sessionOrder
}

// NewLinker builds the linker; trig may be nil.
func NewLinker(store Store, trig Triggers, out Producer, topics kafka.Topics) *Linker {
	return &Linker{store: store, triggers: trig, out: out, topics: topics, order: newSessionOrder()}
}

// Handle processes the records of one partition of product.actions or conversation.events.
func (l *Linker) Handle(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if recs[0].Topic == l.topics.ConversationEvents {
		return l.handleEvents(ctx, recs)
	}
	return l.handleActions(ctx, recs)
}

func (l *Linker) handleActions(ctx context.Context, recs []*kgo.Record) error {
	actions := make([]messages.ProductAction, 0, len(recs))
	for i, rec := range recs {
		var pa messages.ProductAction
		if err := l.decodeAction(rec.Value, &pa); err != nil {
			if err := l.route(ctx, actions); err != nil {
				return err
			}
			return &kafka.RecordError{Index: i, Err: err}
		}
		actions = append(actions, pa)
	}
	return l.route(ctx, actions)
}

func (l *Linker) route(ctx context.Context, actions []messages.ProductAction) error {
	if len(actions) == 0 {
		return nil
	}
	if err := l.routeInOrder(ctx, actions); err != nil {
		return err
	}
	if l.triggers == nil {
		return nil
	}
	in := make([]triggers.Input, len(actions))
	for i, pa := range actions {
		in[i] = triggers.Input{Action: pa, User: triggers.UserFromIdentity(pa.Identity)}
	}
	evs, err := l.triggers.EvaluateBatch(ctx, in)
	if err != nil {
		return fmt.Errorf("linker: triggers: %w", err)
	}
	return l.emit(ctx, evs)
}

func (l *Linker) routeInOrder(ctx context.Context, actions []messages.ProductAction) error {
	defer l.order.routing(actions)()
	out, err := l.store.RouteBatch(ctx, actions)
	if err != nil {
		return fmt.Errorf("linker: route: %w", err)
	}
	return l.produce(ctx, out)
}

// emit produces data events to intercom.events and confirms them.
func (l *Linker) emit(ctx context.Context, evs []messages.IntercomEvent) error {
	if len(evs) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		b, err := messages.Marshal(evs[i])
		if err != nil {
			return fmt.Errorf("linker: encode data event: %w", err)
		}
		recs[i] = &kgo.Record{Topic: l.topics.IntercomEvents, Key: []byte(triggers.EventKey(&evs[i])), Value: b}
	}
	if err := l.out.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("linker: produce data events: %w", err)
	}
	return l.triggers.Confirm(ctx, evs)
}

// RunTriggers fires the rules that wait for time to pass (dwell on a page) about once a second, in
// wall-clock time once the consumer has caught up and in the newest event time before that, so a
// replay decides as the live run did.
func (l *Linker) RunTriggers(ctx context.Context, caughtUp func() bool, log *zap.Logger) error {
	if l.triggers == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		if !caughtUp() {
			now = l.triggers.NewestEventTime()
		}
		evs, err := l.triggers.Tick(ctx, now)
		if err == nil {
			err = l.emit(ctx, evs)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("trigger tick failed; the next tick tries again", zap.Error(err))
		}
	}
}

func (l *Linker) handleEvents(ctx context.Context, recs []*kgo.Record) error {
	for i, rec := range recs {
		var ev messages.ConversationEvent
		if err := decodeEvent(rec.Value, &ev); err != nil {
			return &kafka.RecordError{Index: i, Err: err}
		}
		if err := l.apply(ctx, ev); err != nil {
			return &kafka.RecordError{Index: i, Err: fmt.Errorf("linker: apply %s: %w", ev.EventID, err)}
		}
	}
	return nil
}

func (l *Linker) apply(ctx context.Context, ev messages.ConversationEvent) error {
	// A contact known by its email hash lets trigger rules reach a user whose actions carry only
	// that hash.
	if l.triggers != nil && ev.EmailHash != "" {
		if err := l.triggers.RememberContact(ctx, triggers.ContactFromEvent(ev)); err != nil {
			return fmt.Errorf("linker: triggers: %w", err)
		}
	}
	held := l.order.linking(ev)
	defer held.release()
	out, err := l.store.ApplyHeld(ctx, ev, held.hold)
	if err != nil {
		return err
	}
	return l.produce(ctx, out)
}

// routedAction is a product action without its properties: only trigger rules read them, and
// decoding them (a map per action) is a good part of the linker's work.
type routedAction struct {
	Version  int               `json:"version"`
	Action   messages.Action   `json:"action"`
	Identity messages.Identity `json:"identity"`
}

// MessageVersion implements messages.Versioned.
func (a routedAction) MessageVersion() int { return a.Version }

// decodeAction decodes and checks a product action; its properties only when trigger rules are on.
func (l *Linker) decodeAction(b []byte, pa *messages.ProductAction) error {
	if l.triggers == nil {
		var ra routedAction
		if err := messages.Decode(b, &ra); err != nil {
			return kafka.Permanent("decode", err)
		}
		*pa = messages.ProductAction{Version: ra.Version, Action: ra.Action, Identity: ra.Identity}
	} else if err := messages.Decode(b, pa); err != nil {
		return kafka.Permanent("decode", err)
	}
	if err := linkstore.CheckAction(*pa); err != nil {
		return kafka.Permanent("invalid", err)
	}
	return nil
}

func decodeEvent(b []byte, ev *messages.ConversationEvent) error {
	if err := messages.Decode(b, ev); err != nil {
		return kafka.Permanent("decode", err)
	}
	if err := linkstore.CheckEvent(*ev); err != nil {
		return kafka.Permanent("invalid", err)
	}
	return nil
}

func (l *Linker) produce(ctx context.Context, out []messages.ConversationActions) error {
	if len(out) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(out))
	for i, ca := range out {
		b, err := messages.Marshal(ca)
		if err != nil {
			return fmt.Errorf("linker: encode: %w", err)
		}
		recs[i] = &kgo.Record{Topic: l.topics.ConversationActions, Key: []byte(ca.ConversationID), Value: b}
	}
	if err := l.out.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("linker: produce: %w", err)
	}
	return nil
}
