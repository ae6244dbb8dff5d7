package triggers

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/cputime"
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
// pageviews that start dwell waits).
//
// Each reports both costs per action as CPU time, this process's and the redis-server's (INFO
// cpu) added up, which other work on the machine barely disturbs: triggers-ns/action and
// route-ns/action, and the engine's as a percentage of RouteBatch's, %-of-route. The wall-clock
// medians per batch are triggers-wall-ns/action, route-wall-ns/action and %-of-route-wall. The
// engine's Redis work is triggers-redis-calls/action (commands run, those inside its scripts
// included, from INFO commandstats) and triggers-script-µs/batch (the server's time in its
// scripts). A Tick (and its Confirm) follows every batch (10 s of event time) so dwell waits are
// decided as in service; its cost, per call rather than per action since the linker ticks about
// once a second whatever the traffic, is tick-µs (wall-clock median) and tick-cpu-µs.
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
	if srv.Embedded {
		b.Fatal("the benchmark needs a redis-server process on PATH")
	}
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
	type phases struct {
		route, triggers, tick          []time.Duration // wall clock per batch
		routeCPU, triggersCPU, tickCPU redisUsage
	}
	emitted := 0
	n := 0
	// batch runs one poll batch through RouteBatch, EvaluateBatch and Confirm, then Tick and
	// Confirm, and adds what each phase cost to into.
	batch := func(into *phases) {
		stamp(inputs, n, start)
		n++
		for i := range inputs {
			actions[i] = inputs[i].Action
		}

		m := startMeter(b, ctx, rdb)
		t := time.Now()
		out, err := store.RouteBatch(ctx, actions)
		into.route = append(into.route, time.Since(t))
		m.stop(b, ctx, &into.routeCPU)
		if err != nil || len(out) != benchBatch {
			b.Fatalf("RouteBatch: %d messages, %v", len(out), err)
		}

		m = startMeter(b, ctx, rdb)
		t = time.Now()
		events, err := engine.EvaluateBatch(ctx, inputs)
		if err == nil {
			err = engine.Confirm(ctx, events)
		}
		into.triggers = append(into.triggers, time.Since(t))
		m.stop(b, ctx, &into.triggersCPU)
		if err != nil {
			b.Fatal(err)
		}
		emitted += len(events)

		// The linker ticks about once a second whatever the traffic; here once per batch.
		m = startMeter(b, ctx, rdb)
		t = time.Now()
		ticked, err := engine.Tick(ctx, engine.NewestEventTime())
		if err == nil {
			err = engine.Confirm(ctx, ticked)
		}
		into.tick = append(into.tick, time.Since(t))
		m.stop(b, ctx, &into.tickCPU)
		if err != nil {
			b.Fatal(err)
		}
		emitted += len(ticked)
	}
	// Warm up, unmeasured: the scripts get loaded, and pending dwell waits, suppressing limiters
	// and decided markers build up as in service (a wait is decided 7 batches after it starts).
	var warm phases
	for range 10 {
		batch(&warm)
	}
	bias := meterBias(b, ctx, rdb)
	var p phases
	measured := 0
	for b.Loop() {
		batch(&p)
		measured++
	}
	route, triggers, tick := p.route, p.triggers, p.tick
	routeCPU, triggersCPU, tickCPU := p.routeCPU, p.triggersCPU, p.tickCPU
	if matchEvery > 0 && emitted == 0 {
		b.Fatal("no rule emitted")
	}
	for _, u := range []*redisUsage{&routeCPU, &triggersCPU, &tickCPU} {
		u.process = max(0, u.process-time.Duration(measured)*bias.process)
		u.server = max(0, u.server-time.Duration(measured)*bias.server)
	}
	actionsRun := float64(measured * benchBatch)
	b.ReportMetric(float64(routeCPU.cpu().Nanoseconds())/actionsRun, "route-ns/action")
	b.ReportMetric(float64(triggersCPU.cpu().Nanoseconds())/actionsRun, "triggers-ns/action")
	b.ReportMetric(100*float64(triggersCPU.cpu())/float64(routeCPU.cpu()), "%-of-route")
	b.ReportMetric(float64(triggersCPU.server.Nanoseconds())/actionsRun, "triggers-redis-ns/action")
	b.ReportMetric(float64(routeCPU.server.Nanoseconds())/actionsRun, "route-redis-ns/action")
	b.ReportMetric(float64(triggersCPU.calls)/actionsRun, "triggers-redis-calls/action")
	b.ReportMetric(float64(routeCPU.calls)/actionsRun, "route-redis-calls/action")
	b.ReportMetric(float64(triggersCPU.scriptUsec)/float64(measured), "triggers-script-µs/batch")
	// Medians: on a shared machine a few batches wait for the CPU far longer than the rest.
	routeBatch, triggersBatch := median(route), median(triggers)
	b.ReportMetric(float64(routeBatch.Nanoseconds())/benchBatch, "route-wall-ns/action")
	b.ReportMetric(float64(triggersBatch.Nanoseconds())/benchBatch, "triggers-wall-ns/action")
	b.ReportMetric(100*float64(triggersBatch)/float64(routeBatch), "%-of-route-wall")
	b.ReportMetric(float64(median(tick).Microseconds()), "tick-µs")
	b.ReportMetric(float64(tickCPU.cpu().Microseconds())/float64(measured), "tick-cpu-µs")
}

// redisUsage adds up what measured phases cost: this process's CPU time, the redis-server's, the
// commands it ran (those run by scripts included; the script calls themselves and INFO not) and
// the time it spent in scripts.
type redisUsage struct {
	process, server time.Duration
	calls           int64
	scriptUsec      int64
}

func (u *redisUsage) cpu() time.Duration { return u.process + u.server }

// meterBias is what measuring costs, the median CPU time of phases with nothing in them (mostly
// the redis-server's INFO), to take off the phases measured.
func meterBias(b *testing.B, ctx context.Context, rdb *redis.Client) redisUsage {
	b.Helper()
	const rounds = 51
	process, server := make([]time.Duration, rounds), make([]time.Duration, rounds)
	for i := range rounds {
		var u redisUsage
		startMeter(b, ctx, rdb).stop(b, ctx, &u)
		process[i], server[i] = u.process, u.server
	}
	return redisUsage{process: median(process), server: median(server)}
}

// meter measures one phase: startMeter, the work, stop.
type meter struct {
	rdb     *redis.Client
	process time.Duration
	info    serverInfo
}

func startMeter(b *testing.B, ctx context.Context, rdb *redis.Client) meter {
	b.Helper()
	m := meter{rdb: rdb, info: readServerInfo(b, ctx, rdb)}
	var ok bool
	if m.process, ok = cputime.Process(); !ok {
		b.Fatal("the process's CPU time is unknown on this platform")
	}
	return m
}

func (m meter) stop(b *testing.B, ctx context.Context, into *redisUsage) {
	b.Helper()
	process, _ := cputime.Process()
	info := readServerInfo(b, ctx, m.rdb)
	into.process += process - m.process
	into.server += info.cpu - m.info.cpu
	into.calls += info.calls - m.info.calls
	into.scriptUsec += info.scriptUsec - m.info.scriptUsec
}

// serverInfo is what INFO cpu and commandstats tell at one time.
type serverInfo struct {
	cpu        time.Duration // used_cpu_user + used_cpu_sys
	calls      int64         // commands, but script calls and INFO
	scriptUsec int64         // time in EVAL and EVALSHA
}

func readServerInfo(b *testing.B, ctx context.Context, rdb *redis.Client) serverInfo {
	b.Helper()
	text, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO: %v", err)
	}
	var si serverInfo
	for _, line := range strings.Split(text, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_user" || name == "used_cpu_sys":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				b.Fatalf("INFO line %q: %v", line, err)
			}
			si.cpu += time.Duration(v * float64(time.Second))
		case strings.HasPrefix(name, "cmdstat_"):
			cmd := strings.TrimPrefix(name, "cmdstat_")
			var calls, usec int64
			for _, field := range strings.Split(value, ",") {
				k, v, _ := strings.Cut(field, "=")
				switch k {
				case "calls":
					calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					usec, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			switch cmd {
			case "evalsha", "eval":
				si.scriptUsec += usec
			case "info":
			default:
				si.calls += calls
			}
		}
	}
	return si
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
