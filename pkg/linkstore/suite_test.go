package linkstore

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// scenario is one behaviour of the suite.
type scenario struct {
	name string
	run  func(h *harness)
}

var scenarios = []scenario{
	{"AnonymousSessionThenIdentifyThenExternalID", scenarioAnonymousIdentifyExternalID},
	{"SessionHint", scenarioHint},
	{"Email", scenarioEmail},
	{"LinkingOrder", scenarioLinkingOrder},
	{"ActiveSessionIsLatestByEventTime", scenarioActiveSession},
	{"PendingConversationLinkedByNextEvent", scenarioPending},
	{"PendingExpires", scenarioPendingExpires},
	{"TwoConversationsMostRecent", scenarioTwoConversations},
	{"TwoConversationsAllOpen", scenarioTwoConversationsAllOpen},
	{"NewSessionDuringOpenConversation", scenarioNewSession},
	{"ClosedGrace", scenarioClosedGrace},
	{"Reopened", scenarioReopened},
	{"ContactMerge", scenarioContactMerge},
	{"DeletedAndDetached", scenarioDeletedDetached},
	{"BufferWindow", scenarioBufferWindow},
	{"BufferCapAndEventTimeOrder", scenarioBufferCap},
	{"IdempotentRouteBatch", scenarioIdempotentRoute},
	{"IdempotentApply", scenarioIdempotentApply},
	{"TwoReplicaRace", scenarioRace},
}

// runSuite runs every scenario against the Redis newClient connects to, then checks that every
// key the scenarios wrote expires.
func runSuite(t *testing.T, newClient clientFactory) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(newHarness(t, newClient)) })
	}
	t.Run("EveryKeyHasTTL", func(t *testing.T) { checkAllKeysExpire(t, newClient(t)) })
}

func TestSuiteSingleRedis(t *testing.T) {
	srv := redistest.Start(t)
	runSuite(t, func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}

// checkAllKeysExpire scans every master for link store keys without a TTL.
func checkAllKeysExpire(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	scan := func(c *redis.Client) (int, error) {
		n := 0
		iter := c.Scan(ctx, 0, keyPrefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			n++
			ttl, err := c.PTTL(ctx, iter.Val()).Result()
			if err != nil {
				return n, err
			}
			if ttl < 0 {
				t.Errorf("key %s has no TTL (%v)", iter.Val(), ttl)
			}
		}
		return n, iter.Err()
	}
	total := 0
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		counts := make(chan int, 64)
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := scan(m)
			counts <- n
			return err
		})
		close(counts)
		for n := range counts {
			total += n
		}
		if err != nil {
			t.Fatal(err)
		}
	case *redis.Client:
		n, err := scan(c)
		if err != nil {
			t.Fatal(err)
		}
		total = n
	default:
		t.Fatalf("unexpected client %T", rdb)
	}
	if total == 0 {
		t.Fatal("no link store keys found; the suite should have written some")
	}
}

func scenarioAnonymousIdentifyExternalID(h *harness) {
	s, reg := h.store(Config{})
	anon := h.who("anon1")
	h.expect("anonymous actions are buffered", h.route(s,
		h.action("s1", "a1", at(1), anon),
		h.action("s1", "a2", at(2), anon),
	))
	h.expect("identify is not forwarded", h.route(s, h.identify("s1", "id1", at(3), "anon1", "u1")))
	h.expect("identified action is buffered too", h.route(s, h.action("s1", "a3", at(4), h.who("u1"))))

	out := h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(5), "ext=u1", "workspace=ws1"))
	h.expect("conversation by external id flushes the whole session", out, "c1 pre a1 a2 a3")
	if out[0].WorkspaceID != "ws1" || out[0].SessionID != h.id("s1") {
		h.t.Fatalf("flushed batch: workspace %q session %q", out[0].WorkspaceID, out[0].SessionID)
	}
	live := h.route(s, h.action("s1", "a4", at(6), h.who("u1")))
	h.expect("after the link actions go live", live, "c1 live a4")
	if live[0].WorkspaceID != "ws1" {
		h.t.Fatalf("live workspace %q", live[0].WorkspaceID)
	}
	h.expectCounter(reg, 3, "threadline_linker_actions_buffered_total")
	h.expectCounter(reg, 3, "threadline_linker_actions_flushed_total")
	h.expectCounter(reg, 1, "threadline_linker_actions_forwarded_total")
	h.expectCounter(reg, 1, "threadline_linker_links_total", "via=external_id")
}

func scenarioHint(h *harness) {
	s, reg := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("anon1")))
	h.expect("hint links its session", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "hint=s1")), "c1 pre a1")
	h.expect("then live", h.route(s, h.action("s1", "a2", at(3), h.who("anon1"))), "c1 live a2")

	// A hint for a session that has not acted yet links it before its first action.
	h.expect("nothing to flush", h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(4), "hint=s2")))
	h.expect("first action goes live", h.route(s, h.action("s2", "b1", at(5), h.who("anon2"))), "c2 live b1")
	h.expectCounter(reg, 2, "threadline_linker_links_total", "via=hint")
}

func scenarioEmail(h *harness) {
	s, reg := h.store(Config{})
	h.route(s,
		h.action("s1", "a1", at(1), h.who("anon1", "email=mail1")),
		h.action("s1", "a2", at(2), h.who("anon1", "email=mail1")),
	)
	h.expect("email links", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(3), "email=mail1")), "c1 pre a1 a2")
	h.expectCounter(reg, 1, "threadline_linker_links_total", "via=email")
}

func scenarioLinkingOrder(h *harness) {
	s, _ := h.store(Config{})
	// u1 acts in s1; s2 is anonymous and hinted; mail3 acts in s3.
	h.route(s,
		h.action("s1", "a1", at(1), h.who("u1")),
		h.action("s2", "b1", at(1), h.who("anon2")),
		h.action("s3", "c1", at(1), h.who("anon3", "email=mail3")),
	)
	h.expect("hint wins over external id", h.apply(s,
		h.event("e1", messages.ConvCreated, "conv1", at(2), "hint=s2", "ext=u1")), "conv1 pre b1")
	h.expect("external id wins over email", h.apply(s,
		h.event("e2", messages.ConvCreated, "conv2", at(2), "ext=u1", "email=mail3")), "conv2 pre a1")
	h.expect("the email's session is not linked", h.route(s, h.action("s3", "c2", at(3), h.who("anon3"))))
}

func scenarioActiveSession(h *harness) {
	s, _ := h.store(Config{})
	h.route(s, h.action("s2", "b1", at(100), h.who("u1")))
	h.route(s, h.action("s1", "a1", at(50), h.who("u1"))) // late delivery from an older session
	h.expect("the session with the latest event is linked",
		h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(101), "ext=u1")), "c1 pre b1")
}

func scenarioPending(h *harness) {
	s, reg := h.store(Config{})
	// The conversation comes first: nobody with external id u1 has acted.
	h.expect("pending", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(1), "ext=u1")))
	h.expectCounter(reg, 1, "threadline_linker_conversations_pending_total")
	h.expect("the user's next action links and goes live",
		h.route(s, h.action("s1", "a1", at(2), h.who("u1"))), "c1 live a1")

	// A session that began anonymous: its buffer flushes when $identify claims the pending conversation.
	h.route(s, h.action("s2", "b1", at(3), h.who("anon2")), h.action("s2", "b2", at(4), h.who("anon2")))
	h.expect("pending", h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(5), "ext=u2")))
	h.expect("identify links, flushes the anonymous actions, then goes live", h.route(s,
		h.identify("s2", "id2", at(6), "anon2", "u2"),
		h.action("s2", "b3", at(7), h.who("u2")),
	), "c2 pre b1 b2", "c2 live b3")
}

func scenarioPendingExpires(h *harness) {
	s, _ := h.store(Config{PendingTTL: 10 * time.Minute})
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(0), "ext=u1"))
	h.clock.Set(at(11 * 60))
	h.expect("after the pending TTL the next action does not link",
		h.route(s, h.action("s1", "a1", at(11*60), h.who("u1"))))
	// A reply registers it again; the user's active session is known now, so it links at once.
	h.expect("reply links the active session", h.apply(s,
		h.event("e2", messages.ConvReplied, "c1", at(11*60+5), "ext=u1")), "c1 pre a1")
}

func scenarioTwoConversations(h *harness) {
	s, _ := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.expect("first", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1")), "c1 pre a1")
	h.expect("second conversation of the same user", h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(3), "ext=u1")))
	h.expect("actions go to the most recently active", h.route(s, h.action("s1", "a2", at(4), h.who("u1"))), "c2 live a2")
	h.apply(s, h.event("e3", messages.ConvReplied, "c1", at(5), "ext=u1"))
	h.expect("a reply makes the first most recent again", h.route(s, h.action("s1", "a3", at(6), h.who("u1"))), "c1 live a3")
	h.apply(s, h.event("e4", messages.ConvClosed, "c1", at(7)))
	h.expect("after the first closes (grace by event time) the other one",
		h.route(s, h.action("s1", "a4", at(7+3*60), h.who("u1"))), "c2 live a4")
}

func scenarioTwoConversationsAllOpen(h *harness) {
	s, _ := h.store(Config{Policy: PolicyAllOpen})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.expect("first", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1")), "c1 pre a1")
	h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(3), "ext=u1"))
	h.expect("actions go to every open conversation", h.route(s, h.action("s1", "a2", at(4), h.who("u1"))),
		"c1 live a2", "c2 live a2")
}

func scenarioNewSession(h *harness) {
	s, _ := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.expect("linked", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1")), "c1 pre a1")
	h.expect("a new session of the user follows the open conversation",
		h.route(s, h.action("s2", "b1", at(30*60), h.who("u1"))), "c1 live b1")
	h.expect("the old session stays linked", h.route(s, h.action("s1", "a2", at(30*60+1), h.who("u1"))), "c1 live a2")

	// A session linked through a hint lets the identities of that session follow too.
	h.route(s, h.action("s3", "c1", at(1), h.who("anon3")))
	h.expect("hint", h.apply(s, h.event("e2", messages.ConvCreated, "conv3", at(2), "hint=s3")), "conv3 pre c1")
	h.expect("the same browser's next session follows",
		h.route(s, h.action("s4", "d1", at(40*60), h.who("anon3"))), "conv3 live d1")
}

func scenarioClosedGrace(h *harness) {
	s, _ := h.store(Config{ClosedGrace: 2 * time.Minute})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1"))
	h.expect("no output on close", h.apply(s, h.event("e2", messages.ConvClosed, "c1", at(100))))
	h.expect("within the grace period", h.route(s, h.action("s1", "a2", at(100+119), h.who("u1"))), "c1 live a2")
	h.expect("after it, actions are buffered", h.route(s, h.action("s1", "a3", at(100+121), h.who("u1"))))
	h.expect("a new session does not follow a closed conversation",
		h.route(s, h.action("s2", "b1", at(300), h.who("u1"))))
}

func scenarioReopened(h *harness) {
	s, _ := h.store(Config{ClosedGrace: time.Minute})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1"))
	h.apply(s, h.event("e2", messages.ConvClosed, "c1", at(10)))
	h.expect("closed: buffered", h.route(s,
		h.action("s1", "a2", at(200), h.who("u1")),
		h.action("s1", "a3", at(201), h.who("u1")),
	))
	h.expect("the user's reply reopens and flushes what happened meanwhile",
		h.apply(s, h.event("e3", messages.ConvReplied, "c1", at(202), "ext=u1")), "c1 pre a2 a3")
	h.expect("live again", h.route(s, h.action("s1", "a4", at(203), h.who("u1"))), "c1 live a4")

	// An admin reopening works the same way, and reaches the user's newest session.
	h.apply(s, h.event("e4", messages.ConvClosed, "c1", at(300)))
	h.route(s, h.action("s2", "b1", at(900), h.who("u1")))
	h.expect("opened links the newest session", h.apply(s, h.event("e5", messages.ConvOpened, "c1", at(901))), "c1 pre b1")
}

func scenarioContactMerge(h *harness) {
	s, _ := h.store(Config{})
	// A visitor (lead) starts a conversation: no external id, no email, no hint.
	h.expect("nothing to link", h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(1), "contact=lead1")))
	h.route(s, h.action("s1", "a1", at(2), h.who("u1")), h.action("s1", "a2", at(3), h.who("u1")))
	merged := h.event("e2", messages.ConvContactMerged, "", at(4), "contact=user1", "merged_from=lead1", "ext=u1")
	h.expect("the merge gives the lead's conversation the user's identity", h.apply(s, merged), "c1 pre a1 a2")
	h.expect("live", h.route(s, h.action("s1", "a3", at(5), h.who("u1"))), "c1 live a3")
	h.expect("repeat of the merge", h.apply(s, merged), "c1 pre a1 a2")
}

func scenarioDeletedDetached(h *harness) {
	s, _ := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")))
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1", "contact=k1"))
	h.apply(s, h.event("e2", messages.ConvDeleted, "c1", at(3)))
	h.expect("a deleted conversation receives nothing", h.route(s, h.action("s1", "a2", at(4), h.who("u1"))))
	h.expect("a reply after delete does not revive it", h.apply(s, h.event("e3", messages.ConvReplied, "c1", at(5), "ext=u1")))

	h.route(s, h.action("s2", "b1", at(1), h.who("u2")))
	h.apply(s, h.event("e4", messages.ConvCreated, "c2", at(2), "ext=u2", "contact=k2"))
	h.expect("attached", h.route(s, h.action("s2", "b2", at(3), h.who("u2"))), "c2 live b2")
	h.apply(s, h.event("e5", messages.ConvContactDetached, "c2", at(4), "ext=u2", "contact=k2"))
	h.expect("the detached contact's session stops", h.route(s, h.action("s2", "b3", at(5), h.who("u2"))))
	h.expect("and its new sessions do not follow", h.route(s, h.action("s3", "c1", at(6), h.who("u2"))))
}

func scenarioBufferWindow(h *harness) {
	s, reg := h.store(Config{BufferWindow: 120 * time.Second})
	var batch []messages.ProductAction
	for i := 0; i <= 30; i++ { // every 10 s from 0 to 300 s
		batch = append(batch, h.action("s1", "a"+pad(i), at(float64(i*10)), h.who("anon1")))
	}
	h.expect("buffered", h.route(s, batch...))
	out := h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(305), "hint=s1"))
	want := "c1 pre"
	for i := 19; i <= 30; i++ { // 190 s .. 300 s: within 120 s of the link at 305 s
		want += " a" + pad(i)
	}
	h.expect("only the window before the link is flushed", out, want)
	h.expectCounter(reg, 19, "threadline_linker_actions_dropped_total", "cause=window")
	h.expectCounter(reg, 0, "threadline_linker_actions_dropped_total", "cause=cap")
}

func scenarioBufferCap(h *harness) {
	s, reg := h.store(Config{BufferMax: 5})
	order := []int{3, 7, 0, 5, 1, 6, 2, 4} // event-time order differs from arrival order
	for _, i := range order {
		h.route(s, h.action("s1", "a"+pad(i), at(float64(i)), h.who("anon1")))
	}
	h.expectCounter(reg, 3, "threadline_linker_actions_dropped_total", "cause=cap")
	h.expect("the newest five, in event-time order",
		h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(10), "hint=s1")), "c1 pre a03 a04 a05 a06 a07")

	// One batch far over the cap.
	var batch []messages.ProductAction
	for i := 0; i < 40; i++ {
		batch = append(batch, h.action("s2", "b"+pad(39-i), at(float64(39-i)), h.who("anon2")))
	}
	h.route(s, batch...)
	h.expect("the newest five of the batch", h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(40), "hint=s2")),
		"c2 pre b35 b36 b37 b38 b39")
	h.expectCounter(reg, 38, "threadline_linker_actions_dropped_total", "cause=cap")
}

func pad(i int) string {
	if i < 10 {
		return "0" + string(rune('0'+i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func scenarioIdempotentRoute(h *harness) {
	s, reg := h.store(Config{})
	h.route(s, h.action("s1", "a1", at(1), h.who("anon1")))
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(2), "ext=u1"))
	// This batch claims the pending conversation: it flushes a1 and forwards a2.
	batch := []messages.ProductAction{
		h.identify("s1", "id1", at(3), "anon1", "u1"),
		h.action("s1", "a2", at(4), h.who("u1")),
	}
	first := h.route(s, batch...)
	h.expect("first run", first, "c1 pre a1", "c1 live a2")
	h.expect("the same batch again (crash before produce) gives the same output", h.route(s, batch...), "c1 pre a1", "c1 live a2")
	h.expect("a repeat inside a batch is output once", h.route(s,
		h.action("s1", "a3", at(5), h.who("u1")), h.action("s1", "a3", at(5), h.who("u1"))), "c1 live a3")
	h.expect("repeats mixed with new actions", h.route(s,
		batch[1], h.action("s1", "a4", at(6), h.who("u1"))), "c1 live a2", "c1 live a4")

	// A buffered action stays decided: a repeat outputs nothing, and the flush outputs it once.
	b1 := h.action("s2", "b1", at(1), h.who("anon2"))
	h.route(s, b1)
	h.expect("repeat of a buffered action", h.route(s, b1))
	h.expect("flush", h.apply(s, h.event("e2", messages.ConvCreated, "c2", at(2), "hint=s2")), "c2 pre b1")
	h.expect("the buffered action is not forwarded again after the flush", h.route(s, b1))

	// A repeat of a buffered action in the batch that links its session is output by the flush only.
	d1 := h.action("s3", "d1", at(1), h.who("anon3"))
	h.route(s, d1)
	h.apply(s, h.event("e3", messages.ConvCreated, "c3", at(2), "ext=u3"))
	linking := []messages.ProductAction{d1, h.identify("s3", "id3", at(3), "anon3", "u3"), h.action("s3", "d2", at(4), h.who("u3"))}
	h.expect("a repeat in the batch that links", h.route(s, linking...), "c3 pre d1", "c3 live d2")
	h.expect("that batch again", h.route(s, linking...), "c3 pre d1", "c3 live d2")
	h.expect("the repeat alone gives its stored decision", h.route(s, d1), "c3 pre d1")
	h.expectCounter(reg, 3, "threadline_linker_actions_buffered_total") // a1, b1, d1, each once

	// An action id that JSON escapes: the flush still records it as decided.
	q := h.action("s4", `q"1\`, at(1), h.who("anon4"))
	h.route(s, q)
	h.expect("flush of an escaped id", h.apply(s, h.event("e4", messages.ConvCreated, "c4", at(2), "hint=s4")), `c4 pre q"1\`)
	h.expect("its repeat after the flush", h.route(s, q))
}

func scenarioIdempotentApply(h *harness) {
	s, _ := h.store(Config{ClosedGrace: time.Minute})
	h.route(s, h.action("s1", "a1", at(1), h.who("u1")), h.action("s1", "a2", at(2), h.who("u1")))
	created := h.event("e1", messages.ConvCreated, "c1", at(3), "ext=u1")
	h.expect("first", h.apply(s, created), "c1 pre a1 a2")
	h.expect("repeat (crash before produce)", h.apply(s, created), "c1 pre a1 a2")

	// Later state must not be undone by a repeat, and new buffer content is not part of it.
	h.apply(s, h.event("e2", messages.ConvClosed, "c1", at(4)))
	h.expect("buffered after close", h.route(s, h.action("s1", "a3", at(200), h.who("u1"))))
	h.expect("repeat of created after close: same output", h.apply(s, created), "c1 pre a1 a2")
	h.expect("still closed: a repeat did not reopen", h.route(s, h.action("s1", "a4", at(201), h.who("u1"))))
	reopen := h.event("e3", messages.ConvReplied, "c1", at(202), "ext=u1")
	h.expect("reopen flushes the rest once", h.apply(s, reopen), "c1 pre a3 a4")
	h.expect("repeat of reopen", h.apply(s, reopen), "c1 pre a3 a4")
	h.expect("a different event does not output them again",
		h.apply(s, h.event("e4", messages.ConvReplied, "c1", at(203), "ext=u1")))

	// A repeat of an old event must not make the identities of a closed conversation follow it again.
	h.route(s, h.action("s2", "b1", at(1), h.who("anon2")))
	hinted := h.event("e5", messages.ConvCreated, "c2", at(2), "hint=s2")
	h.expect("hint", h.apply(s, hinted), "c2 pre b1")
	h.apply(s, h.event("e6", messages.ConvClosed, "c2", at(3)))
	h.expect("repeat after close", h.apply(s, hinted), "c2 pre b1")
	h.expect("a new session of the same browser does not follow the closed conversation",
		h.route(s, h.action("s3", "d1", at(600), h.who("anon2"))))
}

// scenarioRace runs two linker replicas, each with its own client, as if they owned different
// partitions: replica r routes the actions of half the sessions while the other replica applies
// their conversations, all concurrently. Conversations arrive before, during and after their
// session's actions, linked by hint, external id or email. Every action must come out exactly once.
func scenarioRace(h *harness) {
	const (
		sessions   = 48
		rounds     = 8
		perRound   = 3
		perSession = rounds * perRound
	)
	cfg := Config{BufferWindow: time.Hour, BufferMax: 1000, BufferTTL: 2 * time.Hour}
	stores := [2]*Store{}
	for r := range stores {
		stores[r], _ = h.store(cfg)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	applyAfter := make([]int, sessions) // conversation i is applied once its actions reached this round
	for i := range applyAfter {
		applyAfter[i] = rng.IntN(rounds + 1)
	}
	sid := func(i int) string { return "s" + pad(i) }
	identity := func(i int) messages.Identity {
		switch i % 3 {
		case 1:
			return h.who("u" + pad(i))
		case 2:
			return h.who("anon"+pad(i), "email=m"+pad(i))
		}
		return h.who("anon" + pad(i))
	}
	conversation := func(i int) messages.ConversationEvent {
		link := []string{"hint=" + sid(i), "ext=u" + pad(i), "email=m" + pad(i)}[i%3]
		return h.event("e"+pad(i), messages.ConvCreated, "c"+pad(i), at(0.5), link)
	}

	type result struct {
		out []messages.ConversationActions
		err error
	}
	results := make(chan result, 1024)
	var progress [2]chan int // rounds completed by each replica's action goroutine
	for r := range progress {
		progress[r] = make(chan int, rounds+1)
	}
	done := make(chan struct{})
	for r := 0; r < 2; r++ {
		go func() { // actions of sessions i%2 == r
			defer func() { done <- struct{}{} }()
			for round := 0; round < rounds; round++ {
				var batch []messages.ProductAction
				for i := r; i < sessions; i += 2 {
					for k := 0; k < perRound; k++ {
						n := round*perRound + k
						batch = append(batch, h.action(sid(i), sid(i)+"-"+pad(n), at(float64(1+n)), identity(i)))
					}
				}
				out, err := stores[r].RouteBatch(h.ctx, batch)
				results <- result{out, err}
				progress[r] <- round + 1
			}
			close(progress[r])
		}()
		go func() { // conversations of sessions routed by the other replica
			defer func() { done <- struct{}{} }()
			other := 1 - r
			var mine []int
			for i := other; i < sessions; i += 2 {
				mine = append(mine, i)
			}
			reached := 0
			for want := 0; want <= rounds; want++ {
				for reached < want {
					if v, ok := <-progress[other]; ok {
						reached = v
					} else {
						reached = rounds
					}
				}
				for _, i := range mine {
					if applyAfter[i] == want {
						out, err := stores[r].Apply(h.ctx, conversation(i))
						results <- result{out, err}
					}
				}
			}
		}()
	}
	go func() {
		for range 4 {
			<-done
		}
		close(results)
	}()

	seen := map[string]int{}
	for res := range results {
		if res.err != nil {
			h.t.Fatalf("replica: %v", res.err)
		}
		for _, m := range res.out {
			for _, a := range m.Actions {
				seen[a.ActionID]++
				i := strings.TrimPrefix(a.SessionID, h.ns+"s")
				if want := h.id("c" + i); m.ConversationID != want {
					h.t.Errorf("action %s went to %s, want %s", a.ActionID, m.ConversationID, want)
				}
			}
		}
	}
	for i := 0; i < sessions; i++ {
		for n := 0; n < perSession; n++ {
			id := h.id(sid(i) + "-" + pad(n))
			if seen[id] != 1 {
				h.t.Errorf("action %s output %d times (conversation applied after round %d, seed %d)", id, seen[id], applyAfter[i], seed)
			}
			delete(seen, id)
		}
	}
	if len(seen) != 0 {
		h.t.Errorf("unexpected actions in output: %v", seen)
	}
}
