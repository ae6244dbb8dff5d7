package triggers

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// roundTrips counts what a client sends: each command or pipeline is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// markerState is the first byte of the marker of a (rule, action) of the scenarios' user, ""
// when there is none.
func (r *rig) markerState(rule, actionID string) string {
	r.t.Helper()
	v, err := r.rdb.Get(r.ctx, markerKey("x:"+user.UserID, rule, actionID)).Result()
	if err != nil && err != redis.Nil {
		r.t.Fatal(err)
	}
	return v[:min(1, len(v))]
}

// begin is Begin that must succeed and find Redis work.
func (r *rig) begin(e *Engine, inputs ...Input) *Evaluation {
	r.t.Helper()
	ev, err := e.Begin(r.ctx, inputs)
	if err != nil || ev == nil {
		r.t.Fatalf("Begin = %v, %v", ev, err)
	}
	return ev
}

// TestEvaluationInCallersPipeline sends an evaluation inside a caller's pipeline that holds
// commands of its own, one of which fails: the evaluation decides as it would alone, and the
// caller's commands are the caller's.
func TestEvaluationInCallersPipeline(t *testing.T) { testEvaluationInCallersPipeline(t, newRig) }

func testEvaluationInCallersPipeline(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	if err := r.rdb.Set(r.ctx, "caller:text", "not a number", 0).Err(); err != nil {
		t.Fatal(err)
	}
	batch := []Input{
		in(rageClick("rc-1", 0), user),
		in(rageClick("rc-2", time.Minute), user), // within every
		in(pageview("pv-1", "/pricing", 2*time.Minute), user),
	}
	ev := r.begin(e, batch...)
	pipe := r.rdb.Pipeline()
	set := pipe.Set(r.ctx, "caller:before", "1", 0)
	if err := ev.Queue(r.ctx, pipe); err != nil {
		t.Fatal(err)
	}
	incr := pipe.Incr(r.ctx, "caller:text")
	get := pipe.Get(r.ctx, "caller:before")
	if _, err := pipe.Exec(r.ctx); err == nil {
		t.Fatal("the caller's failing command made no pipeline error")
	}
	got, err := ev.Finish(r.ctx)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if ids := actionIDs(got); !slices.Equal(ids, []string{"rc-1"}) {
		t.Fatalf("fired for %v, want rc-1", ids)
	}
	if set.Err() != nil || incr.Err() == nil || get.Val() != "1" {
		t.Errorf("the caller's commands: SET %v, INCR %v, GET %q", set.Err(), incr.Err(), get.Val())
	}
	if err := e.Confirm(r.ctx, got); err != nil {
		t.Fatal(err)
	}

	// The dwell wait started in the pipeline fires; the batch again decides nothing.
	fired := r.tick(e, t0.Add(3*time.Minute+grace))
	if ids := actionIDs(fired); !slices.Equal(ids, []string{"pv-1"}) {
		t.Fatalf("Tick fired %v, want the wait of pv-1", ids)
	}
	if got := r.evaluate(e, batch...); len(got) != 0 {
		t.Fatalf("the replay emitted %v", got)
	}
}

// TestFinishWithoutQueue: Finish sends an evaluation no caller queued in a round trip of its
// own; a nil evaluation queues nothing and finishes empty.
func TestFinishWithoutQueue(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	got, err := r.begin(e, in(rageClick("rc-1", 0), user), in(pageview("pv-1", "/pricing", time.Second), user)).Finish(r.ctx)
	if err != nil || !slices.Equal(actionIDs(got), []string{"rc-1"}) {
		t.Fatalf("Finish = %v, %v; want rc-1", got, err)
	}

	noDwell := r.engine(mustParse(t, "triggers:\n  - name: rage-clicked\n    when: { event: $rageclick }\n"))
	ev, err := noDwell.Begin(r.ctx, []Input{in(pageview("pv-2", "/pricing", 2*time.Second), user)})
	if err != nil || ev != nil {
		t.Fatalf("Begin of a batch with no Redis work = %v, %v; want nil", ev, err)
	}
	pipe := r.rdb.Pipeline()
	if err := ev.Queue(r.ctx, pipe); err != nil || pipe.Len() != 0 {
		t.Errorf("a nil evaluation queued %d commands, %v", pipe.Len(), err)
	}
	if got, err := ev.Finish(r.ctx); got != nil || err != nil {
		t.Errorf("a nil evaluation finished with %v, %v", got, err)
	}
}

// TestEvaluationAfterScriptFlush: the scripts are flushed between Begin and the caller's round
// trip; Finish loads them and runs the calls again.
func TestEvaluationAfterScriptFlush(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	r.evaluate(e, in(rageClick("rc-1", 0), user)) // the scripts are loaded
	ev := r.begin(e, in(rageClick("rc-2", 2*time.Hour), user), in(pageview("pv-1", "/pricing", 2*time.Hour), user))
	if err := r.rdb.ScriptFlush(r.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := r.rdb.Pipeline()
	if err := ev.Queue(r.ctx, pipe); err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Exec(r.ctx); !isNoScript(err) {
		t.Fatalf("Exec after SCRIPT FLUSH: %v, want NOSCRIPT", err)
	}
	got, err := ev.Finish(r.ctx)
	if err != nil || !slices.Equal(actionIDs(got), []string{"rc-2"}) {
		t.Fatalf("Finish = %v, %v; want rc-2", got, err)
	}
	if err := e.Confirm(r.ctx, got); err != nil {
		t.Fatal(err)
	}
	if fired := r.tick(e, t0.Add(2*time.Hour+time.Minute+grace)); !slices.Equal(actionIDs(fired), []string{"pv-1"}) {
		t.Fatalf("Tick fired %v, want the wait of pv-1", actionIDs(fired))
	}
}

// TestEvaluationQueuedTwice: the caller queues the evaluation, drops that pipeline and queues it
// again in another, which alone is sent: it carries everything, the deferred confirmations too.
func TestEvaluationQueuedTwice(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	first, err := e.Evaluate(r.ctx, rageClick("rc-1", 0), user)
	if err != nil || len(first) != 1 {
		t.Fatalf("Evaluate = %v, %v", first, err)
	}
	e.ConfirmLater(first)

	ev := r.begin(e, in(rageClick("rc-2", 2*time.Hour), user), in(pageview("pv-1", "/pricing", 2*time.Hour), user))
	dropped := r.rdb.Pipeline()
	if err := ev.Queue(r.ctx, dropped); err != nil {
		t.Fatal(err)
	}
	dropped.Discard()
	pipe := r.rdb.Pipeline()
	if err := ev.Queue(r.ctx, pipe); err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Exec(r.ctx); err != nil {
		t.Fatal(err)
	}
	got, err := ev.Finish(r.ctx)
	if err != nil || !slices.Equal(actionIDs(got), []string{"rc-2"}) {
		t.Fatalf("Finish = %v, %v; want rc-2", got, err)
	}
	if s := r.markerState("rage-clicked", "rc-1"); s != stateConfirmed {
		t.Errorf("rc-1's marker is %q, want confirmed", s)
	}
	if members := r.rdb.ZRange(r.ctx, unconfirmedKey, 0, -1).Val(); len(members) != 1 {
		t.Errorf("unconfirmed: %v, want rc-2's marker alone", members)
	}
	if err := e.Confirm(r.ctx, got); err != nil {
		t.Fatal(err)
	}
	if fired := r.tick(e, t0.Add(2*time.Hour+time.Minute+grace)); !slices.Equal(actionIDs(fired), []string{"pv-1"}) {
		t.Fatalf("Tick fired %v, want the wait of pv-1", actionIDs(fired))
	}
}

// TestConfirmLaterThenTick: the confirmations kept by ConfirmLater go with Tick's first round
// trip, ahead of its read of the unconfirmed set: nothing is emitted again after the lease.
func TestConfirmLaterThenTick(t *testing.T) { testConfirmLaterThenTick(t, newRig) }

func testConfirmLaterThenTick(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	out, err := e.EvaluateBatch(r.ctx, []Input{in(rageClick("rc-1", 0), user), in(paymentFailed("pf-1", time.Second, map[string]string{"plan": "pro"}), user)})
	if err != nil || len(out) != 2 {
		t.Fatalf("EvaluateBatch = %v, %v", out, err)
	}
	e.ConfirmLater(out)
	if s := r.markerState("rage-clicked", "rc-1"); s != stateUnconfirmed {
		t.Fatalf("ConfirmLater sent something: the marker is %q", s)
	}
	r.clock.Set(t0.Add(DefaultConfig().ClaimLease + time.Second))
	if got, err := e.Tick(r.ctx, t0); err != nil || len(got) != 0 {
		t.Fatalf("Tick after the lease = %v, %v; want nothing", got, err)
	}
	for _, c := range [][2]string{{"rage-clicked", "rc-1"}, {"hit-payment-error", "pf-1"}} {
		if s := r.markerState(c[0], c[1]); s != stateConfirmed {
			t.Errorf("%s: marker %q, want confirmed", c[1], s)
		}
	}
	if n := r.rdb.ZCard(r.ctx, unconfirmedKey).Val(); n != 0 {
		t.Errorf("%d entries left in the unconfirmed set", n)
	}
}

// TestConfirmLaterWithEvaluation: the confirmations kept by ConfirmLater go with the next
// evaluation's round trip, even one of a batch that matches nothing.
func TestConfirmLaterWithEvaluation(t *testing.T) { testConfirmLaterWithEvaluation(t, newRig) }

func testConfirmLaterWithEvaluation(t *testing.T, newRig backend) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	out, err := e.Evaluate(r.ctx, rageClick("rc-1", 0), user)
	if err != nil || len(out) != 1 {
		t.Fatalf("Evaluate = %v, %v", out, err)
	}
	e.ConfirmLater(out)
	click := in(act("c-1", "$autocapture", messages.KindClick, "/", time.Second, nil), user)
	ev := r.begin(e, click) // the deferred confirmation is Redis work
	pipe := r.rdb.Pipeline()
	if err := ev.Queue(r.ctx, pipe); err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Exec(r.ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := ev.Finish(r.ctx); err != nil || len(got) != 0 {
		t.Fatalf("Finish = %v, %v", got, err)
	}
	if s := r.markerState("rage-clicked", "rc-1"); s != stateConfirmed {
		t.Errorf("marker %q, want confirmed", s)
	}
	if n := r.rdb.ZCard(r.ctx, unconfirmedKey).Val(); n != 0 {
		t.Errorf("%d entries left in the unconfirmed set", n)
	}
	if ev, err := e.Begin(r.ctx, []Input{click}); ev != nil || err != nil {
		t.Errorf("Begin with nothing deferred any more = %v, %v; want nil", ev, err)
	}
}

// TestFailedPipelineKeepsConfirmations: the caller's pipeline fails; Finish says so, and the
// confirmations it carried go with the engine's next round trip.
func TestFailedPipelineKeepsConfirmations(t *testing.T) {
	r := newRig(t)
	e := r.engine(issueRules(t))
	out, err := e.Evaluate(r.ctx, rageClick("rc-1", 0), user)
	if err != nil || len(out) != 1 {
		t.Fatalf("Evaluate = %v, %v", out, err)
	}
	e.ConfirmLater(out)
	ev := r.begin(e, in(paymentFailed("pf-1", time.Second, map[string]string{"plan": "pro"}), user))

	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = down.Close() })
	pipe := down.Pipeline()
	if err := ev.Queue(r.ctx, pipe); err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Exec(r.ctx); err == nil {
		t.Fatal("a pipeline to no server succeeded")
	}
	if got, err := ev.Finish(r.ctx); err == nil {
		t.Fatalf("Finish after a failed pipeline = %v, no error", got)
	}
	if s := r.markerState("rage-clicked", "rc-1"); s != stateUnconfirmed {
		t.Fatalf("marker %q before the next round trip", s)
	}
	if err := e.Confirm(r.ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s := r.markerState("rage-clicked", "rc-1"); s != stateConfirmed {
		t.Errorf("marker %q after Confirm(nil), want confirmed", s)
	}
	// The payment error was never decided: it emits now.
	if got := r.evaluate(e, in(paymentFailed("pf-1", time.Second, map[string]string{"plan": "pro"}), user)); len(got) != 1 {
		t.Errorf("the payment error after the failed pipeline emitted %v", got)
	}
}

const propertyRules = `triggers:
  - name: hit-payment-error
    when: { event: payment_failed, properties: { plan: [pro, team] } }
    metadata: [error_code, plan]
  - name: failed-payment
    when: { event: payment_failed }
    metadata: [plan]
  - name: rage-clicked
    when: { event: $rageclick }
`

// TestRawProperties: properties given as JSON are decoded for the rules that read them, once per
// action, and never for actions no such rule may match; undecodable ones count as none.
func TestRawProperties(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, propertyRules))
	raw := func(pa messages.ProductAction, props string) Input {
		return Input{Action: &pa, User: user, RawProperties: []byte(props)}
	}
	invalid := func() float64 { return r.counter("threadline_triggers_invalid_properties_total", nil) }

	got := r.evaluate(e, raw(paymentFailed("pf-1", 0, nil), `{"plan":"Pro","error_code":"card_declined","ignored":"x"}`))
	want := []messages.IntercomEvent{
		{Version: 1, EventName: "hit-payment-error", CreatedAt: t0.Unix(), UserID: user.UserID, WorkspaceID: user.WorkspaceID,
			Metadata: map[string]any{"error_code": "card_declined", "plan": "Pro"}, Rule: "hit-payment-error", ActionID: "pf-1"},
		{Version: 1, EventName: "failed-payment", CreatedAt: t0.Unix(), UserID: user.UserID, WorkspaceID: user.WorkspaceID,
			Metadata: map[string]any{"plan": "Pro"}, Rule: "failed-payment", ActionID: "pf-1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", got, want)
	}

	// Undecodable: no property holds (and no metadata), counted once for the two rules.
	got = r.evaluate(e, raw(paymentFailed("pf-2", time.Second, nil), `{"plan":5}`))
	if len(got) != 1 || got[0].EventName != "failed-payment" || got[0].Metadata != nil {
		t.Fatalf("undecodable properties: %+v, want failed-payment without metadata", got)
	}
	if n := invalid(); n != 1 {
		t.Errorf("invalid properties counted %v times, want 1", n)
	}

	// Rules that read no properties, or no rule at all: never decoded.
	got = r.evaluate(e,
		raw(rageClick("rc-1", 2*time.Second), `not json`),
		raw(act("c-1", "$autocapture", messages.KindClick, "/", 3*time.Second, nil), `not json`),
	)
	if len(got) != 1 || got[0].EventName != "rage-clicked" {
		t.Fatalf("rage click with raw properties: %+v", got)
	}
	// Properties given decoded win over raw ones.
	got = r.evaluate(e, raw(paymentFailed("pf-3", 4*time.Second, map[string]string{"plan": "team"}), `not json`))
	if len(got) != 2 || got[0].Metadata["plan"] != "team" {
		t.Fatalf("decoded properties beside raw ones: %+v", got)
	}
	if n := invalid(); n != 1 {
		t.Errorf("invalid properties counted %v times, want still 1", n)
	}
}

// TestPageStateInOneRoundTrip: on a single server, a batch whose sessions start no wait but have
// page state (and sessions without any) is one round trip, and dwell decides as before: the
// session that moved on left early, the one that stayed fires.
func TestPageStateInOneRoundTrip(t *testing.T) {
	r := newRig(t)
	e := r.engine(mustParse(t, dwellRules))
	r.evaluate(e,
		in(inSession(pageview("pv", "/pricing", 0), "s-left"), user),
		in(inSession(pageview("pv", "/pricing", 0), "s-stay"), user),
	)
	var trips roundTrips
	r.rdb.AddHook(&trips)
	got, err := e.EvaluateBatch(r.ctx, []Input{
		in(inSession(pageview("next", "/checkout", 10*time.Second), "s-left"), user),
		in(inSession(act("click", "$autocapture", messages.KindClick, "/pricing", 11*time.Second, nil), "s-stay"), user),
		in(inSession(pageview("pv", "/docs", 12*time.Second), "s-quiet"), user),
		in(inSession(pageleave("leave", "/docs", 13*time.Second), "s-quiet"), user),
	})
	if err != nil || len(got) != 0 {
		t.Fatalf("EvaluateBatch = %v, %v", got, err)
	}
	if n := trips.n.Load(); n != 1 {
		t.Errorf("the batch took %d round trips, want 1", n)
	}
	if n := r.rdb.Exists(r.ctx, sessionKey("s-quiet")).Val(); n != 0 || r.rdb.SIsMember(r.ctx, pagesKey, "s-quiet").Val() {
		t.Error("a session that starts no wait got page state")
	}
	fired := r.tick(e, t0.Add(time.Minute+grace))
	if ids := actionIDs(fired); !slices.Equal(ids, []string{"s-stay/pv"}) {
		t.Fatalf("Tick fired %v, want s-stay/pv", ids)
	}
	if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": "lingered-on-pricing", "reason": "left"}); n != 1 {
		t.Errorf("left early = %v, want 1", n)
	}
}
