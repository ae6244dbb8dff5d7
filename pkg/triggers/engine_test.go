package triggers

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
)

func rageClick(id string, at time.Duration) messages.ProductAction {
	return act(id, "$rageclick", messages.KindRageClick, "/checkout", at, nil)
}

func paymentFailed(id string, at time.Duration, props map[string]string) messages.ProductAction {
	return act(id, "payment_failed", messages.KindError, "/checkout", at, props)
}

// TestIssueRulesWorkAsWritten plays the three rules of the issue's example.
func TestIssueRulesWorkAsWritten(t *testing.T) { testIssueRulesWorkAsWritten(t, newRig) }

func testIssueRulesWorkAsWritten(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	var all []messages.IntercomEvent

	// rage-clicked, every: 1h — in event time.
	got := r.evaluate(e,
		in(rageClick("rc-1", 0), user),
		in(rageClick("rc-2", 10*time.Minute), user),
		in(rageClick("rc-3", 59*time.Minute), user),
		in(rageClick("rc-4", 61*time.Minute), user),
	)
	all = append(all, got...)
	if ids := actionIDs(got); !slices.Equal(ids, []string{"rc-1", "rc-4"}) {
		t.Fatalf("rage-clicked fired for %v, want rc-1 and rc-4", ids)
	}
	want := messages.IntercomEvent{
		Version: 1, EventName: "rage-clicked", CreatedAt: t0.Unix(), UserID: user.UserID,
		WorkspaceID: user.WorkspaceID, Rule: "rage-clicked", ActionID: "rc-1",
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("event:\n got %+v\nwant %+v", got[0], want)
	}

	// hit-payment-error: matches on the plan property, copies the metadata it names.
	props := map[string]string{"plan": "Pro", "error_code": "card_declined", "currency": "usd"}
	got = r.evaluate(e,
		in(paymentFailed("pf-1", 2*time.Hour+1500*time.Millisecond, props), user),
		in(paymentFailed("pf-2", 2*time.Hour+time.Minute, map[string]string{"plan": "Free", "error_code": "card_declined"}), user),
	)
	all = append(all, got...)
	want = messages.IntercomEvent{
		Version: 1, EventName: "hit-payment-error", CreatedAt: t0.Add(2*time.Hour + time.Second).Unix(), UserID: user.UserID, // seconds, truncated
		WorkspaceID: user.WorkspaceID, Metadata: map[string]any{"error_code": "card_declined", "plan": "Pro"},
		Rule: "hit-payment-error", ActionID: "pf-1",
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("hit-payment-error:\n got %+v\nwant [%+v]", got, want)
	}

	// lingered-on-pricing: 60 s on /pricing, decided by Tick.
	pv := pageview("pv-pricing", "/pricing", 3*time.Hour)
	if got := r.evaluate(e, in(pv, user)); len(got) != 0 {
		t.Fatalf("a dwell rule fired on its pageview: %v", got)
	}
	if got := r.tick(e, pv.Action.EventTime.Add(59*time.Second)); len(got) != 0 {
		t.Fatalf("fired before the dwell: %v", got)
	}
	got = r.tick(e, pv.Action.EventTime.Add(60*time.Second+DefaultConfig().DwellGrace))
	if len(got) != 1 || got[0].EventName != "lingered-on-pricing" || got[0].ActionID != "pv-pricing" ||
		got[0].CreatedAt != pv.Action.EventTime.Unix() {
		t.Fatalf("lingered-on-pricing: %+v", got)
	}
	all = append(all, got...)
	validateEvents(t, all)
}

func actionIDs(events []messages.IntercomEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ActionID
	}
	return out
}

// TestEveryHoldsAcrossReplicas has two engines on one Redis race on one user's rage clicks.
func TestEveryHoldsAcrossReplicas(t *testing.T) { testEveryHoldsAcrossReplicas(t, newRig) }

func testEveryHoldsAcrossReplicas(t *testing.T, newRig backend) {
	r := newRig(t)
	rules := issueRules(t)
	replicas := []*Engine{r.engine(rules), r.engine(rules)}

	// 40 rage clicks within ten minutes, from two sessions, half on each replica, all at once.
	var (
		mu    sync.Mutex
		fired []messages.IntercomEvent
		wg    sync.WaitGroup
	)
	for i := range 40 {
		wg.Go(func() {
			pa := rageClick(fmt.Sprintf("rc-%d", i), time.Duration(i)*15*time.Second)
			pa.Action.SessionID = fmt.Sprintf("sess-%d", i%2)
			out, err := replicas[i%2].Evaluate(r.ctx, pa, user)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			fired = append(fired, out...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(fired) != 1 {
		t.Fatalf("%d events from 40 rage clicks within an hour on two replicas, want 1: %v", len(fired), actionIDs(fired))
	}

	// Later clicks: the hour counts from the one that fired, in event time, on either replica.
	var n int
	if _, err := fmt.Sscanf(fired[0].ActionID, "rc-%d", &n); err != nil {
		t.Fatal(err)
	}
	firstAt := time.Duration(n) * 15 * time.Second
	if got := r.evaluate(replicas[0], in(rageClick("late-1", firstAt+59*time.Minute), user)); len(got) != 0 {
		t.Errorf("fired 59 min after the last one: %v", got)
	}
	if got := r.evaluate(replicas[1], in(rageClick("late-2", firstAt+61*time.Minute), user)); len(got) != 1 {
		t.Errorf("did not fire 61 min after the last one: %v", got)
	}
	// Another user has a limit of their own.
	other := User{UserID: "usr_other"}
	if got := r.evaluate(replicas[0], in(rageClick("other-1", 5*time.Minute), other)); len(got) != 1 {
		t.Errorf("another user's first rage click did not fire: %v", got)
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "rage-clicked", "reason": "every"}); n != 40 {
		t.Errorf("skipped for every = %v, want 40 (39 in the race and one at 59 min)", n)
	}
}

// journey is a session in which every rule of the issue fires once.
func journey() []messages.ProductAction {
	return []messages.ProductAction{
		pageview("j-pv-pricing", "/pricing", 0),
		act("j-click", "$autocapture", messages.KindClick, "/pricing", 70*time.Second, nil),
		pageview("j-pv-checkout", "/checkout", 80*time.Second),
		rageClick("j-rc-1", 90*time.Second),
		rageClick("j-rc-2", 95*time.Second),
		paymentFailed("j-pf", 100*time.Second, map[string]string{"plan": "pro", "error_code": "incorrect_number"}),
		pageview("j-pv-pricing-2", "/pricing", 110*time.Second),
		pageleave("j-leave", "/pricing", 115*time.Second),
	}
}

// playJourney evaluates the journey in batches of size n, ticking with the newest event time
// after every batch and once at the end, and returns all events.
func playJourney(r *rig, e *Engine, n int) []messages.IntercomEvent {
	r.t.Helper()
	var out []messages.IntercomEvent
	actions := journey()
	for i := 0; i < len(actions); i += n {
		var batch []Input
		for _, pa := range actions[i:min(i+n, len(actions))] {
			batch = append(batch, in(pa, user))
		}
		out = append(out, r.evaluate(e, batch...)...)
		out = append(out, r.tick(e, e.NewestEventTime())...)
	}
	return append(out, r.tick(e, t0.Add(time.Hour))...)
}

// TestReplayEmitsNothingTwice plays a journey, then replays it on the same engine, on a fresh
// engine (a restart), one action at a time and all at once: nothing is emitted again.
func TestReplayEmitsNothingTwice(t *testing.T) { testReplayEmitsNothingTwice(t, newRig) }

func testReplayEmitsNothingTwice(t *testing.T, newRig backend) {
	r := newRig(t)
	rules := issueRules(t)
	first := playJourney(r, r.engine(rules), 3)
	slices.SortFunc(first, func(a, b messages.IntercomEvent) int { return int(a.CreatedAt - b.CreatedAt) })
	if got := names(first); !slices.Equal(got, []string{"lingered-on-pricing", "rage-clicked", "hit-payment-error"}) {
		t.Fatalf("first play emitted %v", got)
	}
	validateEvents(t, first)

	for _, n := range []int{1, 4, len(journey())} {
		if again := playJourney(r, r.engine(rules), n); len(again) != 0 {
			t.Errorf("replay in batches of %d emitted %v", n, actionIDs(again))
		}
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "hit-payment-error", "reason": "duplicate"}); n != 3 {
		t.Errorf("hit-payment-error duplicates = %v, want 3", n)
	}
}

// TestUnconfirmedEventsAreEmittedAgain covers a produce that failed or a process that died:
// the event comes back from Tick once its lease ends, until confirmed, at most so often.
func TestUnconfirmedEventsAreEmittedAgain(t *testing.T) {
	testUnconfirmedEventsAreEmittedAgain(t, newRig)
}

func testUnconfirmedEventsAreEmittedAgain(t *testing.T, newRig backend) {
	r := newRig(t)
	cfg := DefaultConfig()
	cfg.MaxRedeliveries = 2
	e := r.engine(issueRules(t), WithConfig(cfg))
	pa := rageClick("rc-1", 0)

	first, err := e.Evaluate(r.ctx, pa, user) // produced? never confirmed
	if err != nil || len(first) != 1 {
		t.Fatalf("Evaluate = %v, %v", first, err)
	}
	if again, err := e.Evaluate(r.ctx, pa, user); err != nil || len(again) != 0 {
		t.Fatalf("a retry of the action emitted %v, %v", again, err)
	}
	if got, err := e.Tick(r.ctx, t0); err != nil || len(got) != 0 {
		t.Fatalf("Tick within the lease emitted %v, %v", got, err)
	}

	// Another replica takes over after the lease: it emits the same event.
	other := r.engine(issueRules(t), WithConfig(cfg))
	r.clock.Set(t0.Add(cfg.ClaimLease + time.Second))
	got, err := other.Tick(r.ctx, t0)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], first[0]) {
		t.Fatalf("Tick after the lease = %v, %v; want %v", got, err, first)
	}
	if got, _ := e.Tick(r.ctx, t0); len(got) != 0 {
		t.Fatalf("a second replica emitted it within the new lease: %v", got)
	}

	// Confirmed: never again.
	if err := other.Confirm(r.ctx, got); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(t0.Add(10 * cfg.ClaimLease))
	if got, _ := e.Tick(r.ctx, t0); len(got) != 0 {
		t.Fatalf("emitted after Confirm: %v", got)
	}

	// Never confirmed: emitted MaxRedeliveries more times, then given up.
	lost, err := e.Evaluate(r.ctx, rageClick("rc-2", 2*time.Hour), user)
	if err != nil || len(lost) != 1 {
		t.Fatalf("Evaluate = %v, %v", lost, err)
	}
	emissions := 1
	for i := range 5 {
		r.clock.Set(t0.Add(time.Duration(11+i) * cfg.ClaimLease))
		got, err := e.Tick(r.ctx, t0)
		if err != nil {
			t.Fatal(err)
		}
		emissions += len(got)
	}
	if emissions != 1+cfg.MaxRedeliveries {
		t.Errorf("emitted %d times, want %d", emissions, 1+cfg.MaxRedeliveries)
	}
	if n := r.counter("threadline_triggers_gave_up_total", map[string]string{"rule": "rage-clicked"}); n != 1 {
		t.Errorf("gave up = %v, want 1", n)
	}
	if n := r.rdb.ZCard(r.ctx, unconfirmedKey).Val(); n != 0 {
		t.Errorf("%d entries left in the unconfirmed set", n)
	}
}

func TestAnonymousUsersAreSkippedAndCounted(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	anon := User{WorkspaceID: "ab12cd34"}
	got := r.evaluate(e,
		in(rageClick("rc-1", 0), anon),
		in(paymentFailed("pf-1", time.Second, map[string]string{"plan": "pro"}), anon),
		in(pageview("pv-1", "/pricing", 2*time.Second), anon),
		in(rageClick("rc-2", 3*time.Second), User{UserID: "jane@example.com"}), // an email is no id
	)
	got = append(got, r.tick(e, t0.Add(time.Hour))...)
	if len(got) != 0 {
		t.Fatalf("anonymous users emitted %v", got)
	}
	for rule, want := range map[string]float64{"rage-clicked": 2, "hit-payment-error": 1, "lingered-on-pricing": 1} {
		if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": rule, "reason": "anonymous"}); n != want {
			t.Errorf("%s: skipped anonymous = %v, want %v", rule, n, want)
		}
	}
	if n := r.counter("threadline_triggers_actions_total", nil); n != 4 {
		t.Errorf("actions evaluated = %v, want 4", n)
	}
}

// TestIdentifiers checks which identifiers an event carries and that users are told apart by
// their strongest one.
func TestIdentifiers(t *testing.T) { testIdentifiers(t, newRig) }

func testIdentifiers(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	hash := "h:86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"
	id := messages.Identity{DistinctID: "d1", UserID: "usr_1", IntercomUserID: "66f1c0d2e4b0a91f3c2d7e10", EmailHash: hash}
	if u := UserFromIdentity(id); u != (User{UserID: "usr_1", IntercomUserID: "66f1c0d2e4b0a91f3c2d7e10", EmailHash: hash}) {
		t.Errorf("UserFromIdentity = %+v", u)
	}
	if u := UserFromIdentity(messages.Identity{UserID: "jane@example.com"}); !u.Anonymous() {
		t.Errorf("an email as user id made a user: %+v", u)
	}
	// A user known by an email hash only emits for the contact remembered for it.
	if err := e.RememberContact(r.ctx, Contact{EmailHash: hash, ContactID: "66f1c0d2e4b0a91f3c2d7e99"}); err != nil {
		t.Fatal(err)
	}
	got := r.evaluate(e,
		in(rageClick("rc-contact", 0), User{IntercomUserID: "66f1c0d2e4b0a91f3c2d7e10"}),
		in(rageClick("rc-hash", 0), User{EmailHash: hash}),
		in(rageClick("rc-all", 0), UserFromIdentity(id)),
	)
	if len(got) != 3 {
		t.Fatalf("three users emitted %d events", len(got))
	}
	if got[0].IntercomUserID == "" || got[0].UserID != "" || got[1].EmailHash != hash || got[1].UserID != "" ||
		got[1].IntercomUserID != "66f1c0d2e4b0a91f3c2d7e99" ||
		got[2].UserID != "usr_1" || got[2].IntercomUserID == "" || got[2].EmailHash != hash {
		t.Errorf("identifiers: %+v", got)
	}
	for i, want := range []string{"66f1c0d2e4b0a91f3c2d7e10", "66f1c0d2e4b0a91f3c2d7e99", "usr_1"} {
		if k := EventKey(&got[i]); k != want {
			t.Errorf("EventKey of event %d = %q, want %q", i, k, want)
		}
	}
	validateEvents(t, got)
}

// TestEventsKeepInputOrder interleaves two users in one batch.
func TestEventsKeepInputOrder(t *testing.T) { testEventsKeepInputOrder(t, newRig) }

func testEventsKeepInputOrder(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(mustParse(t, "triggers:\n  - name: clicked-button\n    when: { kind: click }\n"))
	var batch []Input
	for i := range 6 {
		u := User{UserID: fmt.Sprintf("usr_%d", i%2)}
		batch = append(batch, in(act(fmt.Sprintf("c-%d", i), "$autocapture", messages.KindClick, "/", time.Duration(i)*time.Second, nil), u))
	}
	got := r.evaluate(e, batch...)
	if ids := actionIDs(got); !slices.Equal(ids, []string{"c-0", "c-1", "c-2", "c-3", "c-4", "c-5"}) {
		t.Fatalf("events in order %v", ids)
	}
}

// TestInvalidActionsAreCounted: no id or no event time cannot trigger.
func TestInvalidActionsAreCounted(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	noID := rageClick("", 0)
	noTime := rageClick("rc-x", 0)
	noTime.Action.EventTime = time.Time{}
	if got := r.evaluate(e, in(noID, user), in(noTime, user)); len(got) != 0 {
		t.Fatalf("invalid actions emitted %v", got)
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "rage-clicked", "reason": "invalid"}); n != 2 {
		t.Errorf("skipped invalid = %v, want 2", n)
	}
}

// TestRedisRestartAndOutage: scripts load again on an emptied server; an outage is an error
// for work that needs Redis, and none for actions that match nothing.
func TestRedisRestartAndOutage(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	if got := r.evaluate(e, in(rageClick("rc-1", 0), user)); len(got) != 1 {
		t.Fatalf("before restart: %v", got)
	}
	if err := r.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := r.evaluate(e, in(rageClick("rc-2", 2*time.Hour), user)); len(got) != 1 {
		t.Fatalf("after restart: %v", got)
	}
	r.srv.Stop()
	// A client that does not retry, so the outage shows at once.
	down := redis.NewClient(&redis.Options{Addr: r.srv.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = down.Close() })
	e = NewEngine(issueRules(t), down, zaptest.NewLogger(t), nil)
	ctx := r.ctx
	if _, err := e.Evaluate(ctx, rageClick("rc-3", 4*time.Hour), user); err == nil {
		t.Error("Evaluate with Redis down: no error")
	}
	click := act("c-1", "$autocapture", messages.KindClick, "/pricing", 0, nil)
	if got, err := e.Evaluate(ctx, click, user); err != nil || len(got) != 0 {
		t.Errorf("an action matching nothing, Redis down: %v, %v", got, err)
	}
	if _, err := e.Tick(ctx, t0); err == nil {
		t.Error("Tick with Redis down: no error")
	}
	if err := e.Confirm(ctx, []messages.IntercomEvent{{Rule: "rage-clicked", ActionID: "rc-2", UserID: user.UserID}}); err == nil {
		t.Error("Confirm with Redis down: no error")
	}
}

// TestNoRedisWorkWithoutMatches checks an engine with no dwell rules never calls Redis for
// actions that match nothing.
func TestNoRedisWorkWithoutMatches(t *testing.T) {
	rules := mustParse(t, "triggers:\n  - name: rage-clicked\n    when: { event: $rageclick }\n")
	e := NewEngine(rules, nil, nil, nil) // a nil client would panic if used
	got, err := e.EvaluateBatch(context.Background(), []Input{
		in(pageview("pv-1", "/pricing", 0), user),
		in(act("c-1", "$autocapture", messages.KindClick, "/pricing", time.Second, nil), user),
	})
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
	if !e.NewestEventTime().Equal(t0.Add(time.Second)) {
		t.Errorf("NewestEventTime = %v", e.NewestEventTime())
	}
}

// TestLargeBatchesSplitIntoCalls: batches larger than one script call takes, and more due waits
// than one Tick handles, still decide every action once.
func TestLargeBatchesSplitIntoCalls(t *testing.T) { testLargeBatchesSplitIntoCalls(t, newRig) }

func testLargeBatchesSplitIntoCalls(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	const users = maxPerCall*2 + 100
	var batch []Input
	for i := range users {
		u := User{UserID: fmt.Sprintf("usr_%d", i)}
		session := fmt.Sprintf("s%d", i)
		batch = append(batch,
			in(inSession(paymentFailed("pf", 0, map[string]string{"plan": "pro"}), session), u),
			in(inSession(pageview("pv", "/pricing", time.Second), session), u),
		)
	}
	if got := r.evaluate(e, batch...); len(got) != users {
		t.Fatalf("%d payment errors emitted for %d users", len(got), users)
	}
	if got := r.evaluate(e, batch...); len(got) != 0 {
		t.Fatalf("the repeat emitted %d", len(got))
	}
	dwelled := 0
	for range 4 { // 500 due waits per Tick
		dwelled += len(r.tick(e, t0.Add(time.Hour)))
	}
	if dwelled != users {
		t.Fatalf("%d dwell events for %d users", dwelled, users)
	}
}
