package triggers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// batch is the Redis work an evaluation found.
type batch struct {
	claims []claim
	pages  []pageEvent // page events, grouped by session by groupSessions
}

// pageEvent is a pageview or pageleave of a session, with the dwell rules a pageview starts.
type pageEvent struct {
	session string
	id      string
	ms      int64
	starts  []pageStart
}

type pageStart struct {
	rule  string
	due   int64 // event-time ms at which the dwell is reached
	event messages.IntercomEvent
}

// sessionPages are the page events of one session in a batch that luaEvaluate needs: all of
// them, in input order, when one starts a dwell rule; else only the earliest (a session's page
// state is a pending page, which its first newer page event ends, so the later events of a
// session that starts no wait change nothing).
type sessionPages struct {
	session string
	events  []pageEvent
	starts  bool // an event starts a dwell rule
}

// groupSessions groups the page events by session, in first-seen order.
func groupSessions(pages []pageEvent) []sessionPages {
	if len(pages) == 0 {
		return nil
	}
	index := make(map[string]int, len(pages))
	out := make([]sessionPages, 0, len(pages))
	starts := false
	for i := range pages {
		pe := &pages[i]
		g, seen := index[pe.session]
		switch {
		case !seen:
			g = len(out)
			index[pe.session] = g
			out = append(out, sessionPages{session: pe.session, events: pages[i : i+1 : i+1]})
		case pe.ms < out[g].events[0].ms:
			out[g].events = pages[i : i+1 : i+1]
		}
		if len(pe.starts) > 0 {
			out[g].starts, starts = true, true
		}
	}
	if starts {
		for g := range out {
			if out[g].starts {
				out[g].events = nil
			}
		}
		for i := range pages {
			if sp := &out[index[pages[i].session]]; sp.starts {
				sp.events = append(sp.events, pages[i])
			}
		}
	}
	return out
}

// appendPageArgs appends a session's page events to the arguments of luaEvaluate: "1" when one
// starts a dwell rule, else "0", the number of events, then per event in event-time order: action
// id, event ms, the number of rules it starts, and per rule: rule, due ms, due-set member. A
// session that starts no wait sends only its earliest event: only that one can end its pending
// page. The events of the waits go separately (waitEvents).
func appendPageArgs(args []any, sp *sessionPages) []any {
	if !sp.starts {
		pe := &sp.events[0]
		return append(args, "0", 1, pe.id, pe.ms, 0)
	}
	if !slices.IsSortedFunc(sp.events, comparePageEvents) {
		slices.SortStableFunc(sp.events, comparePageEvents)
	}
	args = append(args, "1", len(sp.events))
	for i := range sp.events {
		pe := &sp.events[i]
		args = append(args, pe.id, pe.ms, len(pe.starts))
		for _, s := range pe.starts {
			args = append(args, s.rule, s.due, dueMember(pe.session, pe.id, s.rule))
		}
	}
	return args
}

// waitEvent is the event of a dwell wait a pageview starts, stored under its key (waitKey) by a
// plain SET PX ahead of the script calls (luaEvaluate need not carry it). A start the script then
// finds too old to apply leaves an event no page state names, which expires.
type waitEvent struct {
	key  string
	body []byte
}

// waitEvents encodes the events of the dwell waits the page events start.
func waitEvents(pages []pageEvent) ([]waitEvent, error) {
	var waits []waitEvent
	for i := range pages {
		pe := &pages[i]
		for _, s := range pe.starts {
			body, err := messages.Marshal(s.event)
			if err != nil {
				return nil, fmt.Errorf("triggers: encode event: %w", err)
			}
			waits = append(waits, waitEvent{key: waitKey(pe.session, s.rule, pe.id), body: body})
		}
	}
	return waits, nil
}

// queueWaitEvents queues the SET PX of each wait's event.
func (e *Engine) queueWaitEvents(ctx context.Context, pipe redis.Pipeliner, waits []waitEvent) {
	for _, w := range waits {
		pipe.Set(ctx, w.key, w.body, e.pageTTL)
	}
}

func comparePageEvents(a, b pageEvent) int { return cmp.Compare(a.ms, b.ms) }

// dueMember is a dwell wait's member of the due set: session, pageview and rule joined by GS
// (\x1d; none of them holds a control character, and the page events that carry the member to
// luaEvaluate separate fields with RS and US).
func dueMember(session, pageview, rule string) string {
	return session + "\x1d" + pageview + "\x1d" + rule
}

func parseDueMember(m string) (session, pageview, rule string, ok bool) {
	session, rest, ok1 := strings.Cut(m, "\x1d")
	pageview, rule, ok2 := strings.Cut(rest, "\x1d")
	if !ok1 || !ok2 || session == "" || pageview == "" || rule == "" {
		return "", "", "", false
	}
	return session, pageview, rule, true
}

// dueEntry is one scheduled dwell wait that Tick looks at.
type dueEntry struct {
	member, session, pageview, rule string
	due                             int64 // event-time ms
	verdict                         string
	current                         bool // its pageview was the session's current page when decided
}

// tickDwell decides the due dwell waits (entries of the due set, due by cutoff): decide, claim
// the emissions (on a cluster, list them as unconfirmed first), then settle the decided waits
// and forget the entries of claims that emitted nothing.
func (e *Engine) tickDwell(ctx context.Context, cutoff int64, due []redis.Z) ([]messages.IntercomEvent, error) {
	bySession := map[string][]*dueEntry{}
	var sessions []string
	var done []any // due entries to remove
	for _, z := range due {
		m, _ := z.Member.(string)
		s, pv, rule, ok := parseDueMember(m)
		if !ok {
			done = append(done, m)
			continue
		}
		if _, seen := bySession[s]; !seen {
			sessions = append(sessions, s)
		}
		bySession[s] = append(bySession[s], &dueEntry{member: m, session: s, pageview: pv, rule: rule, due: int64(z.Score)})
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
			if err := messages.Unmarshal([]byte(events[i]), &ev); err != nil || eventUserKey(&ev) == "" {
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
			e.carryDeferred(ctx, listed)
			e.listUnconfirmed(ctx, listed, claims, leaseUntil)
			if err := e.exec(ctx, listed, "schedule"); err != nil {
				return nil, err
			}
		}
		calls, err := e.prepareEvaluate(claims, nil, leaseUntil)
		if err != nil {
			return nil, err
		}
		rt := e.newRoundTrip()
		queueCalls(ctx, rt, calls)
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
				dg.keys = append(dg.keys, endKey(d.session, d.pageview), waitKey(d.session, d.rule, d.pageview))
				dg.args = append(dg.args, d.rule, d.pageview, d.due)
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
			d.current = len(reply) > 2
			entries = append(entries, d)
			events = append(events, body)
		}
	}
	return entries, events, nil
}

// queueSettle queues the removal of the decided waits: one UNLINK of their events per hash tag
// (see groupKeys), and luaSettle calls (see partition) that take the waits decided while their
// pageview was the session's current page out of its page state.
func (e *Engine) queueSettle(ctx context.Context, rt *roundTrip, decided []*dueEntry) {
	events := make([]string, len(decided))
	bySession := map[string][]*dueEntry{}
	var sessions []string
	for i, d := range decided {
		events[i] = waitKey(d.session, d.rule, d.pageview)
		if !d.current {
			continue
		}
		if _, ok := bySession[d.session]; !ok {
			sessions = append(sessions, d.session)
		}
		bySession[d.session] = append(bySession[d.session], d)
	}
	for _, keys := range e.groupKeys(events) {
		rt.pipe.Unlink(ctx, keys...)
	}
	for _, part := range e.partition(len(sessions), func(i int) string { return "s:" + sessions[i] }) {
		keys := make([]string, 0, len(part)+1)
		args := []any{"0"}
		for _, i := range part {
			list := bySession[sessions[i]]
			keys = append(keys, sessionKey(sessions[i]))
			args = append(args, len(list))
			for _, d := range list {
				args = append(args, d.rule, d.pageview)
			}
		}
		if !e.cluster {
			keys = append(keys, pagesKey)
			args[0] = "1"
		}
		rt.eval(ctx, e.scripts.settle, keys, args...)
	}
}
