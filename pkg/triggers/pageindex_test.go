package triggers

import (
	"slices"
	"testing"
	"time"
)

// TestSessionsKnownWithoutPageStateCostNoRedis: once a script call reported that a session has no
// page state, its page events need no Redis work at all (Begin finds none), until it starts a
// wait; a session with a pending page is followed every time.
func TestSessionsKnownWithoutPageStateCostNoRedis(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	r.evaluate(e,
		in(inSession(pageview("a", "/docs", 0), "quiet"), user),
		in(inSession(pageview("pv", "/pricing", 0), "pending"), user),
	)
	if !e.pages.known("quiet") || e.pages.known("pending") {
		t.Fatalf("after the first batch: quiet known %v, pending known %v; want true, false", e.pages.known("quiet"), e.pages.known("pending"))
	}
	ev, err := e.Begin(r.ctx, []Input{in(inSession(pageview("b", "/projects", time.Second), "quiet"), user)})
	if err != nil || ev != nil {
		t.Fatalf("Begin for a session known to have no page state: %+v, %v; want no Redis work", ev, err)
	}
	ev, err = e.Begin(r.ctx, []Input{in(inSession(pageview("c", "/docs", time.Second), "pending"), user)})
	if err != nil || ev == nil || len(ev.sessions) != 1 {
		t.Fatalf("Begin for a session with a pending page: %+v, %v; want it followed", ev, err)
	}
	if _, err := ev.Finish(r.ctx); err != nil {
		t.Fatal(err)
	}
	if !e.pages.known("pending") {
		t.Error("the pending page ended, yet its session is not known to have no page state")
	}
	// A known session that starts a wait is sent, and its state is what decides.
	r.evaluate(e, in(inSession(pageview("pv2", "/pricing", 2*time.Second), "quiet"), user))
	if e.pages.known("quiet") || r.rdb.Exists(r.ctx, sessionKey("quiet")).Val() != 1 {
		t.Fatal("a session that started a wait is still known to have no page state, or has none")
	}
	if got := r.tick(e, t0.Add(time.Hour)); !slices.Equal(actionIDs(got), []string{"quiet/pv2"}) {
		t.Fatalf("fired %v, want the wait of the page still open", actionIDs(got))
	}
}

// TestForgetSessionsAfterPartitionsMove: a session this engine knew to have no page state starts
// a wait on another replica (its partition moved there and back). After ForgetSessions, as the
// linker calls it when partitions are assigned, this engine asks again and follows the page: the
// user who left early is not taken for one who stayed.
func TestForgetSessionsAfterPartitionsMove(t *testing.T) {
	r := newRig(t)
	here, there := r.engine(mustParse(t, dwellRules)), r.engine(mustParse(t, dwellRules))
	r.evaluate(here, in(inSession(pageview("a", "/docs", 0), "s"), user))
	if !here.pages.known("s") {
		t.Fatal("the session is not known to have no page state")
	}
	r.evaluate(there, in(inSession(pageview("pv", "/pricing", time.Second), "s"), user))
	here.ForgetSessions()
	r.evaluate(here, in(inSession(pageview("next", "/checkout", 5*time.Second), "s"), user))
	if got := r.tick(here, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("fired %v for a user who left the page after 4 s", actionIDs(got))
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "lingered-on-pricing", "reason": "left"}); n != 1 {
		t.Errorf("skipped as left = %v, want 1", n)
	}
}

func TestPageIndexIsBounded(t *testing.T) {
	x := newPageIndex()
	sessions := make([]string, maxStatelessSessions+1)
	status := make([]byte, len(sessions))
	for i := range sessions {
		sessions[i], status[i] = "s"+time.Duration(i).String(), '0'
	}
	x.update(sessions, string(status))
	if n := len(x.stateless); n == 0 || n > maxStatelessSessions {
		t.Fatalf("%d sessions remembered, want between 1 and %d", n, maxStatelessSessions)
	}
	if !x.known(sessions[len(sessions)-1]) {
		t.Error("the newest session is not remembered")
	}
	x.update(sessions[len(sessions)-1:], "1")
	if x.known(sessions[len(sessions)-1]) {
		t.Error("a session reported with page state is still known to have none")
	}
}
