package triggers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// batch is the Redis work an evaluation found.
type batch struct {
	claims   []claim
	sessions map[string][]pageEvent // session → its page events
	order    []string               // sessions in first-seen order
}

// pageEvent is a pageview or pageleave of a session, with the dwell rules a pageview starts.
type pageEvent struct {
	id     string
	ms     int64
	kind   string
	starts []pageStart
}

type pageStart struct {
	rule  string
	due   int64 // event-time ms at which the dwell is reached
	event messages.IntercomEvent
}

func (b *batch) pageEvent(session string, pe pageEvent) {
	if b.sessions == nil {
		b.sessions = map[string][]pageEvent{}
	}
	if _, ok := b.sessions[session]; !ok {
		b.order = append(b.order, session)
	}
	b.sessions[session] = append(b.sessions[session], pe)
}

// run does the Redis work of an evaluation. On a single server that is one round trip and
// usually one script call: it decides the claims and follows the pages of every session with
// page events (most have no page state and cost their share of one EXISTS), and lists each
// emission as unconfirmed and schedules each dwell start atomically with the decision. On a
// cluster, where a script keeps to one hash tag, the same round trip holds a call per user with
// claims and per session; when the batch claims or starts anything, a round trip before it lists
// every claim as unconfirmed and schedules every dwell start, so that a crash after a decision
// always leaves a trace a Tick finds. The unconfirmed entries of claims that emitted nothing are
// removed with the next round trip (deferForget).
func (e *Engine) run(ctx context.Context, b *batch) ([]messages.IntercomEvent, error) {
	leaseUntil := e.clock().Add(e.cfg.ClaimLease).UnixMilli()
	rt := e.newRoundTrip()
	if e.cluster {
		first := e.newRoundTrip()
		for _, session := range b.order {
			for _, pe := range b.sessions[session] {
				for _, s := range pe.starts {
					first.pipe.ZAddNX(ctx, dueKey, redis.Z{Score: float64(s.due), Member: dueMember(session, pe.id, s.rule)})
				}
			}
		}
		if len(b.claims) > 0 || first.pipe.Len() > 0 {
			// Removals go first: an entry kept for an undecided claim may be listed again now.
			e.queueForget(ctx, first)
			e.listUnconfirmed(ctx, first, b.claims, leaseUntil)
			if err := e.exec(ctx, first, "schedule"); err != nil {
				return nil, err
			}
		}
	}
	e.queueForget(ctx, rt)
	calls, err := e.queueEvaluate(ctx, rt, b.claims, b.order, b.sessions, leaseUntil)
	if err != nil {
		return nil, err
	}
	if err := e.exec(ctx, rt, "claim"); err != nil {
		return nil, err
	}
	fired, forget, err := e.readClaims(calls, sourceAction)
	if err != nil {
		return nil, err
	}
	e.deferForget(forget)
	return fired, nil
}

// Separators of appendPageEvents: ASCII record and unit separators, which neither ids (actions
// with control characters do not trigger) nor JSON (which escapes them) contain.
const (
	recordSep = '\x1e'
	unitSep   = '\x1f'
)

// appendPageEvents appends to buf a session's page events in event-time order for luaEvaluate:
// "1" when one starts a dwell rule, else "0", then per event its fields, each ended by unitSep,
// and recordSep.
func appendPageEvents(buf []byte, session string, list []pageEvent) ([]byte, error) {
	if !slices.IsSortedFunc(list, comparePageEvents) {
		slices.SortStableFunc(list, comparePageEvents)
	}
	flag := len(buf)
	buf = append(buf, '0')
	for _, pe := range list {
		buf = append(append(buf, pe.id...), unitSep)
		buf = append(strconv.AppendInt(buf, pe.ms, 10), unitSep)
		if pe.kind == messages.KindPageview {
			buf = append(buf, 'v', unitSep)
		} else {
			buf = append(buf, 'l', unitSep)
		}
		for _, s := range pe.starts {
			body, err := json.Marshal(s.event)
			if err != nil {
				return nil, fmt.Errorf("triggers: encode event: %w", err)
			}
			buf = append(append(buf, s.rule...), unitSep)
			buf = append(strconv.AppendInt(buf, s.due, 10), unitSep)
			buf = append(append(buf, dueMember(session, pe.id, s.rule)...), unitSep)
			buf = append(append(buf, body...), unitSep)
			buf[flag] = '1'
		}
		buf = append(buf, recordSep)
	}
	return buf, nil
}

func comparePageEvents(a, b pageEvent) int { return cmp.Compare(a.ms, b.ms) }

func dueMember(session, pageview, rule string) string {
	b, _ := json.Marshal([3]string{session, pageview, rule}) // strings always encode
	return string(b)
}

func parseDueMember(m string) (session, pageview, rule string, ok bool) {
	var v [3]string
	if err := json.Unmarshal([]byte(m), &v); err != nil {
		return "", "", "", false
	}
	return v[0], v[1], v[2], true
}

// dueEntry is one scheduled dwell wait that Tick looks at.
type dueEntry struct {
	member, session, pageview, rule string
	verdict                         string
}

// tickDwell decides the due dwell waits (members of the due set, due by cutoff): decide, claim
// the emissions (on a cluster, list them as unconfirmed first), then settle the decided waits
// and forget the entries of claims that emitted nothing.
func (e *Engine) tickDwell(ctx context.Context, cutoff int64, members []string) ([]messages.IntercomEvent, error) {
	bySession := map[string][]*dueEntry{}
	var sessions []string
	var done []any // due entries to remove
	for _, m := range members {
		s, pv, rule, ok := parseDueMember(m)
		if !ok {
			done = append(done, m)
			continue
		}
		if _, seen := bySession[s]; !seen {
			sessions = append(sessions, s)
		}
		bySession[s] = append(bySession[s], &dueEntry{member: m, session: s, pageview: pv, rule: rule})
	}

	entries, events, err := e.decide(ctx, sessions, bySession, cutoff)
	if err != nil {
		return nil, err
	}
	var claims []claim
	var decided []*dueEntry
	for i, d := range entries {
		r := e.ruleNamed(d.rule)
		switch {
		case d.verdict == "wait":
			continue
		case d.verdict == "fire" && r != nil:
			var ev messages.IntercomEvent
			if err := json.Unmarshal([]byte(events[i]), &ev); err != nil || eventUserKey(&ev) == "" {
				e.log.Error("triggers: stored dwell event unreadable; dropped", zap.String("rule", d.rule), zap.Error(err))
				break
			}
			claims = append(claims, newClaim(r, ev, ev.CreatedAt*1000, i))
		case d.verdict == "left" && r != nil:
			r.counters.skipped[skipLeft].Inc()
		}
		decided = append(decided, d)
	}

	var fired []messages.IntercomEvent
	var forget []any
	if len(claims) > 0 {
		leaseUntil := e.clock().Add(e.cfg.ClaimLease).UnixMilli()
		if e.cluster {
			listed := e.newRoundTrip()
			e.queueForget(ctx, listed)
			e.listUnconfirmed(ctx, listed, claims, leaseUntil)
			if err := e.exec(ctx, listed, "schedule"); err != nil {
				return nil, err
			}
		}
		rt := e.newRoundTrip()
		calls, err := e.queueEvaluate(ctx, rt, claims, nil, nil, leaseUntil)
		if err != nil {
			return nil, err
		}
		if err := e.exec(ctx, rt, "claim"); err != nil {
			return nil, err
		}
		if fired, forget, err = e.readClaims(calls, sourceDwell); err != nil {
			return nil, err
		}
	}

	settle := e.newRoundTrip()
	if len(forget) > 0 {
		settle.pipe.ZRem(ctx, unconfirmedKey, forget...)
	}
	e.queueSettle(ctx, settle, decided)
	for _, d := range decided {
		done = append(done, d.member)
	}
	if len(done) > 0 {
		settle.pipe.ZRem(ctx, dueKey, done...)
	}
	if err := e.exec(ctx, settle, "settle"); err != nil {
		return nil, err
	}
	return fired, nil
}

// decide runs luaDecide for the sessions' due entries (see partition) and returns the entries
// in call order with their verdicts set, and the event JSON of those that fire.
func (e *Engine) decide(ctx context.Context, sessions []string, bySession map[string][]*dueEntry, cutoff int64) ([]*dueEntry, []string, error) {
	type decideGroup struct {
		keys    []string
		args    []any
		entries []*dueEntry
		call    *scriptCall
	}
	var groups []*decideGroup
	for _, part := range e.partition(len(sessions), func(i int) string { return "s:" + sessions[i] }) {
		dg := &decideGroup{args: []any{cutoff}}
		for _, i := range part {
			list := bySession[sessions[i]]
			dg.keys = append(dg.keys, sessionKey(sessions[i]))
			dg.args = append(dg.args, len(list))
			for _, d := range list {
				dg.args = append(dg.args, d.rule, d.pageview)
				dg.entries = append(dg.entries, d)
			}
		}
		groups = append(groups, dg)
	}
	rt := e.newRoundTrip()
	for _, dg := range groups {
		dg.call = rt.eval(ctx, e.scripts.decide, dg.keys, dg.args...)
	}
	if err := e.exec(ctx, rt, "decide"); err != nil {
		return nil, nil, err
	}
	var entries []*dueEntry
	var events []string
	for _, dg := range groups {
		replies, err := dg.call.cmd.Slice()
		if err != nil || len(replies) != len(dg.entries) {
			return nil, nil, fmt.Errorf("triggers: decide reply for %d waits: %v (%w)", len(dg.entries), replies, err)
		}
		for i, d := range dg.entries {
			reply, _ := replies[i].([]any)
			var body string
			d.verdict, body = replyStrings(reply)
			entries = append(entries, d)
			events = append(events, body)
		}
	}
	return entries, events, nil
}

// queueSettle queues luaSettle calls that remove the decided waits from their sessions (see
// partition).
func (e *Engine) queueSettle(ctx context.Context, rt *roundTrip, decided []*dueEntry) {
	bySession := map[string][]*dueEntry{}
	var sessions []string
	for _, d := range decided {
		if _, ok := bySession[d.session]; !ok {
			sessions = append(sessions, d.session)
		}
		bySession[d.session] = append(bySession[d.session], d)
	}
	for _, part := range e.partition(len(sessions), func(i int) string { return "s:" + sessions[i] }) {
		keys := make([]string, 0, len(part))
		var args []any
		for _, i := range part {
			list := bySession[sessions[i]]
			keys = append(keys, sessionKey(sessions[i]))
			args = append(args, len(list))
			for _, d := range list {
				args = append(args, d.rule, d.pageview)
			}
		}
		rt.eval(ctx, e.scripts.settle, keys, args...)
	}
}
