package linkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// ErrInvalidInput marks an action or event the store cannot route; callers dead-letter it.
var ErrInvalidInput = errors.New("linkstore: invalid input")

// maxActionsPerCall bounds the actions one route script handles; more of one session in a batch
// are split over several calls, in order, in the same pipeline.
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
	return &Store{
		rdb:     rdb,
		cfg:     cfg.withDefaults(),
		log:     log,
		metrics: newMetrics(reg, log),
		now:     now,
		scripts: newScripts(),
		hints:   newHints(),
	}
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

// routeCall is one route script call: a run of one session's actions.
type routeCall struct {
	session    string
	idx        []int
	candidates []candidate
	identities []string // identity keys to add to the session's set
	withBodies bool
	call       *scriptCall
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
// sessions to the conversations waiting for them, and buffers or forwards every action, in one
// script per session (pipelined), keeping order per session. It returns the conversation.actions
// to produce, in input order (a pre-conversation batch comes just before the action whose
// processing flushed it). Running it again on actions it has seen returns the same output for them.
// Redis errors are returned wrapped, with nothing to produce; the caller retries the batch.
func (s *Store) RouteBatch(ctx context.Context, actions []messages.ProductAction) ([]messages.ConversationActions, error) {
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
	routes, err := s.route(ctx, b, offers)
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
	var calls []*scriptCall
	var ran []*identityWork
	for _, iw := range b.identities {
		if !iw.run {
			continue
		}
		ik := keysOfIdentity(iw.key)
		ran = append(ran, iw)
		calls = append(calls, &scriptCall{
			script: s.scripts.identitySeen,
			keys:   []string{ik.session, ik.convs},
			args:   []any{iw.session, iw.t, now.UnixMilli(), s.cfg.SessionTTL.Milliseconds()},
		})
	}
	if err := s.run(ctx, "identity", calls); err != nil {
		return nil, err
	}
	offers := make(map[string][]candidate, len(ran))
	for n, iw := range ran {
		flat, err := calls[n].cmd.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("linkstore: identity %s: unexpected reply: %w", iw.key, err)
		}
		for j := 0; j+1 < len(flat); j += 2 {
			var h entryHead
			if err := json.Unmarshal([]byte(flat[j+1]), &h); err != nil {
				return nil, fmt.Errorf("linkstore: identity %s: entry of %s: %w", iw.key, flat[j], err)
			}
			offers[iw.key] = append(offers[iw.key], candidate{conv: flat[j], entry: flat[j+1], v: h.V})
		}
	}
	return offers, nil
}

// route runs the route script for every session of the batch. Sessions believed linked go
// without their actions' JSON; those whose script asks for it are sent again with it.
func (s *Store) route(ctx context.Context, b *batch, offers map[string][]candidate) ([]*routeCall, error) {
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
	if err := s.runRoutes(ctx, routes); err != nil {
		return nil, err
	}
	var again []*routeCall
	for _, rc := range routes {
		if isNeedBodies(rc.call.cmd) {
			rc.withBodies = true
			if err := s.buildRouteCall(rc, b); err != nil {
				return nil, err
			}
			again = append(again, rc)
		}
	}
	if err := s.runRoutes(ctx, again); err != nil {
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
		res, err := parseRouteReply(rc.call.cmd)
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

// buildRouteCall builds the route script call of rc.
func (s *Store) buildRouteCall(rc *routeCall, b *batch) error {
	sk := keysOfSession(rc.session)
	args := make([]any, 0, 9+2*len(rc.candidates)+len(rc.identities)+4*len(rc.idx))
	args = append(args, s.cfg.BufferWindow.Milliseconds(), s.cfg.BufferMax, s.cfg.BufferTTL.Milliseconds(),
		s.cfg.SessionTTL.Milliseconds(), s.cfg.ClosedGrace.Milliseconds(), s.cfg.Policy, len(rc.candidates))
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
			if body, err = json.Marshal(a.Action); err != nil {
				return fmt.Errorf("linkstore: encode action %s: %w", a.Action.ActionID, err)
			}
		}
		args = append(args, a.Action.ActionID, b.eventMs[i], kind, body)
	}
	rc.call = &scriptCall{script: s.scripts.route, keys: []string{sk.links, sk.buf, sk.acts, sk.ids}, args: args}
	return nil
}

func (s *Store) runRoutes(ctx context.Context, routes []*routeCall) error {
	calls := make([]*scriptCall, len(routes))
	for n, rc := range routes {
		calls[n] = rc.call
	}
	return s.run(ctx, "route", calls)
}

// isNeedBodies reports whether a route script asked for the actions' JSON ({-1}).
func isNeedBodies(cmd *redis.Cmd) bool {
	v, err := cmd.Slice()
	if err != nil || len(v) != 1 {
		return false
	}
	n, ok := v[0].(int64)
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

func parseRouteReply(cmd *redis.Cmd) (routeReply, error) {
	var r routeReply
	v, err := cmd.Slice()
	if err != nil {
		return r, err
	}
	if len(v) != 7 {
		return r, fmt.Errorf("unexpected reply of %d items", len(v))
	}
	nums := []*int64{&r.buffered, &r.droppedWindow, &r.droppedCap, &r.flushed, &r.forwarded}
	for n, p := range nums {
		x, ok := v[n].(int64)
		if !ok {
			return r, fmt.Errorf("unexpected reply item %d: %T", n, v[n])
		}
		*p = x
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
			keys:   []string{sk.links, sk.buf, sk.ids, sk.flush("confirm", p.conv)},
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
	var out []messages.ConversationActions
	parsed := make(map[string]*decision)
	for i, d := range decisions {
		if len(d) == 0 || d[0] != '{' {
			continue // buffered ("b"), identity only ("i"), or a repeat within the batch ("")
		}
		dec := parsed[d]
		if dec == nil {
			dec = new(decision)
			if err := json.Unmarshal([]byte(d), dec); err != nil {
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
		for _, f := range dec.Fwd {
			out = append(out, messages.ConversationActions{
				Version:        messages.Version,
				ConversationID: f[0],
				WorkspaceID:    f[1],
				SessionID:      a.Action.SessionID,
				Actions:        []messages.Action{a.Action},
			})
		}
	}
	return out, nil
}
