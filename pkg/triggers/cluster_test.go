package triggers

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/testkit/tooltest"
)

// TestRedisCluster runs the scenarios through a cluster client, where every script call must
// keep to the keys of one hash tag, against a 3-master cluster of redis-server processes started
// here (never an external one: each scenario starts by emptying the cluster).
func TestRedisCluster(t *testing.T) {
	addrs := startCluster(t, 3)
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
		"input order":            testEventsKeepInputOrder,
		"dwell fires":            testDwellFiresWhileTheUserStays,
		"dwell left early":       testDwellUserLeftEarly,
		"dwell across replicas":  testDwellAcrossReplicasAndRestarts,
		"dwell concurrent ticks": testDwellConcurrentTicks,
		"dwell replay":           testDwellReplayDecidesTheSame,
		"dwell with every":       testDwellWithEvery,
		"personal data":          testPersonalDataNeverReachesMetadata,
		"large batches":          testLargeBatchesSplitIntoCalls,
	} {
		t.Run(name, func(t *testing.T) { scenario(t, onCluster) })
	}
}

// startCluster starts n cluster-enabled redis-server processes, joins them with
// redis-cli --cluster create (no replicas) and waits until every node reports cluster_state:ok.
func startCluster(t *testing.T, n int) []string {
	t.Helper()
	tooltest.Need(t, "Debian: apt-get install redis-server redis-tools", "redis-server", "redis-cli")
	addrs := make([]string, n)
	for i := range addrs {
		// The cluster bus port is chosen explicitly, so the node's port need not have port+10000 free.
		bus, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := redistest.StartProcess(t.TempDir(),
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--cluster-port", strconv.Itoa(bus))
		if err != nil {
			t.Fatalf("start cluster node: %v", err)
		}
		t.Cleanup(srv.Stop)
		addrs[i] = srv.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if ctx.Err() != nil {
				_ = c.Close()
				t.Fatalf("cluster node %s not ready: %v %q", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Close()
	}
	return addrs
}
