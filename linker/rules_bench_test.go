package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/cputime"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/triggers"
	"github.com/threadline/threadline/pkg/triggers/triggertest"
)

// BenchmarkRuleCost measures what turning trigger rules on costs the linker: the same poll batches
// of 500 product actions (100 linked sessions, 5 actions each, with the properties ingest writes)
// go through Linker.Handle without rules and with the 20 rules of triggertest.RulesFile, one batch
// each in turn, on one real redis-server. In the sub-benchmarks none, 2% or 10% of the actions
// match a rule (payment errors, rage clicks, pricing and billing pageviews that start dwell
// waits); a tick (and the production of what it fires) follows every batch with rules, as the
// linker ticks about once a second.
//
// Costs are CPU time, this process's and the redis-server's (INFO cpu) added up, which other work
// on the machine barely disturbs: linker-ns/action is Handle without rules, rules-ns/action what
// Handle with rules costs more per action, and %-of-linker the second over the first. The extra
// cost split by side is rules-process-ns/action and rules-redis-ns/action; a tick's cost, per call
// rather than per action, is tick-cpu-µs; events/batch is what the rules emitted.
func BenchmarkRuleCost(b *testing.B) {
	for _, tc := range []struct {
		name       string
		matchEvery int
	}{{"matching=0%", 0}, {"matching=2%", 50}, {"matching=10%", 10}} {
		b.Run(tc.name, func(b *testing.B) { benchmarkRuleCost(b, tc.matchEvery) })
	}
}

func benchmarkRuleCost(b *testing.B, matchEvery int) {
	srv := redistest.Start(b)
	if srv.Embedded {
		b.Fatal("the benchmark needs a redis-server process on PATH")
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	topics := kafka.DefaultTopics()
	start := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

	store := linkstore.New(rdb, linkstore.Config{BufferWindow: 24 * time.Hour, BufferTTL: 24 * time.Hour},
		zap.NewNop(), prometheus.NewRegistry(), func() time.Time { return start })
	rules, err := triggers.Load(triggertest.RulesFile())
	if err != nil {
		b.Fatal(err)
	}
	engine := triggers.NewEngine(rules, rdb, zap.NewNop(), nil)
	out := &discardProducer{}
	plain, withRules := NewLinker(store, nil, out, topics), NewLinker(store, engine, out, topics)

	actions := triggertest.Traffic(matchEvery)
	linked := map[string]bool{}
	for _, pa := range actions {
		if linked[pa.Action.SessionID] {
			continue
		}
		linked[pa.Action.SessionID] = true
		ev := messages.ConversationEvent{
			Version: messages.Version, EventID: "bench-e-" + pa.Action.SessionID, Type: messages.ConvCreated,
			ConversationID: "bench-c-" + pa.Action.SessionID, SessionHint: pa.Action.SessionID, OccurredAt: start,
		}
		if _, err := store.Apply(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}

	n := 0
	records := func() []*kgo.Record {
		triggertest.Stamp(actions, n, start)
		n++
		recs := make([]*kgo.Record, len(actions))
		for i := range actions {
			recs[i] = &kgo.Record{Topic: topics.ProductActions, Key: []byte(actions[i].Action.SessionID), Value: mustJSON(actions[i])}
		}
		return recs
	}
	var plainCPU, rulesCPU, tickCPU cpuUsage
	// handle hands the next batch to l and adds its cost to into.
	handle := func(l *Linker, into *cpuUsage) {
		recs := records()
		m := startCPUMeter(b, ctx, rdb)
		if err := l.Handle(ctx, recs); err != nil {
			b.Fatal(err)
		}
		m.stop(b, ctx, into)
	}
	// round handles one batch without rules and one with them, in turn first (so neither is
	// always the one a collection of the other's garbage lands in), then ticks.
	turn := 0
	round := func() {
		turn++
		if turn%2 == 0 {
			handle(plain, &plainCPU)
			handle(withRules, &rulesCPU)
		} else {
			handle(withRules, &rulesCPU)
			handle(plain, &plainCPU)
		}
		m := startCPUMeter(b, ctx, rdb)
		evs, err := engine.Tick(ctx, engine.NewestEventTime())
		if err == nil {
			err = withRules.emit(ctx, evs)
		}
		if err != nil {
			b.Fatal(err)
		}
		m.stop(b, ctx, &tickCPU)
	}
	// Warm up, unmeasured: the scripts get loaded, and pending dwell waits, suppressing limiters
	// and decided markers build up as in service (a wait is decided 7 batches after it starts).
	for range 10 {
		round()
	}
	plainCPU, rulesCPU, tickCPU = cpuUsage{}, cpuUsage{}, cpuUsage{}
	before := out.records.Load()
	bias := cpuMeterBias(b, ctx, rdb)
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	for _, u := range []*cpuUsage{&plainCPU, &rulesCPU, &tickCPU} {
		u.process = max(0, u.process-time.Duration(rounds)*bias.process)
		u.server = max(0, u.server-time.Duration(rounds)*bias.server)
	}
	produced := out.records.Load() - before
	events := produced - int64(2*rounds*len(actions)) // the rest is conversation.actions, one per action
	if matchEvery > 0 && events <= 0 {
		b.Fatalf("the rules emitted nothing (%d records produced in %d rounds)", produced, rounds)
	}
	perAction := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(rounds*len(actions)) }
	linker := perAction(plainCPU.total())
	extra := perAction(rulesCPU.total()) - linker
	b.ReportMetric(linker, "linker-ns/action")
	b.ReportMetric(extra, "rules-ns/action")
	b.ReportMetric(100*extra/linker, "%-of-linker")
	b.ReportMetric(perAction(rulesCPU.process)-perAction(plainCPU.process), "rules-process-ns/action")
	b.ReportMetric(perAction(rulesCPU.server)-perAction(plainCPU.server), "rules-redis-ns/action")
	b.ReportMetric(float64(tickCPU.total().Microseconds())/float64(rounds), "tick-cpu-µs")
	b.ReportMetric(float64(events)/float64(rounds), "events/batch")
}

// cpuUsage adds up the CPU time of measured phases: this process's and the redis-server's.
type cpuUsage struct{ process, server time.Duration }

func (u cpuUsage) total() time.Duration { return u.process + u.server }

// cpuMeter measures one phase: startCPUMeter, the work, stop.
type cpuMeter struct {
	rdb             redis.UniversalClient
	process, server time.Duration
}

func startCPUMeter(b *testing.B, ctx context.Context, rdb redis.UniversalClient) cpuMeter {
	b.Helper()
	server, err := redisCPU(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	process, ok := cputime.Process()
	if !ok {
		b.Fatal("the process's CPU time is unknown on this platform")
	}
	return cpuMeter{rdb: rdb, process: process, server: server}
}

func (m cpuMeter) stop(b *testing.B, ctx context.Context, into *cpuUsage) {
	b.Helper()
	process, _ := cputime.Process()
	server, err := redisCPU(ctx, m.rdb)
	if err != nil {
		b.Fatal(err)
	}
	into.process += process - m.process
	into.server += server - m.server
}

// cpuMeterBias is what measuring a phase costs by itself (mostly the redis-server's INFO and its
// round trip), the median of phases with nothing in them, to take off each phase measured.
func cpuMeterBias(b *testing.B, ctx context.Context, rdb redis.UniversalClient) cpuUsage {
	b.Helper()
	const samples = 51
	process, server := make([]time.Duration, samples), make([]time.Duration, samples)
	for i := range samples {
		var u cpuUsage
		startCPUMeter(b, ctx, rdb).stop(b, ctx, &u)
		process[i], server[i] = u.process, u.server
	}
	return cpuUsage{process: medianOf(process), server: medianOf(server)}
}

func medianOf(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
