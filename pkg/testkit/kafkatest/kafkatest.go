// Package kafkatest gives tests a Kafka: an in-process kfake cluster of their own, or the external
// cluster named by THREADLINE_TEST_KAFKA_BROKERS, plus helpers to name topics, produce records
// and read them back.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names an external cluster to test against instead of kfake (comma-separated).
const BrokersEnv = "THREADLINE_TEST_KAFKA_BROKERS"

// Timeout is what the helpers wait, at most, for Kafka.
const Timeout = 30 * time.Second

// Brokers returns the seed brokers of a Kafka for t: those of THREADLINE_TEST_KAFKA_BROKERS when
// set, otherwise of a kfake cluster started for t and closed when t ends.
func Brokers(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv(BrokersEnv); strings.TrimSpace(env) != "" {
		var out []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
		return out
	}
	_, brokers := Cluster(t)
	return brokers
}

// Cluster starts a kfake cluster for t (one broker, topics created on first use, group session
// timeouts down to 100 ms allowed), closed when t ends. opts are added last. Use it when a test
// needs the cluster itself (a DataDir, fault injection); Brokers also honours an external cluster.
func Cluster(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	all := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// Topic returns a topic name unique to this call: base, the test's name and a random suffix (so
// runs against one external cluster do not meet each other's topics).
func Topic(t testing.TB, base string) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return fmt.Sprintf("%s.%s.%016x", base, name, rand.Uint64())
}

// Client returns a plain client of brokers with opts, closed when t ends.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with partitions partitions (the broker's default replication),
// accepting a topic that already exists.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("kafkatest: create topic %s: %v", topic, err)
	}
}

// Produce produces recs synchronously and fails t on any error. Each record needs its Topic; the
// partition follows from the key (the default partitioner). A missing topic is created when the
// cluster allows it (kfake from Cluster does, with 10 partitions; use CreateTopic to choose).
func Produce(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	produce(t, brokers, recs)
}

// ProduceToPartitions produces recs to the partition each names in Partition, synchronously.
func ProduceToPartitions(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	produce(t, brokers, recs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

func produce(t testing.TB, brokers []string, recs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	cl := Client(t, brokers, append([]kgo.Opt{kgo.AllowAutoTopicCreation()}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("kafkatest: produce: %v", err)
	}
}

// ProduceValues produces one record per value to topic with key, in order, synchronously.
func ProduceValues(t testing.TB, brokers []string, topic, key string, values ...string) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(v)}
	}
	Produce(t, brokers, recs...)
}

// Consume reads topic from the start of every partition, outside any group, until it has n
// records, and returns exactly the first n it read (in order per partition). It fails t if fewer
// than n arrive within timeout.
func Consume(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl := Client(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fetches := cl.PollRecords(ctx, n-len(out))
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: consume %s: got %d of %d records within %s", topic, len(out), n, timeout)
		}
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("kafkatest: consume %s: %v", topic, err)
			}
		})
		out = append(out, fetches.Records()...)
	}
	return out[:n]
}

// EndOffsets returns the end offset (high watermark) of every partition of topic.
func EndOffsets(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("kafkatest: end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// CommittedOffsets returns the offsets group has committed on topic, by partition (partitions
// without a commit are absent).
func CommittedOffsets(t testing.TB, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	out := map[int32]int64{}
	resps, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out // a group that never committed
	}
	if err != nil {
		t.Fatalf("kafkatest: fetch offsets of group %s: %v", group, err)
	}
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// Eventually polls cond every 10 ms until it returns true, failing t with msg after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("kafkatest: after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
