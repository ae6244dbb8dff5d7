package triggers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/testkit/cputime"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/triggers/triggertest"
)

// BenchmarkRiding measures what the 20 rules of triggertest.RulesFile cost when their Redis work
// rides a caller's round trip, as in the linker: per batch of triggertest.Traffic, Begin, Queue
// into a pipeline that also holds the caller's command (a PING), Exec, Finish and ConfirmLater,
// on one real redis-server. The same pipeline holding only the PING is measured in turn with
// each batch (in alternating order), and taken off, so that what is left is the rules' own cost.
// In the sub-benchmarks none, 2% or 10% of the actions match a rule; a Tick (and the Confirm of
// what it fires) follows every batch, as the linker ticks about once a second.
//
// Costs are CPU time, this process's and the redis-server's (INFO cpu), which other work on the
// machine barely disturbs: cpu-ns/action is the rules' cost per action, split into
// process-ns/action and redis-ns/action; redis-calls/action counts the commands the server ran
// (INFO commandstats; a script's own commands included, the script call too); a Tick's cost, per
// call, is tick-cpu-µs; events/batch is what the rules emitted.
func BenchmarkRiding(b *testing.B) {
	for _, tc := range []struct {
		name       string
		matchEvery int
	}{{"matching=0%", 0}, {"matching=2%", 50}, {"matching=10%", 10}} {
		b.Run(tc.name, func(b *testing.B) { benchmarkRiding(b, tc.matchEvery) })
	}
}

func benchmarkRiding(b *testing.B, matchEvery int) {
	srv := redistest.Start(b)
	if srv.Embedded {
		b.Fatal("the benchmark needs a redis-server process on PATH")
	}
	rdb := srv.Client(b)
	ctx := context.Background()
	rules, err := Load(triggertest.RulesFile())
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(rules, rdb, zap.NewNop(), nil)
	actions := triggertest.Traffic(matchEvery)
	inputs := make([]Input, len(actions))

	var rulesCost, pingCost, tickCost redisUsage
	events := 0
	// withRules evaluates the next batch riding a pipeline that holds the caller's PING.
	withRules := func(n int) {
		triggertest.Stamp(actions, n, t0)
		for i := range actions {
			inputs[i] = Input{Action: &actions[i], User: UserFromIdentity(actions[i].Identity)}
		}
		m := startUsage(b, ctx, rdb)
		ev, err := e.Begin(ctx, inputs)
		if err != nil {
			b.Fatal(err)
		}
		pipe := rdb.Pipeline()
		pipe.Ping(ctx)
		if err := ev.Queue(ctx, pipe); err != nil {
			b.Fatal(err)
		}
		_, _ = pipe.Exec(ctx)
		out, err := ev.Finish(ctx)
		if err != nil {
			b.Fatal(err)
		}
		e.ConfirmLater(out)
		m.stop(b, ctx, &rulesCost)
		events += len(out)
	}
	// pingOnly sends the caller's pipeline without the rules.
	pingOnly := func() {
		m := startUsage(b, ctx, rdb)
		pipe := rdb.Pipeline()
		pipe.Ping(ctx)
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		m.stop(b, ctx, &pingCost)
	}
	n := 0
	round := func() {
		if n%2 == 0 {
			withRules(n)
			pingOnly()
		} else {
			pingOnly()
			withRules(n)
		}
		n++
		m := startUsage(b, ctx, rdb)
		out, err := e.Tick(ctx, e.NewestEventTime())
		if err == nil {
			err = e.Confirm(ctx, out)
		}
		if err != nil {
			b.Fatal(err)
		}
		m.stop(b, ctx, &tickCost)
		events += len(out)
	}
	// Warm up, unmeasured: the scripts get loaded, and pending dwell waits, limiters and decided
	// markers build up as in service (a wait is decided 7 batches after it starts).
	for range 10 {
		round()
	}
	rulesCost, pingCost, tickCost, events = redisUsage{}, redisUsage{}, redisUsage{}, 0
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	if matchEvery > 0 && events == 0 {
		b.Fatalf("the rules emitted nothing in %d rounds", rounds)
	}
	perAction := func(d float64) float64 { return d / float64(rounds*len(actions)) }
	process := perAction(float64(rulesCost.process - pingCost.process))
	server := perAction(float64(rulesCost.server - pingCost.server))
	b.ReportMetric(process+server, "cpu-ns/action")
	b.ReportMetric(process, "process-ns/action")
	b.ReportMetric(server, "redis-ns/action")
	b.ReportMetric(perAction(float64(rulesCost.calls-pingCost.calls)), "redis-calls/action")
	b.ReportMetric(float64((tickCost.process+tickCost.server).Microseconds())/float64(rounds), "tick-cpu-µs")
	b.ReportMetric(float64(events)/float64(rounds), "events/batch")
}

// redisUsage adds up the cost of measured phases: this process's CPU time, the redis-server's,
// and the commands it ran.
type redisUsage struct {
	process, server time.Duration
	calls           int64
}

// usageMeter measures one phase: startUsage, the work, stop.
type usageMeter struct {
	rdb redis.UniversalClient
	at  redisUsage
}

func startUsage(b *testing.B, ctx context.Context, rdb redis.UniversalClient) usageMeter {
	b.Helper()
	m := usageMeter{rdb: rdb}
	server, calls, err := serverUsage(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	process, ok := cputime.Process()
	if !ok {
		b.Skip("the process's CPU time is unknown on this platform")
	}
	m.at = redisUsage{process: process, server: server, calls: calls}
	return m
}

func (m usageMeter) stop(b *testing.B, ctx context.Context, into *redisUsage) {
	b.Helper()
	process, _ := cputime.Process()
	server, calls, err := serverUsage(ctx, m.rdb)
	if err != nil {
		b.Fatal(err)
	}
	into.process += process - m.at.process
	into.server += server - m.at.server
	into.calls += calls - m.at.calls
}

// serverUsage reads the redis-server's CPU time (used_cpu_user + used_cpu_sys) and the commands it
// ran (the calls of every command in INFO commandstats).
func serverUsage(ctx context.Context, rdb redis.UniversalClient) (time.Duration, int64, error) {
	info, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("INFO: %w", err)
	}
	var seconds float64
	var calls int64
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case !ok:
		case name == "used_cpu_user" || name == "used_cpu_sys":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("INFO line %q: %w", line, err)
			}
			seconds += v
		case strings.HasPrefix(name, "cmdstat_"):
			field, _, _ := strings.Cut(value, ",")
			v, err := strconv.ParseInt(strings.TrimPrefix(field, "calls="), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("INFO line %q: %w", line, err)
			}
			calls += v
		}
	}
	return time.Duration(seconds * float64(time.Second)), calls, nil
}
