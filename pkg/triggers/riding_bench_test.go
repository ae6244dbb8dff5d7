package triggers

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"

	"github.com/threadline/threadline/pkg/testkit/cputime"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/triggers/triggertest"
)

// BenchmarkRiding measures what the 20 rules of triggertest.RulesFile cost the linker per action:
// per batch of triggertest.Traffic (500 actions, 100 sessions), what the linker does with rules
// on and not without them — the inputs built from the decoded actions, Begin, Queue into the
// pipeline of its route round trip, Finish, the encoding of the events to produce, and
// ConfirmLater — on one real redis-server. The route round trip is stood in for by a pipeline
// holding a PING, measured alone in turn with each batch (in alternating order) and taken off,
// so that what is left is the rules' own cost. In the sub-benchmarks none, 2% or 10% of the
// actions match a rule (payment errors, rage clicks, pricing and billing pageviews that start
// dwell waits); a Tick (and the Confirm of what it fires) follows every batch, as the linker
// ticks about once a second.
//
// Costs are CPU time, this process's and the redis-server's (INFO cpu), which other work on the
// machine barely disturbs: cpu-ns/action is the rules' cost per action, split into
// process-ns/action and redis-ns/action; a Tick's cost, per call, is tick-cpu-µs; events/batch is
// what the rules emitted. The linker's own cost per action (BenchmarkLinkedActions in linker)
// is what make bench sets it beside.
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
	meter, err := cputime.NewMeter(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	var rulesCost, pingCost, tickCost cputime.Usage
	events := 0
	measure := func(into *cputime.Usage, phase func() error) {
		var failed error
		if err := meter.Measure(ctx, into, func() { failed = phase() }); err != nil {
			b.Fatal(err)
		}
		if failed != nil {
			b.Fatal(failed)
		}
	}
	// withRules evaluates the next batch riding a pipeline that holds the caller's PING.
	withRules := func() error {
		inputs := make([]Input, len(actions))
		for i := range actions {
			inputs[i] = Input{Action: &actions[i]}
		}
		ev, err := e.Begin(ctx, inputs)
		if err != nil {
			return err
		}
		pipe := rdb.Pipeline()
		pipe.Ping(ctx)
		if err := ev.Queue(ctx, pipe); err != nil {
			return err
		}
		_, _ = pipe.Exec(ctx)
		out, err := ev.Finish(ctx)
		if err != nil {
			return err
		}
		for i := range out {
			if _, err := messages.Marshal(out[i]); err != nil {
				return err
			}
		}
		e.ConfirmLater(out)
		events += len(out)
		return nil
	}
	// pingOnly sends the caller's pipeline without the rules.
	pingOnly := func() error {
		pipe := rdb.Pipeline()
		pipe.Ping(ctx)
		_, err := pipe.Exec(ctx)
		return err
	}
	n := 0
	round := func() {
		triggertest.Stamp(actions, n, t0)
		if n%2 == 0 {
			measure(&rulesCost, withRules)
			measure(&pingCost, pingOnly)
		} else {
			measure(&pingCost, pingOnly)
			measure(&rulesCost, withRules)
		}
		n++
		measure(&tickCost, func() error {
			out, err := e.Tick(ctx, e.NewestEventTime())
			if err != nil {
				return err
			}
			events += len(out)
			return e.Confirm(ctx, out)
		})
	}
	// Warm up, unmeasured: the scripts get loaded, and pending dwell waits, limiters and decided
	// markers build up as in service (a wait is decided 7 batches after it starts).
	for range 10 {
		round()
	}
	rulesCost, pingCost, tickCost, events = cputime.Usage{}, cputime.Usage{}, cputime.Usage{}, 0
	rounds := 0
	for b.Loop() {
		round()
		rounds++
	}
	if matchEvery > 0 && events == 0 {
		b.Fatalf("the rules emitted nothing in %d rounds", rounds)
	}
	perAction := func(d time.Duration) float64 { return float64(d) / float64(rounds*len(actions)) }
	process := perAction(rulesCost.Process - pingCost.Process)
	server := perAction(rulesCost.Redis - pingCost.Redis)
	b.ReportMetric(process+server, "cpu-ns/action")
	b.ReportMetric(process, "process-ns/action")
	b.ReportMetric(server, "redis-ns/action")
	b.ReportMetric(float64(tickCost.Total().Microseconds())/float64(rounds), "tick-cpu-µs")
	b.ReportMetric(float64(events)/float64(rounds), "events/batch")
}
