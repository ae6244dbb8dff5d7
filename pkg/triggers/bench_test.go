package triggers

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/triggers/triggertest"
)

// trafficInputs is a batch of triggertest.Traffic as the engine takes it, stamped for use n.
func trafficInputs(matchEvery, n int) []Input {
	actions := triggertest.Traffic(matchEvery)
	triggertest.Stamp(actions, n, t0)
	inputs := make([]Input, len(actions))
	for i := range actions {
		inputs[i] = Input{Action: &actions[i], User: UserFromIdentity(actions[i].Identity)}
	}
	return inputs
}

// BenchmarkMatch measures rule matching alone: the 20 rules of triggertest.RulesFile, less their
// dwell (so that no Redis work is needed), on actions that match none of them, which is what
// nearly every action costs. It reports ns/action.
func BenchmarkMatch(b *testing.B) { benchmarkMatch(b, trafficInputs(0, 0)) }

// BenchmarkMatchRawProperties is BenchmarkMatch on actions whose properties come as JSON
// (Input.RawProperties), as the linker passes them: decoded only for the actions a rule reading
// properties may match.
func BenchmarkMatchRawProperties(b *testing.B) {
	inputs := trafficInputs(0, 0)
	for i := range inputs {
		if props := inputs[i].Action.Properties; props != nil {
			raw, err := messages.Marshal(props)
			if err != nil {
				b.Fatal(err)
			}
			inputs[i].Action.Properties, inputs[i].RawProperties = nil, raw
		}
	}
	benchmarkMatch(b, inputs)
}

func benchmarkMatch(b *testing.B, inputs []Input) {
	rules, err := Load(triggertest.RulesFile())
	if err != nil {
		b.Fatal(err)
	}
	for i := range rules.Triggers {
		rules.Triggers[i].Dwell = 0
	}
	e := NewEngine(rules, nil, zap.NewNop(), nil)
	ctx := context.Background()
	for b.Loop() {
		out, err := e.EvaluateBatch(ctx, inputs)
		if err != nil || len(out) != 0 {
			b.Fatalf("EvaluateBatch = %v, %v", out, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inputs)), "ns/action")
}
