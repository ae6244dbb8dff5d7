package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/testkit/tooltest"
)

// StartCluster starts n cluster-enabled redis-server processes, joins them with redis-cli
// --cluster create (no replicas), waits until every node reports cluster_state:ok, and returns
// their addresses; the processes stop when t ends. Without redis-server and redis-cli the test is
// skipped, or fails in CI (tooltest).
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	tooltest.Need(t, "Debian: apt-get install redis-server redis-tools", "redis-server", "redis-cli")
	addrs := make([]string, n)
	for i := range addrs {
		// The cluster bus port is chosen explicitly, so the node's port need not have port+10000 free.
		bus, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		srv, err := StartProcess(t.TempDir(),
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
