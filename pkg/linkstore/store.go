package linkstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// ErrInvalidInput marks an action or event the store cannot route; callers dead-letter it.
var ErrInvalidInput = errors.New("linkstore: invalid input")

// maxActionsPerCall bounds the actions one route script call handles; more of one session in a
// batch are split over several calls, in order, in the same pipeline.
const maxActionsPerCall = 500

// Store is the linker's Redis state. It is safe for concurrent use, and any number of stores
// (linker replicas) may share one Redis or Redis Cluster.
type Store struct {
	rdb     redis.UniversalClient
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	now     func() time.Time
	scripts scripts
	hints   *hints
	// packCalls lets one script call hold several sessions or identities: true unless rdb is
	// a Redis Cluster client, where a call holds the keys of one hash tag only, or the server
	// refused a packed call (a proxy in front of a sharded Redis answers CROSSSLOT).
	packCalls atomic.Bool
}

// New returns a Store on rdb. cfg should have passed Validate; its zero fields take defaults.
// Metrics are registered on reg when it is not nil; now is the clock (time.Now when nil).
func New(rdb redis.UniversalClient, cfg Config, log *zap.Logger, reg prometheus.Registerer, now func() time.Time) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	s := &Store{
		rdb:     rdb,
		cfg:     cfg.withDefaults(),
		log:     log,
		metrics: newMetrics(reg, log),
		now:     now,
		scripts: newScripts(),
		hints:   newHints(),
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s.packCalls.Store(!cluster)
	return s
}

// CheckAction reports whether RouteBatch can handle a; an error wraps ErrInvalidInput.
func CheckAction(a messages.ProductAction) error {
	switch {
	case a.Action.ActionID == "":
		return fmt.Errorf("%w: action without action_id", ErrInvalidInput)
	case a.Action.SessionID == "":
		return fmt.Errorf("%w: action %s without session_id", ErrInvalidInput, a.Action.ActionID)
	}
	return nil
}

// candidate is a conversation an identity offers to its sessions.
type candidate struct {
	conv, entry string
	v           float64
}

// entryHead is the part of a link entry Go reads.
type entryHead struct {
	V  float64 `json:"v"`
	St string  `json:"st"`
	WS string  `json:"ws"`
}

// decision is what the route script decided for one action, as stored for repeats: the
// pre-conversation batches flushed just before it, and the conversations it went to.
type decision struct {
	Pre []flushedBatch `json:"p"`
	Fwd [][2]string    `json:"f"`
}

// flushedBatch is one pre-conversation batch as a script encodes it.
type flushedBatch struct {
	Conv      string            `json:"c"`
	Workspace string            `json:"w"`
	Actions   []messages.Action `json:"a"`
}

// routeCall is a run of one session's actions in a route script call: its keys, its part of
// the arguments, and its part of the reply.
type routeCall struct {
	session    string
	idx        []int
	candidates []candidate
	identities []string // identity keys to add to the session's set
	withBodies bool
	keys       []string
	args       []any
	reply      []any
}

// sessionWork is the part of a batch that belongs to one session.
type sessionWork struct {
	id         string
	idx        []int
	identities []string // all identity keys of the session's actions
	record     []string // those to record now (not recorded for this session within identityRefresh)
}

// identityWork is the identity step for one identity key of a batch.
type identityWork struct {
	key     string
	session string // the session with the latest event of this identity in the batch
	t       int64
	run     bool
}

// batch is a poll batch grouped by session and identity.
type batch struct {
	actions    []messages.ProductAction
	eventMs    []int64
	sessions   []*sessionWork  // in order of first appearance
	identities []*identityWork // in order of first appearance
}

// RouteBatch handles a poll batch of product actions: it records each action's identities, links
// sessions to the conversations waiting for them, and buffers or forwards every action, keeping
// order per session. In the steady state (identities recorded within identityRefresh, sessions
// linked) that is one pipelined round trip of route calls. It returns the conversation.actions
// to produce, in input order (a pre-conversation batch comes just before the action whose
// processing flushed it). Running it again on actions it has seen returns the same output for them.
// Redis errors are returned wrapped, with nothing to produce; the caller retries the batch.
//
// Riders' commands go in the pipeline of the batch's route round trip (see Rider).
func (s *Store) RouteBatch(ctx context.Context, actions []messages.ProductAction, riders ...Rider) ([]messages.ConversationActions, error) {
	if len(actions) == 0 {
		return nil, nil
	}
	for i := range actions {
		if err := CheckAction(actions[i]); err != nil {
			return nil, fmt.Errorf("linkstore: route batch: action %d: %w", i, err)
		}
	}
	now := s.now()
	b := s.group(actions, now)

	// Round trip 1: identity → active session, and the conversations each identity offers.
	offers, err := s.recordIdentities(ctx, b, now)
	if err != nil {
		return nil, err
	}
	// Round trip 2 (and a second for sessions that turned out to need their actions' JSON):
	// buffer or forward, per session.
	routes, err := s.route(ctx, b, offers, riders)
	if err != nil {
		return nil, err
	}
	for _, sw := range b.sessions {
		for _, k := range sw.record {
			s.hints.setRecorded(k, sw.id, now)
		}
	}
	decisions, unregistered, err := s.collect(b, routes)
	if err != nil {
		return nil, err
	}
	// Round trips 3 and 4, only when sessions linked themselves: register them on their
	// conversations and take the conversations' current state.
	if len(unregistered) > 0 {
		if err := s.registerRouteLinks(ctx, unregistered, now.UnixMilli()); err != nil {
			return nil, err
		}
	}
	return buildRouteOutput(actions, decisions)
}

// group groups a batch by session and identity, and decides which identities to record.
func (s *Store) group(actions []messages.ProductAction, now time.Time) *batch {
	b := &batch{actions: actions, eventMs: make([]int64, len(actions))}
	bySession := make(map[string]*sessionWork)
	byIdentity := make(map[string]*identityWork)
	seenIDs := make(map[string]struct{}, len(actions))
	for i := range actions {
		a := &actions[i]
		if _, dup := seenIDs[a.Action.ActionID]; dup {
			continue // the same action twice in one batch: decided and output once
		}
		seenIDs[a.Action.ActionID] = struct{}{}
		sid := a.Action.SessionID
		sw := bySession[sid]
		if sw == nil {
			sw = &sessionWork{id: sid}
			bySession[sid] = sw
			b.sessions = append(b.sessions, sw)
		}
		sw.idx = append(sw.idx, i)
		t := eventMillis(a.Action.EventTime, now)
		b.eventMs[i] = t
		for _, k := range actionIdentities(a.Identity) {
			if !contains(sw.identities, k) {
				sw.identities = append(sw.identities, k)
			}
			iw := byIdentity[k]
			switch {
			case iw == nil:
				iw = &identityWork{key: k, session: sid, t: t}
				byIdentity[k] = iw
				b.identities = append(b.identities, iw)
			case t >= iw.t:
				iw.session, iw.t = sid, t
			}
		}
	}
	refreshAfter := now.Add(-identityRefresh)
	for _, sw := range b.sessions {
		for _, k := range sw.identities {
			if !s.hints.recordedSince(k, sw.id, refreshAfter) {
				byIdentity[k].run = true
				sw.record = append(sw.record, k)
			}
		}
	}
	return b
}

// recordIdentities runs the identity step of every identity to record and returns, per
// identity, the conversations it offers.
func (s *Store) recordIdentities(ctx context.Context, b *batch, now time.Time) (map[string][]candidate, error) {
	var ran []*identityWork
	for _, iw := range b.identities {
		if iw.run {
			ran = append(ran, iw)
		}
	}
	groups := s.pack(len(ran), func(int) int { return 1 })
	calls := make([]*scriptCall, len(groups))
	for n, g := range groups {
		keys := make([]string, 0, 2*(g[1]-g[0]))
		args := make([]any, 0, 2+2*(g[1]-g[0]))
		args = append(args, now.UnixMilli(), s.cfg.SessionTTL.Milliseconds())
		for _, iw := range ran[g[0]:g[1]] {
			ik := keysOfIdentity(iw.key)
			keys = append(keys, ik.session, ik.convs)
			args = append(args, iw.session, iw.t)
		}
		calls[n] = &scriptCall{script: s.scripts.identitySeen, keys: keys, args: args}
	}
	if err := s.run(ctx, "identity", calls); err != nil {
		if s.unpack(err) {
			return s.recordIdentities(ctx, b, now)
		}
		return nil, err
	}
	offers := make(map[string][]candidate, len(ran))
	for n, g := range groups {
		replies, err := calls[n].cmd.Slice()
		if err == nil && len(replies) != g[1]-g[0] {
			err = fmt.Errorf("%d replies for %d identities", len(replies), g[1]-g[0])
		}
		if err != nil {
			return nil, fmt.Errorf("linkstore: identity: unexpected reply: %w", err)
		}
		for m, iw := range ran[g[0]:g[1]] {
			flat, err := stringList(replies[m])
			if err != nil {
				return nil, fmt.Errorf("linkstore: identity %s: unexpected reply: %w", iw.key, err)
			}
			for j := 0; j+1 < len(flat); j += 2 {
				var h entryHead
				if err := messages.Unmarshal([]byte(flat[j+1]), &h); err != nil {
					return nil, fmt.Errorf("linkstore: identity %s: entry of %s: %w", iw.key, flat[j], err)
				}
				offers[iw.key] = append(offers[iw.key], candidate{conv: flat[j], entry: flat[j+1], v: h.V})
			}
		}
	}
	return offers, nil
}

// pack splits n items, of size(i) actions each, into runs [start, end) of consecutive items for
// one script call each: on Redis Cluster one item per call (a call holds the keys of one hash
// tag), otherwise as many as fit maxActionsPerCall.
func (s *Store) pack(n int, size func(i int) int) [][2]int {
	var runs [][2]int
	packing := s.packCalls.Load()
	for start := 0; start < n; {
		end, total := start+1, size(start)
		for packing && end < n && total+size(end) <= maxActionsPerCall {
			total += size(end)
			end++
		}
		runs = append(runs, [2]int{start, end})
		start = end
	}
	return runs
}

// unpack turns packing off for good when err says the server refused keys of several hash slots
// in one call, which it does before running the script, and reports whether to send again.
func (s *Store) unpack(err error) bool {
	if !strings.Contains(err.Error(), "CROSSSLOT") || !s.packCalls.CompareAndSwap(true, false) {
		return false
	}
	s.log.Warn("Redis refuses keys of several hash slots in one script call: sending one session or identity per call",
		zap.Error(err))
	return true
}

// route runs the route script for every session of the batch. Sessions believed linked go
// without their actions' JSON; those whose script asks for it are sent again with it.
func (s *Store) route(ctx context.Context, b *batch, offers map[string][]candidate, riders []Rider) ([]*routeCall, error) {
	var routes []*routeCall
	for _, sw := range b.sessions {
		cands := mergeCandidates(offers, sw.identities)
		multi := len(sw.idx) > maxActionsPerCall // later calls must not overtake a resent first one
		withBodies := multi || !s.hints.isLinked(sw.id)
		for start := 0; start < len(sw.idx); start += maxActionsPerCall {
			rc := &routeCall{session: sw.id, idx: sw.idx[start:min(start+maxActionsPerCall, len(sw.idx))], withBodies: withBodies}
			if start == 0 {
				rc.candidates, rc.identities = cands, sw.record
			}
			if err := s.buildRouteCall(rc, b); err != nil {
				return nil, err
			}
			routes = append(routes, rc)
		}
	}
	if err := s.runRoutes(ctx, routes, riders); err != nil {
		return nil, err
	}
	var again []*routeCall
	for _, rc := range routes {
		if isNeedBodies(rc.reply) {
			rc.withBodies = true
			if err := s.buildRouteCall(rc, b); err != nil {
				return nil, err
			}
			again = append(again, rc)
		}
	}
	if err := s.runRoutes(ctx, again, nil); err != nil {
		return nil, err
	}
	return routes, nil
}

// collect reads the route replies: each action's decision, metrics and hints, and the
// conversations sessions linked themselves to.
func (s *Store) collect(b *batch, routes []*routeCall) ([]string, map[string][]string, error) {
	decisions := make([]string, len(b.actions))
	unregistered := make(map[string][]string)
	for _, rc := range routes {
		res, err := parseRouteReply(rc.reply, len(rc.idx))
		if err != nil {
			return nil, nil, fmt.Errorf("linkstore: route session %s: %w", rc.session, err)
		}
		if len(res.decisions) != len(rc.idx) {
			return nil, nil, fmt.Errorf("linkstore: route session %s: %d decisions for %d actions", rc.session, len(res.decisions), len(rc.idx))
		}
		for n, i := range rc.idx {
			decisions[i] = res.decisions[n]
		}
		s.countRoute(res)
		switch {
		case res.buffered > 0:
			s.hints.setLinked(rc.session, false)
		case res.forwarded > 0:
			s.hints.setLinked(rc.session, true)
		}
		for _, c := range res.unregistered {
			if !contains(unregistered[rc.session], c) {
				unregistered[rc.session] = append(unregistered[rc.session], c)
			}
		}
	}
	return decisions, unregistered, nil
}

// buildRouteCall builds rc's keys and arguments.
func (s *Store) buildRouteCall(rc *routeCall, b *batch) error {
	sk := keysOfSession(rc.session)
	keys := []string{sk.links, sk.buf, sk.acts, sk.ids}
	args := make([]any, 0, 3+2*len(rc.candidates)+len(rc.identities)+4*len(rc.idx))
	args = append(args, len(rc.candidates))
	for _, c := range rc.candidates {
		args = append(args, c.conv, c.entry)
	}
	args = append(args, len(rc.identities))
	for _, k := range rc.identities {
		args = append(args, k)
	}
	args = append(args, len(rc.idx))
	for _, i := range rc.idx {
		a := &b.actions[i]
		kind := "a"
		if a.Action.Kind == messages.KindIdentify {
			kind = "i"
		}
		var body []byte
		if rc.withBodies && kind == "a" {
			var err error
			if body, err = messages.Marshal(a.Action); err != nil {
				return fmt.Errorf("linkstore: encode action %s: %w", a.Action.ActionID, err)
			}
		}
		args = append(args, a.Action.ActionID, b.eventMs[i], kind, body)
	}
	rc.keys, rc.args, rc.reply = keys, args, nil
	return nil
}

// runRoutes runs the route script for routes, in order, in one pipeline (see pack).
func (s *Store) runRoutes(ctx context.Context, routes []*routeCall, riders []Rider) error {
	groups := s.pack(len(routes), func(i int) int { return len(routes[i].idx) })
	calls := make([]*scriptCall, len(groups))
	for n, g := range groups {
		nkeys, nargs := 0, 7
		for _, rc := range routes[g[0]:g[1]] {
			nkeys += len(rc.keys)
			nargs += len(rc.args)
		}
		keys := make([]string, 0, nkeys)
		args := make([]any, 0, nargs)
		args = append(args, s.cfg.BufferWindow.Milliseconds(), s.cfg.BufferMax, s.cfg.BufferTTL.Milliseconds(),
			s.cfg.SessionTTL.Milliseconds(), s.cfg.ClosedGrace.Milliseconds(), s.cfg.Policy, g[1]-g[0])
		for _, rc := range routes[g[0]:g[1]] {
			keys = append(keys, rc.keys...)
			args = append(args, rc.args...)
		}
		calls[n] = &scriptCall{script: s.scripts.route, keys: keys, args: args}
	}
	if err := s.run(ctx, "route", calls, riders...); err != nil {
		if s.unpack(err) {
			return s.runRoutes(ctx, routes, riders)
		}
		return err
	}
	for n, g := range groups {
		replies, err := calls[n].cmd.Slice()
		if err == nil && len(replies) != g[1]-g[0] {
			err = fmt.Errorf("%d replies for %d sessions", len(replies), g[1]-g[0])
		}
		if err != nil {
			return fmt.Errorf("linkstore: route: unexpected reply: %w", err)
		}
		for m, rc := range routes[g[0]:g[1]] {
			if rc.reply, _ = replies[m].([]any); rc.reply == nil {
				return fmt.Errorf("linkstore: route session %s: unexpected reply %T", rc.session, replies[m])
			}
		}
	}
	return nil
}

// isNeedBodies reports whether a route script asked for the actions' JSON ({-1}).
func isNeedBodies(reply []any) bool {
	if len(reply) != 1 {
		return false
	}
	n, ok := reply[0].(int64)
	return ok && n == -1
}

func eventMillis(t, now time.Time) int64 {
	if t.IsZero() {
		return now.UnixMilli()
	}
	return t.UnixMilli()
}

func contains(list []string, v string) bool {
	for _, have := range list {
		if have == v {
			return true
		}
	}
	return false
}

// mergeCandidates joins the conversations offered by a session's identities, one per
// conversation, the newest entry winning.
func mergeCandidates(offers map[string][]candidate, identities []string) []candidate {
	var out []candidate
	for _, k := range identities {
		for _, c := range offers[k] {
			found := false
			for n := range out {
				if out[n].conv == c.conv {
					found = true
					if c.v > out[n].v {
						out[n] = c
					}
				}
			}
			if !found {
				out = append(out, c)
			}
		}
	}
	return out
}

type routeReply struct {
	buffered, droppedWindow, droppedCap, flushed, forwarded int64
	unregistered                                            []string
	decisions                                               []string
}

// parseRouteReply reads a session's route reply; nact is its number of actions.
func parseRouteReply(v []any, nact int) (routeReply, error) {
	var r routeReply
	var err error
	if len(v) != 7 && len(v) != 3 {
		return r, fmt.Errorf("unexpected reply of %d items", len(v))
	}
	nums := []*int64{&r.buffered, &r.droppedWindow, &r.droppedCap, &r.flushed, &r.forwarded}
	for n, p := range nums[:min(len(v), len(nums))] {
		x, ok := v[n].(int64)
		if !ok {
			return r, fmt.Errorf("unexpected reply item %d: %T", n, v[n])
		}
		*p = x
	}
	if len(v) == 3 {
		// The short reply: no action outputs anything.
		r.decisions = make([]string, nact)
		return r, nil
	}
	if r.unregistered, err = stringList(v[5]); err != nil {
		return r, err
	}
	if r.decisions, err = stringList(v[6]); err != nil {
		return r, err
	}
	return r, nil
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply list: %T", v)
	}
	out := make([]string, len(list))
	for n, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected reply list item: %T", x)
		}
		out[n] = s
	}
	return out, nil
}

func (s *Store) countRoute(r routeReply) {
	s.metrics.buffered.Add(float64(r.buffered))
	s.metrics.dropped.WithLabelValues(dropWindow).Add(float64(r.droppedWindow))
	s.metrics.dropped.WithLabelValues(dropCap).Add(float64(r.droppedCap))
	s.metrics.flushed.Add(float64(r.flushed))
	s.metrics.forwarded.Add(float64(r.forwarded))
}

// registerRouteLinks records, on each conversation, the sessions RouteBatch linked to it, then
// gives each session the conversation's current entry (it may have closed meanwhile) and marks
// the link registered. Until that mark, every RouteBatch of the session tries again.
func (s *Store) registerRouteLinks(ctx context.Context, unregistered map[string][]string, nowMs int64) error {
	type pair struct{ session, conv string }
	var pairs []pair
	for _, sid := range slices.Sorted(maps.Keys(unregistered)) {
		for _, c := range unregistered[sid] {
			pairs = append(pairs, pair{sid, c})
		}
	}
	ttlMs := s.cfg.SessionTTL.Milliseconds()
	convCalls := make([]*scriptCall, len(pairs))
	for n, p := range pairs {
		ck := keysOfConversation(p.conv)
		convCalls[n] = &scriptCall{
			script: s.scripts.convSessions,
			keys:   []string{ck.record, ck.sessions, ck.ids},
			args:   []any{"route", ttlMs, 1, p.session, "", 0, 0},
		}
	}
	if err := s.run(ctx, "register", convCalls); err != nil {
		return err
	}
	linkCalls := make([]*scriptCall, len(pairs))
	for n, p := range pairs {
		entry, err := convCalls[n].cmd.Text()
		if err != nil {
			return fmt.Errorf("linkstore: register %s on %s: %w", p.session, p.conv, err)
		}
		sk := keysOfSession(p.session)
		linkCalls[n] = &scriptCall{
			script: s.scripts.link,
			keys:   []string{sk.links, sk.buf, sk.ids, sk.flush("confirm", p.conv), sk.acts},
			args: []any{p.conv, entry, "0", nowMs, s.cfg.BufferWindow.Milliseconds(), ttlMs,
				s.cfg.ClosedGrace.Milliseconds()},
		}
	}
	if err := s.run(ctx, "confirm", linkCalls); err != nil {
		return err
	}
	s.metrics.linked.WithLabelValues("identity").Add(float64(len(pairs)))
	return nil
}

// buildRouteOutput turns the decisions into messages, in input order.
func buildRouteOutput(actions []messages.ProductAction, decisions []string) ([]messages.ConversationActions, error) {
	out := make([]messages.ConversationActions, 0, len(actions))
	one := make([]messages.Action, 0, len(actions)) // backs every forwarded message's one action
	parsed := make(map[string]*decision)
	for i, d := range decisions {
		if len(d) == 0 || d[0] != '{' {
			continue // buffered ("b"), identity only ("i"), or a repeat within the batch ("")
		}
		dec := parsed[d]
		if dec == nil {
			dec = new(decision)
			if err := messages.Unmarshal([]byte(d), dec); err != nil {
				return nil, fmt.Errorf("linkstore: decode decision for action %s: %w", actions[i].Action.ActionID, err)
			}
			parsed[d] = dec
		}
		a := &actions[i]
		for _, b := range dec.Pre {
			out = append(out, messages.ConversationActions{
				Version:         messages.Version,
				ConversationID:  b.Conv,
				WorkspaceID:     b.Workspace,
				SessionID:       a.Action.SessionID,
				PreConversation: true,
				Actions:         b.Actions,
			})
		}
		if len(dec.Fwd) > 0 {
			one = append(one, a.Action)
		}
		for _, f := range dec.Fwd {
			out = append(out, messages.ConversationActions{
				Version:        messages.Version,
				ConversationID: f[0],
				WorkspaceID:    f[1],
				SessionID:      a.Action.SessionID,
				Actions:        one[len(one)-1 : len(one) : len(one)],
			})
		}
	}
	return out, nil
}
