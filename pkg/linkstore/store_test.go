package linkstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
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
		call := &scriptCall{script: s.scripts.link, keys: []string{sk.links, sk.buf, sk.ids, sk.flush("x", conv)},
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
