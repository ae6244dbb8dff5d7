package triggers

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
)

// Evaluation is the Redis work of a batch of actions that Begin matched: the claims of the rules
// its actions met, its sessions' page events, and the writes deferred to the engine's next round
// trip. A caller with a round trip of its own to send puts it there (Queue, then Finish once the
// pipeline ran); Finish alone sends it in a round trip of its own.
//
// On a single server that is one round trip for the whole batch: the deferred writes, the SET PX
// of the event of each dwell wait the batch starts, and luaEvaluate (usually one call, see
// prepareEvaluate), which decides the claims, lists each emission as unconfirmed and schedules
// each dwell start atomically with the decision, and follows the sessions' pages, reading only
// the state of the sessions that start a wait or that the set of sessions with page state names.
// (A session's state is created and ended only by the consumer of its actions, Tick only removes
// it, so asking the set loses no event; the set is kept by the scripts, atomically with the
// states. A session that starts no wait sends only its earliest page event: only that one can end
// its pending page.)
//
// On a cluster, where a script keeps to one hash tag and the set cannot be kept, the round trip
// holds a call per user with claims and per session with page events; when the batch claims or
// starts anything, Begin sends a round trip before it that lists every claim as unconfirmed and
// schedules every dwell start, so that a crash after a decision always leaves a trace a Tick
// finds. The unconfirmed entries of claims that emitted nothing are removed with the next round
// trip (deferForget).
//
// An Evaluation is used by one goroutine. A nil *Evaluation (Begin found no Redis work) queues
// nothing and finishes with no events.
type Evaluation struct {
	e          *Engine
	claims     []claim
	sessions   []sessionPages // page events by session (groupSessions)
	waits      []waitEvent    // single server: stored with the calls (a cluster stores them in Begin)
	leaseUntil int64
	prepared   bool        // calls are built (at the first Queue)
	calls      []*evalCall // the luaEvaluate calls
	rt         *roundTrip  // what the last Queue queued
}

// Begin matches a batch of actions (in the order of their partition; see EvaluateBatch) against
// the rules in memory and returns the Redis work they need, nil, nil when there is none: no
// action matched, no rule has a dwell (or no page event came), and no write is deferred. On a
// cluster, when the batch claims or starts anything, it sends the round trip that lists the
// claims as unconfirmed and schedules the dwell starts itself.
//
// Raw properties (Input.RawProperties) are decoded here, for the actions a rule that reads them
// may match.
func (e *Engine) Begin(ctx context.Context, inputs []Input) (*Evaluation, error) {
	b := e.match(inputs)
	sessions := e.followed(groupSessions(b.pages))
	if len(b.claims) == 0 && len(sessions) == 0 && !e.hasDeferred() {
		return nil, nil
	}
	ev := &Evaluation{e: e, claims: b.claims, sessions: sessions,
		leaseUntil: e.clock().Add(e.cfg.ClaimLease).UnixMilli()}
	waits, err := waitEvents(b.pages)
	if err != nil {
		return nil, err
	}
	if !e.cluster {
		ev.waits = waits
		return ev, nil
	}
	first := e.newRoundTrip()
	for _, pe := range b.pages {
		for _, s := range pe.starts {
			first.pipe.ZAddNX(ctx, dueKey, redis.Z{Score: float64(s.due), Member: dueMember(pe.session, pe.id, s.rule)})
		}
	}
	e.queueWaitEvents(ctx, first.pipe, waits)
	if len(ev.claims) > 0 || first.pipe.Len() > 0 {
		// Removals go first: an entry kept for an undecided claim may be listed again now.
		e.carryDeferred(ctx, first)
		e.listUnconfirmed(ctx, first, ev.claims, ev.leaseUntil)
		if err := e.exec(ctx, first, "schedule"); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// followed keeps the sessions whose page events need Redis: those that start a wait, and those
// not known to have no page state (see pageIndex). A session that starts a wait is unknown again
// until its script call tells.
func (e *Engine) followed(sessions []sessionPages) []sessionPages {
	kept := sessions[:0]
	for _, sp := range sessions {
		switch {
		case sp.starts:
			e.pages.forget(sp.session)
		case e.pages.known(sp.session):
			continue
		}
		kept = append(kept, sp)
	}
	return kept
}

// ForgetSessions forgets which sessions are known to have no page state. Call it when this
// process starts consuming partitions of product actions it did not consume a moment ago:
// another replica may have started dwell waits for their sessions meanwhile.
func (e *Engine) ForgetSessions() { e.pages.reset() }

// Queue queues the evaluation's commands into pipe, a pipeline the caller executes right after
// (it may hold the caller's commands, before and after): the writes deferred to the engine's
// next round trip, the SET PX of the dwell waits' events and the luaEvaluate calls. It may be
// called again with a new pipeline, when the caller sends its round trip again: each call
// replaces what the previous one queued. It fails only when an event cannot be encoded.
func (ev *Evaluation) Queue(ctx context.Context, pipe redis.Pipeliner) error {
	if ev == nil {
		return nil
	}
	e := ev.e
	if !ev.prepared {
		calls, err := e.prepareEvaluate(ev.claims, ev.sessions, ev.leaseUntil)
		if err != nil {
			return err
		}
		ev.calls, ev.prepared = calls, true
	}
	rt := roundTripOn(pipe)
	if ev.rt != nil {
		rt.deferred = ev.rt.deferred // what the pipeline that was not sent carried
	}
	e.carryDeferred(ctx, rt)
	e.queueWaitEvents(ctx, pipe, ev.waits)
	queueCalls(ctx, rt, ev.calls)
	rt.sent()
	ev.rt = rt
	return nil
}

// Finish reads the replies of what Queue queued, once the caller executed the pipeline, and
// returns the events to emit, in input order (see EvaluateBatch). Calls the server did not know
// the script of (NOSCRIPT) are run again in a round trip of its own; if Queue was never called,
// Finish sends the whole evaluation in a round trip of its own. Only the evaluation's commands
// count: a failed command of the caller's is no error here, but a failed pipeline is (nothing is
// lost: events already claimed are returned again by Tick after the lease, and the deferred
// writes go with the engine's next round trip). Call it once.
func (ev *Evaluation) Finish(ctx context.Context) ([]messages.IntercomEvent, error) {
	if ev == nil {
		return nil, nil
	}
	e := ev.e
	if ev.rt == nil {
		pipe := e.rdb.Pipeline()
		if err := ev.Queue(ctx, pipe); err != nil {
			return nil, err
		}
		_, _ = pipe.Exec(ctx) // errors are read from each command
	}
	if err := e.complete(ctx, ev.rt, "claim"); err != nil {
		return nil, err
	}
	fired, forget, err := e.readClaims(ev.calls, sourceAction)
	if err != nil {
		return nil, err
	}
	e.deferForget(forget)
	return fired, nil
}
