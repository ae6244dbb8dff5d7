package notes

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// clusterClient starts a redis-server in cluster mode owning every slot and returns a cluster
// client for it. Without redis-server on PATH it falls back to redistest's Redis (which refuses to
// fall back when CI requires real Redis).
func clusterClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		return redistest.Start(t).Client(t)
	}
	srv, err := redistest.StartProcess(t.TempDir(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	single := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer single.Close()
	if err := single.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cluster to be ready", func() bool {
		info, err := single.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestWorksOnRedisCluster runs the writer against Redis in cluster mode: every multi-key script and
// transaction must keep to one hash slot, or Redis answers CROSSSLOT.
func TestWorksOnRedisCluster(t *testing.T) {
	t.Parallel()
	rdb := clusterClient(t)
	ctx := context.Background()
	ic, sink := newFakeIntercom(), &recordingSink{}
	w, err := New(rdb, ic, sink, testConfig(), zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	markRestored(t, w)
	ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 1 {
			return fault{Store: true, Err: ErrOutcomeUnknown} // exercise the in-flight resolution too
		}
		return fault{}
	})
	run(t, w)
	want := feed(t, []*Writer{w}, 4, 5, 2)
	waitDelivered(t, ic, want)
	checkExactlyOnce(t, ic, want)

	// notes.written follows the POST, so wait until it names every note c1 has.
	var parts []string
	waitFor(t, "notes.written for every note of c1", func() bool {
		parts = parts[:0]
		for _, n := range sink.notes() {
			if n.ConversationID == "c1" {
				parts = append(parts, n.PartID)
			}
		}
		return len(parts) == len(ic.notesOf("c1"))
	})
	s := summaryFor(parts)
	if err := w.ExecuteSummary(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, n := range ic.notesOf("c1") {
		if !n.Redacted && !strings.Contains(n.Body, "Summary") {
			t.Errorf("part %s not redacted", n.PartID)
		}
	}
	if err := w.ObserveRateLimit(ctx, 0, time.Now().Add(10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
}
