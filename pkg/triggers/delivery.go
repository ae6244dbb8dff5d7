package triggers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// claim is one (rule, action) to decide.
type claim struct {
	rule    *compiledRule
	event   messages.IntercomEvent
	user    string // the user key of the event
	ms      int64  // the action's event time, for every
	seq     int    // the order of the claim's action, for the order of the output
	marker  string
	resolve bool // the user is known by an email hash only: emit for its remembered contact, or not at all
}

func newClaim(r *compiledRule, ev messages.IntercomEvent, ms int64, seq int) claim {
	user := eventUserKey(&ev)
	return claim{rule: r, event: ev, user: user, ms: ms, seq: seq, marker: markerKey(user, r.Name, ev.ActionID),
		resolve: strings.HasPrefix(user, emailUserPrefix)}
}

// maxPerCall caps the claims, sessions or markers one script call takes, so that no call
// holds Redis for long, however large the batch.
const maxPerCall = 500

// partition splits n items into the script calls that take them, in first-seen order, at most
// maxPerCall each. On a cluster, where a script may touch one slot only, each hash tag (tagOf)
// has calls of its own; on a single server any items may share a call.
func (e *Engine) partition(n int, tagOf func(i int) string) [][]int {
	if !e.cluster {
		all := make([]int, n)
		calls := make([][]int, 0, (n+maxPerCall-1)/maxPerCall)
		for i := range all {
			all[i] = i
		}
		for len(all) > 0 {
			size := min(len(all), maxPerCall)
			calls, all = append(calls, all[:size:size]), all[size:]
		}
		return calls
	}
	open := map[string]int{} // hash tag → its call being filled
	var calls [][]int
	for i := range n {
		g := tagOf(i)
		c, ok := open[g]
		if !ok || len(calls[c]) == maxPerCall {
			c = len(calls)
			open[g] = c
			calls = append(calls, nil)
		}
		calls[c] = append(calls[c], i)
	}
	return calls
}

// hashTag is the hash tag of a key, "" when it has none.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end < 0 {
		return ""
	}
	return key[open+1 : open+1+end]
}

// listUnconfirmed queues, on a cluster, every claim's entry in the unconfirmed set: before
// anything is decided, so that an emission a crash interrupts is always found by a Tick. An
// entry already there (an unconfirmed emission of someone else) keeps its lease. On a single
// server luaClaim lists each emission itself, atomically, and this queues nothing.
func (e *Engine) listUnconfirmed(ctx context.Context, rt *roundTrip, claims []claim, leaseUntil int64) {
	if !e.cluster {
		return
	}
	for _, c := range claims {
		rt.pipe.ZAddNX(ctx, unconfirmedKey, redis.Z{Score: float64(leaseUntil), Member: c.marker})
	}
}

// evalCall is one queued luaEvaluate call and the claims it decides, in order.
type evalCall struct {
	claims   []*claim
	sessions []string // the sessions the call follows, in the order of its reply's page status
	call     *scriptCall
}

// prepareEvaluate builds the luaEvaluate calls that decide the claims and follow the sessions'
// page events, for queueCalls to queue. On a single server a call takes up to maxPerCall claims
// and maxPerCall sessions, so a batch is usually one call, and asks the set of sessions with page
// state about the sessions that start no wait; on a cluster a call takes the claims of one user,
// or follows one session.
func (e *Engine) prepareEvaluate(claims []claim, sessions []sessionPages, leaseUntil int64) ([]*evalCall, error) {
	claimParts := e.partition(len(claims), func(i int) string { return "u:" + claims[i].user })
	sessionParts := e.partition(len(sessions), func(i int) string { return "s:" + sessions[i].session })
	n := max(len(claimParts), len(sessionParts))
	if e.cluster {
		n = len(claimParts) + len(sessionParts) // each call keeps to one hash tag
	}
	calls := make([]*evalCall, 0, n)
	for i := range n {
		var cpart, spart []int
		switch {
		case !e.cluster:
			if i < len(claimParts) {
				cpart = claimParts[i]
			}
			if i < len(sessionParts) {
				spart = sessionParts[i]
			}
		case i < len(claimParts):
			cpart = claimParts[i]
		default:
			spart = sessionParts[i-len(claimParts)]
		}
		ec := &evalCall{claims: make([]*claim, 0, len(cpart))}
		keys := make([]string, 0, 3*len(cpart)+3)
		args := make([]any, 7, 7+3*len(cpart)+2*len(spart)) // the header is set last
		for _, j := range cpart {
			c := &claims[j]
			body, err := messages.Marshal(c.event)
			if err != nil {
				return nil, fmt.Errorf("triggers: encode event: %w", err)
			}
			keys = append(keys, c.marker)
			if c.rule.everyMs > 0 {
				keys = append(keys, limiterKey(c.user, c.rule.Name))
			}
			spec := c.rule.everySpec
			var value any = body // the script adds the contact it resolves
			if c.resolve {
				keys = append(keys, contactKey(c.user))
				spec = "r" + spec
			} else {
				value = unconfirmedMarker(leaseUntil, body)
			}
			args = append(args, spec, c.ms, value)
			ec.claims = append(ec.claims, c)
		}
		// On a single server the sessions that start no wait are asked about (the set of sessions
		// with page state names the few to follow): their names go after the page events of the
		// sessions followed, then their earliest page events.
		var asked, askedEvents []any
		for _, j := range spart {
			sp := &sessions[j]
			if !e.cluster && !sp.starts {
				asked = append(asked, sp.session)
				askedEvents = appendPageArgs(askedEvents, sp)
				continue
			}
			keys = append(keys, sessionKey(sp.session))
			args = appendPageArgs(args, sp)
			ec.sessions = append(ec.sessions, sp.session)
		}
		followed := len(spart) - len(asked)
		if len(asked) > 0 {
			args = append(append(args, asked...), askedEvents...)
			for _, s := range asked {
				ec.sessions = append(ec.sessions, s.(string))
			}
		}
		sets := "0"
		if !e.cluster {
			keys = append(keys, unconfirmedKey, dueKey, pagesKey)
			sets = "1"
		}
		copy(args, []any{len(cpart), followed, len(asked), leaseUntil, e.cfg.MarkerTTL.Milliseconds(), e.pageTTL.Milliseconds(), sets})
		ec.call = &scriptCall{script: e.scripts.evaluate, keys: keys, args: args}
		calls = append(calls, ec)
	}
	return calls, nil
}

// queueCalls queues prepared luaEvaluate calls into rt.
func queueCalls(ctx context.Context, rt *roundTrip, calls []*evalCall) {
	for _, ec := range calls {
		rt.run(ctx, ec.call)
	}
}

// unitSep separates the fields of a marker's value (see scripts.go): the ASCII unit separator,
// which neither ids (actions with control characters do not trigger) nor JSON (which escapes it)
// contain.
const unitSep = '\x1f'

// unconfirmedMarker is the value of a new unconfirmed marker (see scripts.go) that resolved no
// contact: no redeliveries yet, no contact ids.
func unconfirmedMarker(leaseUntil int64, event []byte) []byte {
	v := make([]byte, 0, len(event)+24)
	v = append(v, stateUnconfirmed...)
	v = append(strconv.AppendInt(append(v, unitSep), leaseUntil, 10), unitSep, '0', unitSep, unitSep, unitSep)
	return append(v, event...)
}

// readClaims reads the decisions: it counts them and returns the events to emit, in the order
// of their actions (with the ids of the contacts resolved for users known by an email hash), and,
// on a cluster, the unconfirmed entries to forget (those of claims that emit nothing; an entry of
// an emission still unconfirmed elsewhere stays).
func (e *Engine) readClaims(calls []*evalCall, source string) ([]messages.IntercomEvent, []any, error) {
	var fired []*claim
	var forget []any
	for _, ec := range calls {
		results, err := ec.call.cmd.StringSlice()
		if err != nil {
			return nil, nil, fmt.Errorf("triggers: claim reply: %w", err)
		}
		if len(results) != len(ec.claims)+1 {
			return nil, nil, fmt.Errorf("triggers: claim reply: %d results for %d claims and the page status", len(results), len(ec.claims))
		}
		e.pages.update(ec.sessions, results[len(ec.claims)])
		for i, c := range ec.claims {
			verdict, ids, resolved := strings.Cut(results[i], "\x1f")
			switch verdict {
			case "fire":
				if resolved {
					external, contact, _ := strings.Cut(ids, "\x1f")
					c.event.UserID, c.event.IntercomUserID = cleanID(external), cleanID(contact)
				}
				c.rule.counters.emitted[source].Inc()
				fired = append(fired, c)
			case "limited":
				c.rule.counters.skipped[skipLimited].Inc()
				forget = append(forget, c.marker)
			case "unknown": // an email hash with no remembered contact: never guessed
				c.rule.counters.skipped[skipAnonymous].Inc()
				forget = append(forget, c.marker)
			case "dup:" + stateUnconfirmed: // its emitter confirms it, or a Tick emits it again
				c.rule.counters.skipped[skipDuplicate].Inc()
			default: // decided before: nothing of this claim is pending
				c.rule.counters.skipped[skipDuplicate].Inc()
				forget = append(forget, c.marker)
			}
		}
	}
	if !e.cluster {
		forget = nil // nothing was listed beforehand
	}
	slices.SortStableFunc(fired, func(a, b *claim) int { return a.seq - b.seq })
	out := make([]messages.IntercomEvent, len(fired))
	for i, c := range fired {
		out[i] = c.event
	}
	return out, forget, nil
}

// deferred are writes kept for the engine's next round trip, whichever it is: an evaluation's
// (Evaluation.Queue, or on a cluster Begin's schedule round trip), Tick's first, or Confirm's.
type deferred struct {
	forget  []any    // cluster: unconfirmed entries of claims that emitted nothing (deferForget)
	confirm []string // markers of produced events (ConfirmLater)
}

// maxDeferredConfirms bounds the markers ConfirmLater keeps. The engine's round trips (each
// evaluation and every Tick) send them all, so there are rarely more than one batch's; beyond
// the bound (round trips failing for long) the rest are let go, and Tick emits their events
// again after the lease, which consumers drop as repeats.
const maxDeferredConfirms = 10000

func (d *deferred) add(more deferred) {
	d.forget = append(d.forget, more.forget...)
	d.confirm = append(d.confirm, more.confirm...)
}

func (d *deferred) empty() bool { return len(d.forget) == 0 && len(d.confirm) == 0 }

// queue queues the writes: per marker to confirm one SET XX KEEPTTL that leaves it "confirmed"
// (and drops the stored event; a marker exists only for a claimed action, and one suppressed or
// given up stays decided), then one ZREM of the entries to forget and the confirmed markers from
// the unconfirmed set.
func (d *deferred) queue(ctx context.Context, pipe redis.Pipeliner) {
	if d.empty() {
		return
	}
	members := make([]any, 0, len(d.forget)+len(d.confirm))
	members = append(members, d.forget...)
	for _, mk := range d.confirm {
		pipe.SetArgs(ctx, mk, stateConfirmed, redis.SetArgs{Mode: "XX", KeepTTL: true})
		members = append(members, mk)
	}
	pipe.ZRem(ctx, unconfirmedKey, members...)
}

// keepDeferred keeps writes for the engine's next round trip (see carryDeferred), at most
// maxDeferredConfirms markers to confirm. An entry to forget whose removal is lost (a crash) is
// removed by a Tick after its lease.
func (e *Engine) keepDeferred(d deferred) {
	if d.empty() {
		return
	}
	e.deferredMu.Lock()
	defer e.deferredMu.Unlock()
	e.deferred.add(d)
	if over := len(e.deferred.confirm) - maxDeferredConfirms; over > 0 {
		e.deferred.confirm = e.deferred.confirm[:maxDeferredConfirms]
		e.log.Warn("triggers: too many confirmations wait for a round trip; the rest are let go and their events emitted again after the lease",
			zap.Int("let_go", over))
	}
}

// hasDeferred reports whether writes wait for the engine's next round trip.
func (e *Engine) hasDeferred() bool {
	e.deferredMu.Lock()
	defer e.deferredMu.Unlock()
	return !e.deferred.empty()
}

// carryDeferred takes the writes kept for the engine's next round trip into rt (which keeps them
// again if it fails) and queues everything rt carries.
func (e *Engine) carryDeferred(ctx context.Context, rt *roundTrip) {
	e.deferredMu.Lock()
	rt.deferred.add(e.deferred)
	e.deferred = deferred{}
	e.deferredMu.Unlock()
	rt.deferred.queue(ctx, rt.pipe)
}

// deferForget keeps, on a cluster, unconfirmed entries to remove with the next round trip.
func (e *Engine) deferForget(forget []any) {
	e.keepDeferred(deferred{forget: forget})
}

// ConfirmLater records that events returned by Evaluate, EvaluateBatch, Evaluation.Finish or Tick
// were produced, as Confirm does, but sends nothing: the confirmations go with the engine's next
// round trip, the next evaluation's (Evaluation.Queue puts them into the caller's pipeline), Tick's
// first (ahead of its read of the unconfirmed set, so a confirmed event is never emitted again),
// or Confirm's. Until then, and if the process dies first, the events are unconfirmed: Tick emits
// them again once their lease ends, and consumers drop the repeat (rule and action_id are its
// idempotency key). At most maxDeferredConfirms markers wait; those beyond are let go the same
// way.
func (e *Engine) ConfirmLater(events []messages.IntercomEvent) {
	e.keepDeferred(deferred{confirm: confirmMarkers(events)})
}

// Confirm records that events returned by Evaluate, EvaluateBatch, Evaluation.Finish or Tick were
// produced, so Tick does not emit them again, and sends the confirmations ConfirmLater kept;
// Confirm(ctx, nil) sends just those. Confirming twice, or an event that was never claimed, is
// harmless. It is one round trip with no script (none when there is nothing to confirm): per
// event one SET XX KEEPTTL that leaves its marker "confirmed" (and drops the stored event), and
// one ZREM of them all from the unconfirmed set. When it fails, the confirmations go with the
// engine's next round trip.
func (e *Engine) Confirm(ctx context.Context, events []messages.IntercomEvent) error {
	rt := e.newRoundTrip()
	rt.deferred.confirm = confirmMarkers(events)
	e.carryDeferred(ctx, rt)
	return e.exec(ctx, rt, "confirm")
}

// confirmMarkers are the markers of events to confirm.
func confirmMarkers(events []messages.IntercomEvent) []string {
	markers := make([]string, 0, len(events))
	for i := range events {
		ev := &events[i]
		user := eventUserKey(ev)
		if user == "" {
			continue
		}
		markers = append(markers, markerKey(user, ev.Rule, ev.ActionID))
		// An event for a contact resolved from an email hash was claimed under the hash.
		if byHash := emailUserPrefix + ev.EmailHash; ev.EmailHash != "" && user != byHash {
			markers = append(markers, markerKey(byHash, ev.Rule, ev.ActionID))
		}
	}
	return markers
}

// groupKeys splits keys into the script calls that take them (see partition), by hash tag.
func (e *Engine) groupKeys(keys []string) [][]string {
	var out [][]string
	for _, part := range e.partition(len(keys), func(i int) string { return hashTag(keys[i]) }) {
		call := make([]string, len(part))
		for j, i := range part {
			call[j] = keys[i]
		}
		out = append(out, call)
	}
	return out
}

// redeliver returns again the events of markers (entries of the unconfirmed set whose lease
// ended by now) that are still unconfirmed, at most MaxRedeliveries times each.
func (e *Engine) redeliver(ctx context.Context, now time.Time, markers []string) ([]messages.IntercomEvent, error) {
	newLease := now.Add(e.cfg.ClaimLease).UnixMilli()
	rt := e.newRoundTrip()
	groups := e.groupKeys(markers)
	calls := make([]*scriptCall, len(groups))
	for i, keys := range groups {
		calls[i] = rt.eval(ctx, e.scripts.recover, keys, now.UnixMilli(), newLease, e.cfg.MaxRedeliveries)
	}
	if err := e.exec(ctx, rt, "redeliver"); err != nil {
		return nil, err
	}

	var again []messages.IntercomEvent
	var forget []any
	update := e.newRoundTrip()
	for i, keys := range groups {
		replies, err := calls[i].cmd.Slice()
		if err != nil || len(replies) != len(keys) {
			return nil, fmt.Errorf("triggers: redeliver reply for %d markers: %v (%w)", len(keys), replies, err)
		}
		for j, mk := range keys {
			reply, _ := replies[j].([]any)
			verdict, body := replyStrings(reply)
			switch verdict {
			case "again":
				var ev messages.IntercomEvent
				if err := messages.Unmarshal([]byte(body), &ev); err != nil {
					e.log.Error("triggers: stored event unreadable; dropped", zap.String("marker", mk), zap.Error(err))
					forget = append(forget, mk)
					continue
				}
				if len(reply) == 4 { // the contact the claim resolved
					external, _ := reply[2].(string)
					contact, _ := reply[3].(string)
					if external != "" || contact != "" {
						ev.UserID, ev.IntercomUserID = cleanID(external), cleanID(contact)
					}
				}
				if r := e.ruleNamed(ev.Rule); r != nil {
					r.counters.emitted[sourceRedelivery].Inc()
				}
				e.log.Info("triggers: event not confirmed in time; emitted again",
					zap.String("rule", ev.Rule), zap.String("action_id", ev.ActionID))
				again = append(again, ev)
				update.pipe.ZAdd(ctx, unconfirmedKey, redis.Z{Score: float64(newLease), Member: mk})
			case "leased":
				lease, _ := strconv.ParseFloat(body, 64)
				update.pipe.ZAddXX(ctx, unconfirmedKey, redis.Z{Score: lease, Member: mk})
			case "gaveup":
				var ev messages.IntercomEvent
				_ = messages.Unmarshal([]byte(body), &ev) // for the log and the count only
				if r := e.ruleNamed(ev.Rule); r != nil {
					r.counters.gaveUp.Inc()
				}
				e.log.Error("triggers: event never confirmed; given up",
					zap.String("rule", ev.Rule), zap.String("action_id", ev.ActionID),
					zap.Int("emissions", e.cfg.MaxRedeliveries+1))
				forget = append(forget, mk)
			default:
				forget = append(forget, mk)
			}
		}
	}
	if len(forget) > 0 {
		update.pipe.ZRem(ctx, unconfirmedKey, forget...)
	}
	if err := e.exec(ctx, update, "redeliver"); err != nil {
		return nil, err
	}
	return again, nil
}

// replyStrings reads a script's {verdict, value} reply.
func replyStrings(reply []any) (string, string) {
	var verdict, value string
	if len(reply) > 0 {
		verdict, _ = reply[0].(string)
	}
	if len(reply) > 1 {
		value, _ = reply[1].(string)
	}
	return verdict, value
}

func (e *Engine) ruleNamed(name string) *compiledRule {
	if i, ok := e.byName[name]; ok {
		return &e.rules[i]
	}
	return nil
}
