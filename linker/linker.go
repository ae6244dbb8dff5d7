package main

import (
	"context"
	stdjson "encoding/json"
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
	RouteBatch(ctx context.Context, actions []messages.ProductAction, riders ...linkstore.Rider) ([]messages.ConversationActions, error)
	ApplyHeld(ctx context.Context, ev messages.ConversationEvent, hold func(sessions []string)) ([]messages.ConversationActions, error)
}

var _ Store = (*linkstore.Store)(nil)

// Triggers decides which product actions become Intercom data events (nil: triggers are off).
type Triggers interface {
	Begin(ctx context.Context, in []triggers.Input) (*triggers.Evaluation, error)
	Tick(ctx context.Context, now time.Time) ([]messages.IntercomEvent, error)
	ConfirmLater(evs []messages.IntercomEvent)
	Confirm(ctx context.Context, evs []messages.IntercomEvent) error
	RememberContact(ctx context.Context, contacts ...triggers.Contact) error
	NewestEventTime() time.Time
	ForgetSessions()
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
// intercom.events (key: user) before the batch is marked. The evaluation's Redis work rides the
// batch's route round trip, and an event's confirmation rides the engine's next one (the next
// batch's, or the next tick's): the engine sends an event unconfirmed after a crash again, and the
// notewriter drops the repeat (it records each rule and action it posted).
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

var _ kafka.AssignmentListener = (*Linker)(nil)

// Assigned is told of the partitions the consumer starts on. Trigger rules remember which
// sessions have no page state, which holds only while this process consumes their actions
// without a break: new partitions of product.actions make them forget it.
func (l *Linker) Assigned(topic string, _ []int32) {
	if topic == l.topics.ProductActions && l.triggers != nil {
		l.triggers.ForgetSessions()
	}
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
	var props [][]byte // with trigger rules: each action's properties, still encoded
	for i, rec := range recs {
		var ra routedAction
		if err := decodeAction(rec.Value, &ra); err != nil {
			if err := l.route(ctx, actions, props); err != nil {
				return err
			}
			return &kafka.RecordError{Index: i, Err: err}
		}
		actions = append(actions, messages.ProductAction{Version: ra.Version, Action: ra.Action, Identity: ra.Identity})
		if l.triggers != nil {
			props = append(props, ra.Properties)
		}
	}
	return l.route(ctx, actions, props)
}

func (l *Linker) route(ctx context.Context, actions []messages.ProductAction, props [][]byte) error {
	if len(actions) == 0 {
		return nil
	}
	if l.triggers == nil {
		return l.routeInOrder(ctx, actions)
	}
	in := make([]triggers.Input, len(actions))
	for i := range actions {
		in[i] = triggers.Input{Action: &actions[i], RawProperties: props[i]}
	}
	eval, err := l.triggers.Begin(ctx, in)
	if err != nil {
		return fmt.Errorf("linker: triggers: %w", err)
	}
	if eval == nil {
		return l.routeInOrder(ctx, actions)
	}
	if err := l.routeInOrder(ctx, actions, eval); err != nil {
		return err
	}
	evs, err := eval.Finish(ctx)
	if err != nil {
		return fmt.Errorf("linker: triggers: %w", err)
	}
	return l.emit(ctx, evs)
}

func (l *Linker) routeInOrder(ctx context.Context, actions []messages.ProductAction, riders ...linkstore.Rider) error {
	defer l.order.routing(actions)()
	out, err := l.store.RouteBatch(ctx, actions, riders...)
	if err != nil {
		return fmt.Errorf("linker: route: %w", err)
	}
	return l.produce(ctx, out)
}

// emit produces data events to intercom.events; the engine confirms them with its next round trip.
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
	l.triggers.ConfirmLater(evs)
	return nil
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
			// Confirm what was produced, so another replica does not send it again.
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := l.triggers.Confirm(flush, nil); err != nil {
				log.Warn("confirming the last data events failed; they are sent again after their lease", zap.Error(err))
			}
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

// routedAction is a product action with its properties left encoded: routing never reads them,
// and trigger rules decode them only for the few actions a rule that reads a property may match
// (decoding them, a map per action, would be a good part of the linker's work).
type routedAction struct {
	Version    int                `json:"version"`
	Action     messages.Action    `json:"action"`
	Identity   messages.Identity  `json:"identity"`
	Properties stdjson.RawMessage `json:"properties,omitempty"`
}

// MessageVersion implements messages.Versioned.
func (a routedAction) MessageVersion() int { return a.Version }

// decodeAction decodes and checks a product action.
func decodeAction(b []byte, ra *routedAction) error {
	if err := messages.Decode(b, ra); err != nil {
		return kafka.Permanent("decode", err)
	}
	if err := linkstore.CheckAction(messages.ProductAction{Version: ra.Version, Action: ra.Action, Identity: ra.Identity}); err != nil {
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
