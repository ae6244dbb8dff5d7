package triggers

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

const dwellRules = `triggers:
  - name: lingered-on-pricing
    when: { event: $pageview, url_contains: /pricing }
    dwell: 60s
    metadata: [{ previous_page: $prev_pageview_pathname }]
`

var grace = DefaultConfig().DwellGrace

func inSession(pa messages.ProductAction, session string) messages.ProductAction {
	pa.Action.SessionID = session
	pa.Action.ActionID = session + "/" + pa.Action.ActionID
	return pa
}

// TestDwellFiresWhileTheUserStays: the event comes once the threshold and the grace passed,
// with the pageview's time and metadata, and only once.
func TestDwellFiresWhileTheUserStays(t *testing.T) { testDwellFiresWhileTheUserStays(t, newRig) }

func testDwellFiresWhileTheUserStays(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	pv := pageview("pv-1", "/pricing", 0)
	pv.Properties = map[string]string{"$prev_pageview_pathname": "/home"}
	r.evaluate(e, in(pv, user))
	r.evaluate(e, in(act("click", "$autocapture", messages.KindClick, "/pricing", 20*time.Second, nil), user))

	for _, at := range []time.Duration{30 * time.Second, 60 * time.Second, 60*time.Second + grace - time.Millisecond} {
		if got := r.tick(e, t0.Add(at)); len(got) != 0 {
			t.Fatalf("Tick at +%s fired %v", at, got)
		}
	}
	got := r.tick(e, t0.Add(60*time.Second+grace))
	want := messages.IntercomEvent{
		Version: 1, EventName: "lingered-on-pricing", CreatedAt: t0.Unix(), UserID: user.UserID, WorkspaceID: user.WorkspaceID,
		Metadata: map[string]any{"previous_page": "/home"}, Rule: "lingered-on-pricing", ActionID: "pv-1",
	}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("Tick at the threshold = %+v, want %+v", got, want)
	}
	validateEvents(t, got)
	if got := r.tick(e, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("fired again: %v", got)
	}
	// The user leaves after it fired: nothing changes.
	r.evaluate(e, in(pageleave("leave", "/pricing", 2*time.Minute), user))
	if got := r.tick(e, t0.Add(2*time.Hour)); len(got) != 0 {
		t.Fatalf("fired again after the pageleave: %v", got)
	}
}

// TestDwellUserLeftEarly: a later pageview or a pageleave before the threshold ends the wait;
// one after the threshold (seen before any tick, as when catching up) fires it.
func TestDwellUserLeftEarly(t *testing.T) { testDwellUserLeftEarly(t, newRig) }

func testDwellUserLeftEarly(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	cases := []struct {
		session string
		end     messages.ProductAction
		fires   bool
	}{
		{"moved-on", pageview("next", "/checkout", 30*time.Second), false},
		{"left", pageleave("leave", "/pricing", 59*time.Second), false},
		{"stayed-exactly", pageleave("leave", "/pricing", 60*time.Second), true},
		{"stayed-then-left", pageleave("leave", "/pricing", 61*time.Second), true},
		{"stayed-then-moved", pageview("next", "/checkout", 3*time.Minute), true},
	}
	for _, tc := range cases {
		r.evaluate(e, in(inSession(pageview("pv", "/pricing", 0), tc.session), user), in(inSession(tc.end, tc.session), user))
	}
	got := r.tick(e, t0.Add(time.Hour))
	var fired []string
	for _, ev := range got {
		fired = append(fired, ev.ActionID)
	}
	slices.Sort(fired)
	if want := []string{"stayed-exactly/pv", "stayed-then-left/pv", "stayed-then-moved/pv"}; !slices.Equal(fired, want) {
		t.Fatalf("fired for %v, want %v", fired, want)
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "lingered-on-pricing", "reason": "left"}); n != 2 {
		t.Errorf("skipped as left = %v, want 2", n)
	}
	if n := r.rdb.ZCard(r.ctx, dueKey).Val(); n != 0 {
		t.Errorf("%d waits left scheduled", n)
	}
}

// TestDwellGraceWaitsForLateEvents: posthog-js sends in batches, so a pageleave from before the
// threshold can arrive after it; within the grace it still counts.
func TestDwellGraceWaitsForLateEvents(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	r.evaluate(e, in(pageview("pv", "/pricing", 0), user))
	if got := r.tick(e, t0.Add(63*time.Second)); len(got) != 0 {
		t.Fatalf("fired within the grace: %v", got)
	}
	r.evaluate(e, in(pageleave("leave", "/pricing", 58*time.Second), user)) // arrives at +63 s
	if got := r.tick(e, t0.Add(70*time.Second)); len(got) != 0 {
		t.Fatalf("fired although the user left at +58 s: %v", got)
	}
}

// TestDwellAcrossReplicasAndRestarts: the page state is in Redis, so whichever replica sees
// the next event or ticks decides correctly.
func TestDwellAcrossReplicasAndRestarts(t *testing.T) { testDwellAcrossReplicasAndRestarts(t, newRig) }

func testDwellAcrossReplicasAndRestarts(t *testing.T, newRig backend) {
	r := newRig(t)
	rules := mustParse(t, dwellRules)

	// Replica A sees the pageview and stops; replica B, started afterwards, ticks.
	a := r.engine(rules)
	r.evaluate(a, in(inSession(pageview("pv", "/pricing", 0), "stays"), user))
	r.evaluate(a, in(inSession(pageview("pv", "/pricing", 0), "leaves"), user))
	b := r.engine(rules)
	// B also sees the rest of one session after a rebalance: the user moves on after 10 s.
	r.evaluate(b, in(inSession(pageview("next", "/docs", 10*time.Second), "leaves"), user))
	got := r.tick(b, t0.Add(2*time.Minute))
	if len(got) != 1 || got[0].ActionID != "stays/pv" {
		t.Fatalf("B fired %v, want only the session that stayed", actionIDs(got))
	}
	if got := r.tick(a, t0.Add(3*time.Minute)); len(got) != 0 {
		t.Fatalf("A fired again: %v", got)
	}
}

// TestDwellConcurrentTicks: many replicas tick at once; each event comes out exactly once.
func TestDwellConcurrentTicks(t *testing.T) { testDwellConcurrentTicks(t, newRig) }

func testDwellConcurrentTicks(t *testing.T, newRig backend) {
	r := newRig(t)
	rules := mustParse(t, dwellRules)
	replicas := []*Engine{r.engine(rules), r.engine(rules), r.engine(rules)}
	const sessions = 30
	var inputs []Input
	for i := range sessions {
		inputs = append(inputs, in(inSession(pageview("pv", "/pricing", time.Duration(i)*time.Second), fmt.Sprintf("s%02d", i)), User{UserID: fmt.Sprintf("usr_%d", i)}))
	}
	r.evaluate(replicas[0], inputs...)

	var (
		mu    sync.Mutex
		fired []string
		wg    sync.WaitGroup
	)
	for i := range 12 {
		wg.Go(func() {
			e := replicas[i%len(replicas)]
			// Ticks sweep past every threshold from different replicas at once.
			out, err := e.Tick(r.ctx, t0.Add(time.Duration(40+i*5)*time.Second+grace+time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			if err := e.Confirm(r.ctx, out); err != nil {
				t.Error(err)
			}
			mu.Lock()
			fired = append(fired, actionIDs(out)...)
			mu.Unlock()
		})
	}
	wg.Wait()
	fired = append(fired, actionIDs(r.tick(replicas[0], t0.Add(time.Hour)))...)
	sort.Strings(fired)
	if len(fired) != sessions || len(slices.Compact(slices.Clone(fired))) != sessions {
		t.Fatalf("%d events for %d sessions: %v", len(fired), sessions, fired)
	}
}

// dwellScenario is a set of sessions whose users stay on /pricing for different times.
func dwellScenario() (actions []messages.ProductAction, wantFired []string) {
	stays := map[string]time.Duration{"s30": 30 * time.Second, "s59": 59 * time.Second, "s60": 60 * time.Second, "s61": 61 * time.Second, "s90": 90 * time.Second}
	for session, stay := range stays {
		start := time.Duration(len(session)) * time.Second // sessions start at different times
		actions = append(actions,
			inSession(pageview("pv", "/pricing", start), session),
			inSession(act("click", "$autocapture", messages.KindClick, "/pricing", start+stay/2, nil), session),
			inSession(pageview("next", "/checkout", start+stay), session),
			inSession(pageleave("leave", "/checkout", start+stay+5*time.Second), session),
		)
		if stay >= 60*time.Second {
			wantFired = append(wantFired, session+"/pv")
		}
	}
	// One user opens pricing and stays: no event follows at all.
	actions = append(actions, inSession(pageview("pv", "/pricing", 100*time.Second), "stays"))
	wantFired = append(wantFired, "stays/pv")
	slices.SortStableFunc(actions, func(a, b messages.ProductAction) int { return a.Action.EventTime.Compare(b.Action.EventTime) })
	slices.Sort(wantFired)
	return actions, wantFired
}

// TestDwellReplayDecidesTheSame plays sessions live (each event at its time, ticking every
// second on the wall clock) and then replays them on an empty Redis in one batch, ticking with
// the newest event time and, once caught up, the wall clock: both decide the same, and exactly
// the stays of 60 s or more fire.
func TestDwellReplayDecidesTheSame(t *testing.T) { testDwellReplayDecidesTheSame(t, newRig) }

func testDwellReplayDecidesTheSame(t *testing.T, newRig backend) {
	actions, want := dwellScenario()
	rules := mustParse(t, dwellRules)

	live := newRig(t)
	e := live.engine(rules)
	var liveFired []string
	next := 0
	for s := time.Duration(0); s <= 5*time.Minute; s += time.Second {
		now := t0.Add(s)
		var batch []Input
		for next < len(actions) && !actions[next].Action.EventTime.After(now) {
			batch = append(batch, in(actions[next], user))
			next++
		}
		live.evaluate(e, batch...)
		liveFired = append(liveFired, actionIDs(live.tick(e, now))...)
	}
	slices.Sort(liveFired)
	if !slices.Equal(liveFired, want) {
		t.Errorf("live: fired %v, want %v", liveFired, want)
	}

	replay := newRig(t)
	e = replay.engine(rules)
	var batch []Input
	for _, pa := range actions {
		batch = append(batch, in(pa, user))
	}
	replayFired := actionIDs(replay.evaluate(e, batch...))
	replayFired = append(replayFired, actionIDs(replay.tick(e, e.NewestEventTime()))...)
	// Caught up: the user who stayed has had no event for 100 s of event time so far, so only
	// the wall clock can tell they stayed.
	if slices.Contains(replayFired, "stays/pv") {
		t.Errorf("replay: the stream's own clock decided a page it cannot see the end of")
	}
	replayFired = append(replayFired, actionIDs(replay.tick(e, t0.Add(5*time.Minute)))...)
	slices.Sort(replayFired)
	if !slices.Equal(replayFired, want) {
		t.Errorf("replay: fired %v, want %v", replayFired, want)
	}
}

// TestDwellIgnoresOlderPageEvents: an event older than the session's newest page event
// neither opens a page nor ends one.
func TestDwellIgnoresOlderPageEvents(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	r.evaluate(e, in(pageview("pv-2", "/pricing", 100*time.Second), user))
	r.evaluate(e,
		in(pageview("pv-1", "/pricing", 0), user),                    // late and older: no wait of its own
		in(pageleave("old-leave", "/pricing", 50*time.Second), user), // older than pv-2: does not end it
	)
	got := r.tick(e, t0.Add(time.Hour))
	if len(got) != 1 || got[0].ActionID != "pv-2" {
		t.Fatalf("fired %v, want only pv-2", actionIDs(got))
	}
}

// TestDwellWithEvery: a dwell rule can also be limited per user.
func TestDwellWithEvery(t *testing.T) { testDwellWithEvery(t, newRig) }

func testDwellWithEvery(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(mustParse(t, `triggers:
  - name: lingered-on-pricing
    when: { kind: pageview, url: /pricing }
    dwell: 20s
    every: 1h
`))
	visits := []time.Duration{0, 10 * time.Minute, 2 * time.Hour}
	var fired []string
	for i, at := range visits {
		session := fmt.Sprintf("visit-%d", i)
		r.evaluate(e,
			in(inSession(pageview("pv", "/pricing", at), session), user),
			in(inSession(pageleave("leave", "/pricing", at+30*time.Second), session), user),
		)
		fired = append(fired, actionIDs(r.tick(e, t0.Add(at+time.Minute)))...)
	}
	if want := []string{"visit-0/pv", "visit-2/pv"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
}

// TestPageStateKeys follows the Redis keys of a dwell wait on a single server: the session's page
// state, the wait's event and the set of sessions with page state all carry a TTL; a session
// whose state expired leaves the set when it is next seen; once decided, nothing is left.
func TestPageStateKeys(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	inSet := func() bool { return r.rdb.SIsMember(r.ctx, pagesKey, "sess-1").Val() }

	r.evaluate(e, in(pageview("pv-1", "/pricing", 0), user))
	if !inSet() {
		t.Fatal("a session that started a wait is not in the set of sessions with page state")
	}
	for _, key := range []string{sessionKey("sess-1"), waitKey("sess-1", "lingered-on-pricing", "pv-1"), pagesKey} {
		if ttl := r.rdb.PTTL(r.ctx, key).Val(); ttl <= 0 || ttl > e.pageTTL {
			t.Errorf("%s: TTL %s, want within (0, %s]", key, ttl, e.pageTTL)
		}
	}

	// The state expires (the key is gone, the set still names the session): the next page
	// event of the session takes it out of the set and creates nothing.
	r.rdb.Del(r.ctx, sessionKey("sess-1"))
	r.evaluate(e, in(pageview("pv-2", "/checkout", 10*time.Second), user))
	if inSet() {
		t.Error("a session whose page state expired is still in the set")
	}
	if n := r.rdb.Exists(r.ctx, sessionKey("sess-1")).Val(); n != 0 {
		t.Error("a page event that starts nothing created page state")
	}

	// A new wait, decided by a Tick: its event fires and every key of it goes.
	r.evaluate(e, in(pageview("pv-3", "/pricing", 20*time.Second), user))
	if got := r.tick(e, t0.Add(20*time.Second+time.Minute+grace)); len(got) != 1 || got[0].ActionID != "pv-3" {
		t.Fatalf("Tick = %v, want the wait of pv-3", got)
	}
	if inSet() {
		t.Error("a session with nothing pending is still in the set")
	}
	for _, key := range []string{sessionKey("sess-1"), waitKey("sess-1", "lingered-on-pricing", "pv-3")} {
		if n := r.rdb.Exists(r.ctx, key).Val(); n != 0 {
			t.Errorf("%s left after the wait was decided", key)
		}
	}
}

// TestPageStateEndsWithItsPage: a session has page state only while it is on a page that started
// a wait. Its next page event records the page's end and deletes the state; later page events of
// the session cost the script no work; the verdicts are those the ends give.
func TestPageStateEndsWithItsPage(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	inSet := func(session string) bool { return r.rdb.SIsMember(r.ctx, pagesKey, session).Val() }
	endOf := func(session, pageview string) string { return r.rdb.Get(r.ctx, endKey(session, pageview)).Val() }
	ms := func(at time.Duration) string { return strconv.FormatInt(t0.Add(at).UnixMilli(), 10) }

	// "left": on /pricing for 10 s, then elsewhere. "moved": from one /pricing page to another.
	r.evaluate(e,
		in(inSession(pageview("pv", "/pricing", 0), "left"), user),
		in(inSession(pageview("pv", "/pricing", 0), "moved"), user),
	)
	for _, s := range []string{"left", "moved"} {
		if !inSet(s) || r.rdb.Exists(r.ctx, sessionKey(s)).Val() != 1 {
			t.Fatalf("%s: no page state for a pending page", s)
		}
	}
	r.evaluate(e,
		in(inSession(pageview("next", "/checkout", 10*time.Second), "left"), user),
		in(inSession(pageview("pv-2", "/pricing", 20*time.Second), "moved"), user),
	)
	if r.rdb.Exists(r.ctx, sessionKey("left")).Val() != 0 || inSet("left") {
		t.Error("left: the page state outlived its page")
	}
	if got := endOf("left", "left/pv"); got != ms(10*time.Second) {
		t.Errorf("left: end of the page = %q, want %s", got, ms(10*time.Second))
	}
	if ttl := r.rdb.PTTL(r.ctx, endKey("left", "left/pv")).Val(); ttl <= 0 || ttl > e.pageTTL {
		t.Errorf("end of the page: TTL %s, want within (0, %s]", ttl, e.pageTTL)
	}
	if !inSet("moved") || !strings.HasPrefix(r.rdb.Get(r.ctx, sessionKey("moved")).Val(), "moved/pv-2\x1f") {
		t.Error("moved: the page state is not the new pending page")
	}
	if got := endOf("moved", "moved/pv"); got != ms(20*time.Second) {
		t.Errorf("moved: end of the first page = %q, want %s", got, ms(20*time.Second))
	}

	// Later page events of a session without page state: the script reads and writes nothing.
	before := commandCalls(t, r)
	r.evaluate(e,
		in(inSession(pageview("again", "/docs", 30*time.Second), "left"), user),
		in(inSession(pageleave("leave", "/docs", 40*time.Second), "left"), user),
	)
	after := commandCalls(t, r)
	for _, cmd := range []string{"get", "set", "del", "sadd", "srem"} {
		if after[cmd] != before[cmd] {
			t.Errorf("a session without page state cost %d %s", after[cmd]-before[cmd], cmd)
		}
	}

	got := r.tick(e, t0.Add(time.Hour))
	if ids := actionIDs(got); !slices.Equal(ids, []string{"moved/pv-2"}) {
		t.Fatalf("fired %v, want only the page still open", ids)
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "lingered-on-pricing", "reason": "left"}); n != 2 {
		t.Errorf("skipped as left = %v, want 2", n)
	}
	if n := r.rdb.Exists(r.ctx, sessionKey("moved")).Val(); n != 0 || inSet("moved") {
		t.Error("moved: page state left after its wait fired")
	}
}

// commandCalls reads how often the rig's Redis ran each command (INFO commandstats).
func commandCalls(t *testing.T, r *rig) map[string]int64 {
	t.Helper()
	info, err := r.rdb.Info(r.ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		field, _, _ := strings.Cut(value, ",")
		n, err := strconv.ParseInt(strings.TrimPrefix(field, "calls="), 10, 64)
		if err != nil {
			t.Fatalf("INFO line %q: %v", line, err)
		}
		calls[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return calls
}

// TestPageStateKeepsPendingRules: a page with two dwell rules keeps its state while one of them
// is pending, and its end decides that one.
func TestPageStateKeepsPendingRules(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules+`  - name: glanced-at-pricing
    when: { event: $pageview, url_contains: /pricing }
    dwell: 10s
`))
	r.evaluate(e, in(pageview("pv", "/pricing", 0), user))
	if got := names(r.tick(e, t0.Add(10*time.Second+grace))); !slices.Equal(got, []string{"glanced-at-pricing"}) {
		t.Fatalf("Tick past the first threshold fired %v", got)
	}
	if n := r.rdb.Exists(r.ctx, sessionKey("sess-1")).Val(); n != 1 {
		t.Fatal("the page state went while a rule of its page is pending")
	}
	r.evaluate(e, in(pageleave("leave", "/pricing", 30*time.Second), user))
	if got := r.tick(e, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("fired %v although the user left at +30 s", names(got))
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "lingered-on-pricing", "reason": "left"}); n != 1 {
		t.Errorf("skipped as left = %v, want 1", n)
	}
	if n := r.rdb.Exists(r.ctx, sessionKey("sess-1")).Val(); n != 0 {
		t.Error("page state left after the page ended")
	}
}
