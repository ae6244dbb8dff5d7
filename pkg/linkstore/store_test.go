package linkstore

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/testkit/tooltest"
)

func singleRedis(t *testing.T) (*redistest.Server, clientFactory) {
	srv := redistest.Start(t)
	return srv, func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
}

func entryJSON(t *testing.T, v int64, st string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"v": v, "st": st, "cl": at(1).UnixMilli(), "act": at(0).UnixMilli(), "ws": ""})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func entryState(t *testing.T, rdb redis.UniversalClient, key, conv string) (float64, string) {
	t.Helper()
	raw, err := rdb.HGet(context.Background(), key, conv).Result()
	if err != nil {
		t.Fatalf("HGET %s %s: %v", key, conv, err)
	}
	var e entryHead
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	return e.V, e.St
}

// TestStaleEntriesNeverWin writes a conversation's newer state, then an older one, through each
// path that carries entries (identity registration, the link step, a route offer), as replicas
// racing each other would; the newer state must survive every time.
func TestStaleEntriesNeverWin(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	s, _ := h.store(Config{ClosedGrace: time.Second})
	rdb := newClient(t)
	ctx := context.Background()
	conv, sid, user := h.id("c1"), h.id("s1"), identityExternal+h.id("u1")
	newer, older := entryJSON(t, 5, "closed"), entryJSON(t, 4, "open")
	nowMs := h.clock.Now().UnixMilli()

	if _, err := s.registerIdentities(ctx, conv, newer, []string{user}, nowMs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.registerIdentities(ctx, conv, older, []string{user}, nowMs); err != nil {
		t.Fatal(err)
	}
	if v, st := entryState(t, rdb, keysOfIdentity(user).convs, conv); v != 5 || st != "closed" {
		t.Fatalf("identity entry: v%v %s, want v5 closed", v, st)
	}

	sk := keysOfSession(sid)
	for _, e := range []string{newer, older} {
		call := &scriptCall{script: s.scripts.link, keys: []string{sk.links, sk.buf, sk.ids, sk.flush("x", conv), sk.acts},
			args: []any{conv, e, "0", nowMs, int64(120000), int64(3600000), int64(1000)}}
		if err := s.run(ctx, "link", []*scriptCall{call}); err != nil {
			t.Fatal(err)
		}
	}
	if v, st := entryState(t, rdb, sk.links, conv); v != 5 || st != "closed" {
		t.Fatalf("session entry after link steps: v%v %s, want v5 closed", v, st)
	}

	// The identity still offers the older, open state (its snapshot was taken before the close).
	if err := rdb.HSet(ctx, keysOfIdentity(user).convs, conv, older).Err(); err != nil {
		t.Fatal(err)
	}
	h.expect("an older offer does not reopen the link", h.route(s, h.action("s1", "a1", at(600), h.who("u1"))))
	if v, st := entryState(t, rdb, sk.links, conv); v != 5 || st != "closed" {
		t.Fatalf("session entry after a stale offer: v%v %s, want v5 closed", v, st)
	}
}

// TestRedisErrorsAreReturned stops Redis under a store: both entry points return a wrapped
// error and count it; after Redis comes back (empty, without the scripts) the store works again
// without being rebuilt.
func TestRedisErrorsAreReturned(t *testing.T) {
	srv, newClient := singleRedis(t)
	if srv.Embedded {
		t.Fatal("this test needs a redis-server process")
	}
	h := newHarness(t, newClient)
	s, reg := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.RouteBatch(ctx, []messages.ProductAction{h.action("s1", "a2", at(2), h.who("u1"))}); err == nil {
		t.Fatal("RouteBatch with Redis down: no error")
	}
	if _, err := s.Apply(ctx, h.event("e1", messages.ConvCreated, "c1", at(3), "ext=u1")); err == nil {
		t.Fatal("Apply with Redis down: no error")
	}
	if got := counter(t, reg, "threadline_linker_redis_errors_total"); got < 2 {
		t.Fatalf("redis errors counted: %v, want at least 2", got)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	h.expect("after the restart (state lost) the action is buffered again",
		h.route(s, h.action("s1", "a2", at(2), h.who("u1"))))
	h.expect("and links", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(3), "ext=u1")), "c1 pre a2")
}

func TestInvalidInput(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	s, _ := h.store(Config{})
	noSession := h.action("s1", "a1", at(1), h.who("u1"))
	noSession.Action.SessionID = ""
	noID := h.action("s1", "a1", at(1), h.who("u1"))
	noID.Action.ActionID = ""
	for _, a := range []messages.ProductAction{noSession, noID} {
		if _, err := s.RouteBatch(h.ctx, []messages.ProductAction{h.action("s1", "ok", at(1), h.who("u1")), a}); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("RouteBatch(%+v): %v, want ErrInvalidInput", a.Action, err)
		}
	}
	bad := []messages.ConversationEvent{
		h.event("", messages.ConvCreated, "c1", at(1)),
		h.event("e1", "snoozed", "c1", at(1)),
		h.event("e2", messages.ConvCreated, "", at(1)),
		h.event("e3", messages.ConvContactMerged, "", at(1), "contact=k1"),
	}
	bad[0].EventID = ""
	for _, ev := range bad {
		if _, err := s.Apply(h.ctx, ev); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Apply(%+v): %v, want ErrInvalidInput", ev, err)
		}
	}
	if out, err := s.RouteBatch(h.ctx, nil); err != nil || out != nil {
		t.Errorf("RouteBatch(nil) = %v, %v", out, err)
	}
}

// TestLongSessionBatch sends one session more actions in a batch than one script call takes:
// the calls keep their order, and an action repeated across calls is output once.
func TestLongSessionBatch(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	s, _ := h.store(Config{})
	h.route(s, h.action("s1", "a0", at(0), h.who("u1")))
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(0), "ext=u1"))
	const n = maxActionsPerCall*2 + 7
	batch := make([]messages.ProductAction, n)
	for i := range batch {
		batch[i] = h.action("s1", "b"+itoa(i), at(1+float64(i)/1000), h.who("u1"))
	}
	// The first action again at the end, in another script call: still output once.
	out := h.route(s, append(batch, batch[0])...)
	if len(out) != n {
		t.Fatalf("%d messages, want %d", len(out), n)
	}
	for i, m := range out {
		if m.Actions[0].ActionID != batch[i].Action.ActionID || m.PreConversation {
			t.Fatalf("message %d: %s pre=%v, want %s live", i, m.Actions[0].ActionID, m.PreConversation, batch[i].Action.ActionID)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestSharedRegistry builds two stores on one registry: they share their counters.
func TestSharedRegistry(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	reg := prometheus.NewRegistry()
	a := New(newClient(t), Config{}, zaptest.NewLogger(t), reg, h.clock.Now)
	b := New(newClient(t), Config{}, zaptest.NewLogger(t), reg, h.clock.Now)
	h.route(a, h.action("s1", "a1", at(1), h.who("u1")))
	h.route(b, h.action("s2", "b1", at(1), h.who("u2")))
	h.expectCounter(reg, 2, "threadline_linker_actions_buffered_total")
}

// roundTrips counts what a client sends: pipelines (round trips) and the EVALSHA commands in them,
// but not what the client sends when it opens a connection.
type roundTrips struct{ pipelines, evalshas int }

// connectionSetup reports whether cmd is one of those go-redis sends on a new connection.
func connectionSetup(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if connectionSetup(cmd) {
			return next(ctx, cmd)
		}
		r.pipelines++
		if cmd.Name() == "evalsha" {
			r.evalshas++
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && connectionSetup(cmds[0]) {
			return next(ctx, cmds)
		}
		r.pipelines++
		for _, cmd := range cmds {
			if cmd.Name() == "evalsha" {
				r.evalshas++
			}
		}
		return next(ctx, cmds)
	}
}

// TestSteadyBatchIsOneRoundTrip routes poll batches of linked sessions on a single server. The
// first records the identities (one call for all) and routes (one call for all sessions); the
// next, whose identities were recorded lately, is one round trip holding one route call. When one of them must buffer after all (its conversation was deleted meanwhile), only
// that session is sent again, with its actions' JSON, and every other is decided once.
func TestSteadyBatchIsOneRoundTrip(t *testing.T) {
	srv, _ := singleRedis(t)
	var rt roundTrips
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(&rt)
	h := newHarness(t, func(testing.TB) redis.UniversalClient { return rdb })
	s, reg := h.store(Config{})
	const sessions, perSession = 20, 3
	batch := func(round int) []messages.ProductAction {
		var out []messages.ProductAction
		for i := range sessions * perSession {
			sid, n := "s"+itoa(i%sessions), itoa(round*1000+i)
			out = append(out, h.action(sid, "a"+n, at(float64(round)+float64(i)/1000), h.who("u"+itoa(i%sessions))))
		}
		return out
	}
	for i := range sessions {
		h.apply(s, h.event("e"+itoa(i), messages.ConvCreated, "c"+itoa(i), at(0), "hint=s"+itoa(i)))
	}
	// Load the scripts: the server answers a script it does not know with NOSCRIPT.
	if err := s.scripts.identitySeen.Load(h.ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.scripts.route.Load(h.ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	rt = roundTrips{}
	if out := h.route(s, batch(1)...); len(out) != sessions*perSession {
		t.Fatalf("first batch: %d messages, want %d", len(out), sessions*perSession)
	}
	if rt.pipelines != 2 || rt.evalshas != 2 {
		t.Fatalf("the first batch took %d round trips and %d script calls, want 2 and 2 (identities, routes)", rt.pipelines, rt.evalshas)
	}

	rt = roundTrips{}
	if out := h.route(s, batch(2)...); len(out) != sessions*perSession {
		t.Fatalf("%d messages, want %d", len(out), sessions*perSession)
	}
	if rt.pipelines != 1 || rt.evalshas != 1 {
		t.Fatalf("a steady batch took %d round trips and %d script calls, want 1 and 1", rt.pipelines, rt.evalshas)
	}

	h.apply(s, h.event("del", messages.ConvDeleted, "c7", at(2.5)))
	rt = roundTrips{}
	out := h.route(s, batch(3)...)
	if len(out) != (sessions-1)*perSession {
		t.Fatalf("%d messages, want %d", len(out), (sessions-1)*perSession)
	}
	for _, m := range out {
		if m.SessionID == h.id("s7") {
			t.Fatalf("an action of the session of the deleted conversation went to %s", m.ConversationID)
		}
	}
	if rt.pipelines != 2 || rt.evalshas != 2 {
		t.Fatalf("%d round trips and %d script calls, want 2 and 2 (the batch, then s7 with its JSON)", rt.pipelines, rt.evalshas)
	}
	h.expectCounter(reg, perSession, "threadline_linker_actions_buffered_total")
}

// TestLongSessionDecisionsAreAHashTable flushes a session's buffer of more actions than a small
// hash holds before the store makes its decisions a hash table, whose lookups do not scan.
func TestLongSessionDecisionsAreAHashTable(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	s, _ := h.store(Config{})
	var batch []messages.ProductAction
	for i := range 130 {
		batch = append(batch, h.action("s1", "a"+itoa(i), at(float64(i)/1000), h.who("u1")))
	}
	h.route(s, batch...)
	if out := h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(1), "hint=s1")); len(out) != 1 {
		t.Fatalf("the link flushed %d batches, want 1", len(out))
	}
	rdb := newClient(t)
	enc, err := rdb.ObjectEncoding(h.ctx, keysOfSession(h.id("s1")).acts).Result()
	if err != nil {
		t.Fatal(err)
	}
	if enc != "hashtable" {
		t.Fatalf("decisions of a session with 130 actions are a %s", enc)
	}
	// Repeats are answered from it: the flush output them.
	if out := h.route(s, batch[:5]...); len(out) != 0 {
		t.Fatalf("repeated flushed actions gave %d messages", len(out))
	}
}

// TestCrossSlotRefusalTurnsPackingOff talks to a cluster-enabled server through a plain client,
// as through a proxy in front of a sharded Redis: the server refuses a call holding several
// sessions (CROSSSLOT), and the store sends one session and one identity per call from then on.
func TestCrossSlotRefusalTurnsPackingOff(t *testing.T) {
	tooltest.Need(t, "Debian: apt-get install redis-server", "redis-server")
	bus, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redistest.StartProcess(t.TempDir(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(rdb.ClusterInfo(ctx).Val(), "cluster_state:ok"); {
		if time.Now().After(deadline) {
			t.Fatal("the one-node cluster never reported cluster_state:ok")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := newHarness(t, func(testing.TB) redis.UniversalClient { return rdb })
	s, _ := h.store(Config{})
	if !s.packCalls.Load() {
		t.Fatal("a plain client does not pack calls")
	}
	for i := range 5 {
		h.apply(s, h.event("e"+itoa(i), messages.ConvCreated, "c"+itoa(i), at(0), "hint=s"+itoa(i)))
	}
	var batch []messages.ProductAction
	for i := range 10 {
		batch = append(batch, h.action("s"+itoa(i%5), "a"+itoa(i), at(1+float64(i)/1000), h.who("u"+itoa(i%5))))
	}
	out := h.route(s, batch...)
	if len(out) != len(batch) {
		t.Fatalf("%d messages for %d linked actions", len(out), len(batch))
	}
	for i, m := range out {
		if m.Actions[0].ActionID != batch[i].Action.ActionID || m.ConversationID != h.id("c"+itoa(i%5)) {
			t.Fatalf("message %d: %s to %s", i, m.Actions[0].ActionID, m.ConversationID)
		}
	}
	if s.packCalls.Load() {
		t.Fatal("packing is still on after CROSSSLOT")
	}
}

// TestApplyHeldNamesSessionsBeforeTheLink checks what ApplyHeld hands its hold: the sessions of
// the link step, while their buffers are still unflushed; and nothing for an event that links no
// session.
func TestApplyHeldNamesSessionsBeforeTheLink(t *testing.T) {
	_, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	s, _ := h.store(Config{})
	rdb := newClient(t)
	h.route(s, h.action("s1", "a1", at(1), h.who("anon1")), h.action("s1", "a2", at(2), h.who("anon1")))

	var calls [][]string
	hold := func(sessions []string) {
		calls = append(calls, sessions)
		for _, id := range sessions {
			n, err := rdb.ZCard(context.Background(), keysOfSession(id).buf).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Errorf("hold: buffer of %s holds %d actions, want the 2 not flushed yet", id, n)
			}
		}
	}
	out, err := s.ApplyHeld(h.ctx, h.event("e1", messages.ConvCreated, "c1", at(3), "hint=s1"), hold)
	if err != nil {
		t.Fatal(err)
	}
	h.expect("the hinted session is flushed", out, "c1 pre a1 a2")
	if len(calls) != 1 || len(calls[0]) != 1 || calls[0][0] != h.id("s1") {
		t.Fatalf("hold calls %q, want one with s1", calls)
	}

	calls = nil
	out, err = s.ApplyHeld(h.ctx, h.event("e2", messages.ConvCreated, "c2", at(4), "ext=nobody"), hold)
	if err != nil {
		t.Fatal(err)
	}
	h.expect("a pending conversation flushes nothing", out)
	if len(calls) != 0 {
		t.Fatalf("hold calls %q for an event that links no session", calls)
	}
}
