package triggers

import (
	"context"
	"encoding/json"
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
	rule   *compiledRule
	event  messages.IntercomEvent
	user   string // the user key of the event
	ms     int64  // the action's event time, for every
	seq    int    // the order of the claim's action, for the order of the output
	marker string
}

func newClaim(r *compiledRule, ev messages.IntercomEvent, ms int64, seq int) claim {
	user := eventUserKey(&ev)
	return claim{rule: r, event: ev, user: user, ms: ms, seq: seq, marker: markerKey(user, r.Name, ev.ActionID)}
}

// maxPerCall caps the claims, sessions or markers one script call takes, so that no call
// holds Redis for long, however large the batch.
const maxPerCall = 500

// partition splits n items into the script calls that take them, in first-seen order, at most
// maxPerCall each. On a cluster, where a script may touch one slot only, each hash tag (tagOf)
// has calls of its own; on a single server any items may share a call.
func (e *Engine) partition(n int, tagOf func(i int) string) [][]int {
	open := map[string]int{} // group → its call being filled
	var calls [][]int
	for i := range n {
		g := ""
		if e.cluster {
			g = tagOf(i)
		}
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

// claimGroup is one queued luaClaim call and the claims it decides, in order.
type claimGroup struct {
	claims []*claim
	call   *scriptCall
}

// queueClaims queues the claims' luaClaim calls (see partition).
func (e *Engine) queueClaims(ctx context.Context, rt *roundTrip, claims []claim, leaseUntil int64) ([]*claimGroup, error) {
	var groups []*claimGroup
	for _, part := range e.partition(len(claims), func(i int) string { return "u:" + claims[i].user }) {
		cg := &claimGroup{}
		keys := make([]string, 0, 2*len(part)+1)
		args := make([]any, 0, 2+4*len(part))
		args = append(args, leaseUntil, e.cfg.MarkerTTL.Milliseconds())
		for _, i := range part {
			c := &claims[i]
			body, err := json.Marshal(c.event)
			if err != nil {
				return nil, fmt.Errorf("triggers: encode event: %w", err)
			}
			keys = append(keys, c.marker, limiterKey(c.user, c.rule.Name))
			args = append(args, c.event.ActionID, c.ms, c.rule.everyMs, string(body))
			cg.claims = append(cg.claims, c)
		}
		if !e.cluster {
			keys = append(keys, unconfirmedKey)
		}
		cg.call = rt.eval(ctx, e.scripts.claim, keys, args...)
		groups = append(groups, cg)
	}
	return groups, nil
}

// readClaims reads the decisions: it counts them and returns the events to emit, in the order
// of their actions, and, on a cluster, the unconfirmed entries to forget (those of claims that
// emit nothing; an entry of an emission still unconfirmed elsewhere stays).
func (e *Engine) readClaims(groups []*claimGroup, source string) ([]messages.IntercomEvent, []any, error) {
	var fired []*claim
	var forget []any
	for _, cg := range groups {
		results, err := cg.call.cmd.StringSlice()
		if err != nil {
			return nil, nil, fmt.Errorf("triggers: claim reply: %w", err)
		}
		if len(results) != len(cg.claims) {
			return nil, nil, fmt.Errorf("triggers: claim reply: %d results for %d claims", len(results), len(cg.claims))
		}
		for i, c := range cg.claims {
			switch results[i] {
			case "fire":
				c.rule.counters.emitted[source].Inc()
				fired = append(fired, c)
			case "limited":
				c.rule.counters.skipped[skipLimited].Inc()
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

// Confirm records that events returned by Evaluate, EvaluateBatch or Tick were produced, so Tick
// does not emit them again. Confirming twice, or an event that was never claimed, is harmless.
func (e *Engine) Confirm(ctx context.Context, events []messages.IntercomEvent) error {
	markers := make([]string, 0, len(events))
	for i := range events {
		if user := eventUserKey(&events[i]); user != "" {
			markers = append(markers, markerKey(user, events[i].Rule, events[i].ActionID))
		}
	}
	if len(markers) == 0 {
		return nil
	}
	rt := e.newRoundTrip()
	members := make([]any, len(markers))
	for i, mk := range markers {
		members[i] = mk
	}
	for _, keys := range e.groupKeys(markers) {
		rt.eval(ctx, e.scripts.confirm, keys)
	}
	rt.pipe.ZRem(ctx, unconfirmedKey, members...)
	return e.exec(ctx, rt, "confirm")
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
				if err := json.Unmarshal([]byte(body), &ev); err != nil {
					e.log.Error("triggers: stored event unreadable; dropped", zap.String("marker", mk), zap.Error(err))
					forget = append(forget, mk)
					continue
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
				_ = json.Unmarshal([]byte(body), &ev) // for the log and the count only
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
