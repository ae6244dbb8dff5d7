package kafkatest

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBrokersStartsAClusterAndHelpersRoundTrip(t *testing.T) {
	t.Setenv(BrokersEnv, "")
	brokers := Brokers(t)
	if len(brokers) != 1 || !strings.HasPrefix(brokers[0], "127.0.0.1:") {
		t.Fatalf("brokers = %v, want one local kfake broker", brokers)
	}
	topic := Topic(t, "roundtrip")
	CreateTopic(t, brokers, topic, 2)
	CreateTopic(t, brokers, topic, 2) // exists: fine
	ProduceValues(t, brokers, topic, "key-a", "one", "two", "three")
	ProduceToPartitions(t, brokers, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("four")})

	got := Consume(t, brokers, topic, 4, 10*time.Second)
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if !slices.Equal(values, []string{"four", "one", "three", "two"}) {
		t.Fatalf("consumed %v", values)
	}
	ends := EndOffsets(t, brokers, topic)
	if len(ends) != 2 || ends[0]+ends[1] != 4 || ends[1] < 1 {
		t.Fatalf("end offsets = %v, want 4 records over 2 partitions, one at least on partition 1", ends)
	}

	group := Topic(t, "group")
	if got := CommittedOffsets(t, brokers, group, topic); len(got) != 0 {
		t.Fatalf("new group has commits %v", got)
	}
	cl := Client(t, brokers, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var polled []*kgo.Record
	for len(polled) < 4 && ctx.Err() == nil {
		polled = append(polled, cl.PollFetches(ctx).Records()...)
	}
	if err := cl.CommitRecords(ctx, polled...); err != nil {
		t.Fatal(err)
	}
	if got := CommittedOffsets(t, brokers, group, topic); got[0] != ends[0] || got[1] != ends[1] {
		t.Fatalf("committed %v, want %v", got, ends)
	}
}

func TestBrokersFromEnvironment(t *testing.T) {
	t.Setenv(BrokersEnv, " kafka-1:9092, ,kafka-2:9092 ")
	if got := Brokers(t); !slices.Equal(got, []string{"kafka-1:9092", "kafka-2:9092"}) {
		t.Fatalf("brokers = %v", got)
	}
}

func TestClusterAppliesOptions(t *testing.T) {
	c, brokers := Cluster(t, kfake.SeedTopics(3, "seeded"))
	if c == nil || len(brokers) != 1 {
		t.Fatalf("cluster %v, brokers %v", c, brokers)
	}
	if ends := EndOffsets(t, brokers, "seeded"); len(ends) != 3 {
		t.Fatalf("seeded topic has %d partitions, want 3", len(ends))
	}
}

func TestTopicNamesAreUniqueAndValid(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	a, b := Topic(t, "base"), Topic(t, "base")
	if a == b {
		t.Fatalf("two calls returned %q", a)
	}
	for _, name := range []string{a, b} {
		if !strings.HasPrefix(name, "base.TestTopicNamesAreUniqueAndValid.") || !valid.MatchString(name) {
			t.Fatalf("topic name %q", name)
		}
	}
	t.Run("sub test/with spaces & symbols", func(t *testing.T) {
		if name := Topic(t, "x"); !valid.MatchString(name) {
			t.Fatalf("topic name %q is not a valid Kafka topic", name)
		}
	})
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, time.Second, func() bool { n++; return n >= 3 }, "never")
	if n != 3 {
		t.Fatalf("condition evaluated %d times, want 3", n)
	}
}
