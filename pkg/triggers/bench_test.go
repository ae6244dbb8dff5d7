package triggers

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// benchTemplate is one kind of action of the benchmark traffic.
type benchTemplate struct {
	event, kind, path string
	props             map[string]string
}

// benchQuiet is a cycle of 20 actions of a product session that no rule of
// testdata/bench_rules.yaml matches: pages (a quarter of the actions are page events), clicks,
// form changes and submits, custom events.
var benchQuiet = []benchTemplate{
	{"$pageview", messages.KindPageview, "/checkout", nil},
	{"$autocapture", messages.KindClick, "/checkout", map[string]string{"cta": "select-pro"}},
	{"$autocapture", messages.KindClick, "/checkout", nil},
	{"$pageview", messages.KindPageview, "/settings/profile", nil},
	{"$autocapture", messages.KindChange, "/settings/profile", nil},
	{"$autocapture", messages.KindChange, "/settings/profile", nil},
	{"$autocapture", messages.KindSubmit, "/settings/profile", nil},
	{"plan_selected", messages.KindCustom, "/settings/profile", map[string]string{"plan": "pro"}},
	{"$pageview", messages.KindPageview, "/projects", nil},
	{"$autocapture", messages.KindClick, "/projects", nil},
	{"$pageview", messages.KindPageview, "/docs/getting-started", nil},
	{"$autocapture", messages.KindClick, "/docs/getting-started", nil},
	{"$autocapture", messages.KindClick, "/docs/getting-started", nil},
	{"$pageleave", messages.KindPageleave, "/docs/getting-started", nil},
	{"$pageview", messages.KindPageview, "/dashboard", nil},
	{"$autocapture", messages.KindClick, "/dashboard", nil},
	{"$autocapture", messages.KindSubmit, "/dashboard", nil},
	{"project_created", messages.KindCustom, "/dashboard", map[string]string{"template": "blank"}},
	{"$autocapture", messages.KindClick, "/dashboard", nil},
	{"$autocapture", messages.KindChange, "/dashboard", nil},
}

// benchMatching are the actions that match a rule: a rage click (limited by every), a payment
// error (emitted every time), and pricing and billing pageviews (dwell waits).
var benchMatching = []benchTemplate{
	{"payment_failed", messages.KindError, "/checkout", map[string]string{"plan": "pro", "error_code": "card_declined"}},
	{"$pageview", messages.KindPageview, "/pricing", nil},
	{"$rageclick", messages.KindRageClick, "/checkout", nil},
	{"$pageview", messages.KindPageview, "/settings/billing", nil},
	{"$pageview", messages.KindPageview, "/pricing", nil},
}

const (
	benchSessions   = 100
	benchPerSession = 5
	benchBatch      = benchSessions * benchPerSession
)

// benchInputs builds a poll batch of 500 actions, five consecutive ones per session, each
// session of its own identified user. Every matchEvery-th action matches a rule (0: none).
func benchInputs(matchEvery int) []Input {
	inputs := make([]Input, benchBatch)
	for i := range inputs {
		tpl := benchQuiet[i%len(benchQuiet)]
		if matchEvery > 0 && i%matchEvery == matchEvery/2 {
			tpl = benchMatching[(i/matchEvery)%len(benchMatching)]
		}
		session := "bench-s" + strconv.Itoa(i/benchPerSession)
		uid := "bench-u" + strconv.Itoa(i/benchPerSession)
		inputs[i] = Input{
			Action: messages.ProductAction{
				Version: messages.Version,
				Action: messages.Action{
					SessionID: session, Event: tpl.event, Kind: tpl.kind, Path: tpl.path, Page: pageName(tpl.path),
					Text: "User did " + tpl.event,
				},
				Identity:   messages.Identity{DistinctID: uid, UserID: uid},
				Properties: tpl.props,
			},
			User: User{UserID: uid},
		}
	}
	return inputs
}

// benchSpan is the event time one batch covers: 50 actions a second.
const benchSpan = 10 * time.Second

// stamp gives the batch's actions fresh ids and event times for iteration n.
func stamp(inputs []Input, n int, start time.Time) {
	step := benchSpan / time.Duration(len(inputs))
	for i := range inputs {
		inputs[i].Action.Action.ActionID = "bench-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
		inputs[i].Action.Action.EventTime = start.Add(time.Duration(n)*benchSpan + time.Duration(i)*step)
	}
}

// BenchmarkMatch measures rule matching alone: the 20 rules of testdata/bench_rules.yaml, less
// their dwell (so that no Redis work is needed), on actions that match none of them, which is
// what nearly every action costs. It reports ns/action.
func BenchmarkMatch(b *testing.B) {
	rules := testdataRules(b, "bench_rules.yaml")
	for i := range rules.Triggers {
		rules.Triggers[i].Dwell = 0
	}
	e := NewEngine(rules, nil, zap.NewNop(), nil)
	inputs := benchInputs(0)
	stamp(inputs, 0, t0)
	ctx := context.Background()
	for b.Loop() {
		out, err := e.EvaluateBatch(ctx, inputs)
		if err != nil || len(out) != 0 {
			b.Fatalf("EvaluateBatch = %v, %v", out, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inputs)), "ns/action")
}

// BenchmarkEvaluateVersusRouteBatch measures, on one real redis-server and the same poll batches
// of 500 actions (100 sessions, 5 actions each, every session linked), the linker's RouteBatch
// and the trigger engine with the 20 rules of testdata/bench_rules.yaml: EvaluateBatch and the
// Confirm of what it emitted, as the linker would call them per batch. In the sub-benchmarks
// none, 2% or 10% of the actions match a rule (payment errors, rage clicks, pricing and billing
// pageviews that start dwell waits). Each reports both costs in ns/action and the engine's as a
// percentage of RouteBatch's (medians per batch). A Tick (and its Confirm) follows every batch
// (10 s of event time) so dwell waits are decided as in service; its cost, per call rather than
// per action since the linker ticks about once a second whatever the traffic, is tick-µs.
func BenchmarkEvaluateVersusRouteBatch(b *testing.B) {
	for _, tc := range []struct {
		name       string
		matchEvery int
	}{{"matching=0%", 0}, {"matching=2%", 50}, {"matching=10%", 10}} {
		b.Run(tc.name, func(b *testing.B) { benchmarkVersusRoute(b, tc.matchEvery) })
	}
}

func benchmarkVersusRoute(b *testing.B, matchEvery int) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	start := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

	store := linkstore.New(rdb, linkstore.Config{BufferWindow: 24 * time.Hour, BufferTTL: 24 * time.Hour},
		zap.NewNop(), nil, func() time.Time { return start })
	for s := range benchSessions {
		ev := messages.ConversationEvent{
			Version: messages.Version, EventID: "bench-e" + strconv.Itoa(s), Type: messages.ConvCreated,
			ConversationID: "bench-c" + strconv.Itoa(s), SessionHint: "bench-s" + strconv.Itoa(s), OccurredAt: start,
		}
		if _, err := store.Apply(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	engine := NewEngine(testdataRules(b, "bench_rules.yaml"), rdb, zap.NewNop(), nil)
	if n := len(engine.rules); n != 20 {
		b.Fatalf("%d rules, want 20", n)
	}

	inputs := benchInputs(matchEvery)
	actions := make([]messages.ProductAction, len(inputs))
	var route, triggers, tick []time.Duration
	emitted := 0
	n := 0
	for b.Loop() {
		stamp(inputs, n, start)
		n++
		for i := range inputs {
			actions[i] = inputs[i].Action
		}

		t := time.Now()
		out, err := store.RouteBatch(ctx, actions)
		route = append(route, time.Since(t))
		if err != nil || len(out) != benchBatch {
			b.Fatalf("RouteBatch: %d messages, %v", len(out), err)
		}

		t = time.Now()
		events, err := engine.EvaluateBatch(ctx, inputs)
		if err == nil {
			err = engine.Confirm(ctx, events)
		}
		triggers = append(triggers, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		emitted += len(events)

		// The linker ticks about once a second whatever the traffic; here once per batch.
		t = time.Now()
		ticked, err := engine.Tick(ctx, engine.NewestEventTime())
		if err == nil {
			err = engine.Confirm(ctx, ticked)
		}
		tick = append(tick, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		emitted += len(ticked)
	}
	if matchEvery > 0 && emitted == 0 {
		b.Fatal("no rule emitted")
	}
	// Medians: on a shared machine a few batches wait for the CPU far longer than the rest.
	routeBatch, triggersBatch := median(route), median(triggers)
	b.ReportMetric(float64(routeBatch.Nanoseconds())/benchBatch, "route-ns/action")
	b.ReportMetric(float64(triggersBatch.Nanoseconds())/benchBatch, "triggers-ns/action")
	b.ReportMetric(100*float64(triggersBatch)/float64(routeBatch), "%-of-route")
	b.ReportMetric(float64(median(tick).Microseconds()), "tick-µs")
}

// median is the middle of the durations.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
