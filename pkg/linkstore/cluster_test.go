package linkstore

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// redisAddrsEnv names a Redis deployment the way every binary reads it; more than one address
// means Redis Cluster.
var redisAddrsEnv = config.EnvName("redis.addrs")

// TestSuiteRedisCluster runs the whole suite through a cluster client: against the cluster named
// by THREADLINE_REDIS_ADDRS when it lists several addresses, else against a 3-master cluster of
// redis-server processes started here. Every script must keep to the keys of one slot.
func TestSuiteRedisCluster(t *testing.T) {
	addrs := config.SplitList(os.Getenv(redisAddrsEnv))
	if len(addrs) < 2 {
		addrs = redistest.StartCluster(t, 3)
	}
	runSuite(t, func(t testing.TB) redis.UniversalClient {
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Fatalf("%d addresses gave a %T, want a cluster client", len(addrs), c)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}
