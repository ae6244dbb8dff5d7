package main

import (
	"context"
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

// minRuleCostRounds is the fewest rounds BenchmarkRuleCost measures.
const minRuleCostRounds = 200

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
	meter, err := cputime.NewMeter(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	var plainCPU, rulesCPU, tickCPU cputime.Usage
	measure := func(into *cputime.Usage, phase func() error) {
		var failed error
		if err := meter.Measure(ctx, into, func() { failed = phase() }); err != nil {
			b.Fatal(err)
		}
		if failed != nil {
			b.Fatal(failed)
		}
	}
	// handle hands the next batch to l and adds its cost to into.
	handle := func(l *Linker, into *cputime.Usage) {
		recs := records()
		measure(into, func() error { return l.Handle(ctx, recs) })
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
		measure(&tickCPU, func() error {
			evs, err := engine.Tick(ctx, engine.NewestEventTime())
			if err != nil {
				return err
			}
			return withRules.emit(ctx, evs)
		})
	}
	// Warm up, unmeasured: the scripts get loaded, and pending dwell waits, suppressing limiters
	// and decided markers build up as in service (a wait is decided 7 batches after it starts).
	for range 10 {
		round()
	}
	plainCPU, rulesCPU, tickCPU = cputime.Usage{}, cputime.Usage{}, cputime.Usage{}
	before := out.records.Load()
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	// The figure is a small difference of two large costs: it needs many batches whatever the
	// -benchtime (make bench's is short), so the rounds are topped up here.
	for ; rounds < minRuleCostRounds; rounds++ {
		round()
	}
	produced := out.records.Load() - before
	events := produced - int64(2*rounds*len(actions)) // the rest is conversation.actions, one per action
	if matchEvery > 0 && events <= 0 {
		b.Fatalf("the rules emitted nothing (%d records produced in %d rounds)", produced, rounds)
	}
	perAction := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(rounds*len(actions)) }
	linker := perAction(plainCPU.Total())
	extra := perAction(rulesCPU.Total()) - linker
	b.ReportMetric(linker, "linker-ns/action")
	b.ReportMetric(extra, "rules-ns/action")
	b.ReportMetric(100*extra/linker, "%-of-linker")
	b.ReportMetric(perAction(rulesCPU.Process)-perAction(plainCPU.Process), "rules-process-ns/action")
	b.ReportMetric(perAction(rulesCPU.Redis)-perAction(plainCPU.Redis), "rules-redis-ns/action")
	b.ReportMetric(float64(tickCPU.Total().Microseconds())/float64(rounds), "tick-cpu-µs")
	b.ReportMetric(float64(events)/float64(rounds), "events/batch")
}
