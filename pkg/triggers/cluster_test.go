package triggers

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// TestRedisCluster runs the scenarios through a cluster client, where every script call must
// keep to the keys of one hash tag, against a 3-master cluster of redis-server processes started
// here (never an external one: each scenario starts by emptying the cluster).
func TestRedisCluster(t *testing.T) {
	addrs := redistest.StartCluster(t, 3)
	onCluster := func(t *testing.T) *rig {
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
		cc, ok := c.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("%d addresses gave a %T, want a cluster client", len(addrs), c)
		}
		t.Cleanup(func() { _ = c.Close() })
		ctx := context.Background()
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.FlushAll(ctx).Err()
		}); err != nil {
			t.Fatal(err)
		}
		return &rig{t: t, rdb: c, clock: newClock(), reg: prometheus.NewRegistry(), ctx: ctx}
	}
	for name, scenario := range map[string]func(*testing.T, backend){
		"issue rules":            testIssueRulesWorkAsWritten,
		"every across replicas":  testEveryHoldsAcrossReplicas,
		"replay":                 testReplayEmitsNothingTwice,
		"unconfirmed":            testUnconfirmedEventsAreEmittedAgain,
		"identifiers":            testIdentifiers,
		"contacts":               testContactResolution,
		"input order":            testEventsKeepInputOrder,
		"dwell fires":            testDwellFiresWhileTheUserStays,
		"dwell left early":       testDwellUserLeftEarly,
		"dwell across replicas":  testDwellAcrossReplicasAndRestarts,
		"dwell concurrent ticks": testDwellConcurrentTicks,
		"dwell replay":           testDwellReplayDecidesTheSame,
		"dwell with every":       testDwellWithEvery,
		"personal data":          testPersonalDataNeverReachesMetadata,
		"large batches":          testLargeBatchesSplitIntoCalls,
		"caller's pipeline":      testEvaluationInCallersPipeline,
		"confirm later, tick":    testConfirmLaterThenTick,
		"confirm later, batch":   testConfirmLaterWithEvaluation,
	} {
		t.Run(name, func(t *testing.T) { scenario(t, onCluster) })
	}
}
