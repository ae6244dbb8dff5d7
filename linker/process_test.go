package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// runAsLinkerEnv, set to 1, makes the test binary run the linker's main instead of the tests. The
// process tests start the test binary that way: a process that runs exactly what the linker binary
// runs (flags and THREADLINE_* variables, Redis, the consumer loop, the admin server), which they
// can kill -9 at a moment of their choosing, without a separate build.
const runAsLinkerEnv = "LINKER_TEST_RUN_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(runAsLinkerEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitLong bounds every wait for the linker process or Kafka.
const waitLong = 30 * time.Second

// linkerProcesses starts the linker as a process of the test binary, one at a time, against one
// broker and one Redis, on topics and a group of the test's own, and keeps their output for a
// failure message.
type linkerProcesses struct {
	t       *testing.T
	stack   *stack.Stack
	logs    *syncBuffer
	brokers []string
	topics  kafka.Topics
	group   string
	admin   string // admin address of the current process
}

// newLinkerProcesses creates the linker's topics (three partitions each, names unique to the
// test) and prepares linker processes with env on top of the settings every test needs (brokers,
// Redis, topics, group, short group timings, fast lag updates).
func newLinkerProcesses(t *testing.T, brokers []string, redisAddr string, env ...string) *linkerProcesses {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(binDir, "linker")); err != nil {
		t.Fatal(err)
	}
	topics := kafka.DefaultTopics()
	topics.ProductActions = kafkatest.Topic(t, "product.actions")
	topics.ConversationEvents = kafkatest.Topic(t, "conversation.events")
	topics.ConversationActions = kafkatest.Topic(t, "conversation.actions")
	topics.DLQ = kafkatest.Topic(t, "dlq")
	for _, topic := range []string{topics.ProductActions, topics.ConversationEvents, topics.ConversationActions, topics.DLQ} {
		kafkatest.CreateTopic(t, brokers, topic, 3)
	}
	group := kafkatest.Topic(t, "linker")
	base := []string{
		runAsLinkerEnv + "=1",
		"THREADLINE_TOPIC_PRODUCT_ACTIONS=" + topics.ProductActions,
		"THREADLINE_TOPIC_CONVERSATION_EVENTS=" + topics.ConversationEvents,
		"THREADLINE_TOPIC_CONVERSATION_ACTIONS=" + topics.ConversationActions,
		"THREADLINE_TOPIC_DLQ=" + topics.DLQ,
		"THREADLINE_CONSUMER_GROUP=" + group,
		"THREADLINE_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"THREADLINE_KAFKA_TOPIC_PARTITIONS=3",
		"THREADLINE_REDIS_ADDRS=" + redisAddr,
		"THREADLINE_LOG_LEVEL=info",
		"THREADLINE_LOG_FORMAT=console",
		"THREADLINE_CONSUMER_HEARTBEAT_INTERVAL=100ms",
		"THREADLINE_CONSUMER_FETCH_MAX_WAIT=100ms",
		"THREADLINE_CONSUMER_LAG_INTERVAL=200ms",
		"THREADLINE_CONSUMER_COMMIT_INTERVAL=100ms",
		"THREADLINE_CONSUMER_DRAIN_TIMEOUT=2s",
		"THREADLINE_CONSUMER_REBALANCE_TIMEOUT=5s",
	}
	p := &linkerProcesses{t: t, logs: &syncBuffer{}, brokers: brokers, topics: topics, group: group}
	p.stack = stack.New(binDir, append(base, env...), p.logs)
	t.Cleanup(func() {
		if err := p.stack.Stop("linker", 15*time.Second); err != nil {
			t.Errorf("stop linker: %v", err)
		}
		if t.Failed() {
			t.Logf("linker output:\n%s", p.logs.String())
		}
	})
	return p
}

// start starts a linker process with env on top of the shared settings and waits until it is
// ready: Redis answers and its consumer caught up with every assigned partition.
func (p *linkerProcesses) start(env ...string) {
	p.t.Helper()
	admin, err := stack.FreeAddr()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.stack.Start("linker", append([]string{"THREADLINE_ADMIN_ADDR=" + admin}, env...)...); err != nil {
		p.t.Fatal(err)
	}
	p.admin = admin
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := stack.WaitReady(ctx, admin); err != nil {
		p.t.Fatalf("linker: %v", err)
	}
}

// kill sends SIGKILL to the running linker and waits until it is gone.
func (p *linkerProcesses) kill() error { return p.stack.Kill("linker") }

// stop stops the running linker with SIGTERM and fails the test unless it exits cleanly.
func (p *linkerProcesses) stop() {
	p.t.Helper()
	if err := p.stack.Stop("linker", 15*time.Second); err != nil {
		p.t.Fatalf("linker did not stop cleanly: %v", err)
	}
}

// metric sums the samples of the running linker's metric name whose labels include every
// name="value" pair of labels.
func (p *linkerProcesses) metric(name string, labels ...string) float64 {
	p.t.Helper()
	v, err := scrapeMetric(p.admin, name, labels...)
	if err != nil {
		p.t.Fatalf("scrape %s: %v", name, err)
	}
	return v
}

// ready reports whether the running linker's /readyz answers 200.
func (p *linkerProcesses) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// waitConsumed waits until the running linker finished at least n records of topic.
func (p *linkerProcesses) waitConsumed(topic string, n int) {
	p.t.Helper()
	kafkatest.Eventually(p.t, waitLong, func() bool {
		return p.metric("threadline_consumer_records_consumed_total", `topic="`+topic+`"`) >= float64(n)
	}, "the linker did not finish %d records of %s", n, topic)
}

// waitCommittedToEnd waits until the linker group's committed offsets reach the end of both
// input topics: every input record was processed and its output produced.
func (p *linkerProcesses) waitCommittedToEnd() {
	p.t.Helper()
	for _, topic := range []string{p.topics.ProductActions, p.topics.ConversationEvents} {
		kafkatest.Eventually(p.t, waitLong, func() bool {
			return offsetsEqual(p.committed(topic), kafkatest.EndOffsets(p.t, p.brokers, topic))
		}, "the linker group did not commit %s to its end", topic)
	}
}

// committed returns the offsets the linker group committed on topic.
func (p *linkerProcesses) committed(topic string) map[int32]int64 {
	p.t.Helper()
	return kafkatest.CommittedOffsets(p.t, p.brokers, p.group, topic)
}

// produce produces recs to the test's Kafka.
func (p *linkerProcesses) produce(recs ...*kgo.Record) {
	p.t.Helper()
	kafkatest.Produce(p.t, p.brokers, recs...)
}

// outputCount is how many records conversation.actions holds.
func (p *linkerProcesses) outputCount() int {
	p.t.Helper()
	n := 0
	for _, end := range kafkatest.EndOffsets(p.t, p.brokers, p.topics.ConversationActions) {
		n += int(end)
	}
	return n
}

// readOutput reads every record of conversation.actions.
func (p *linkerProcesses) readOutput() []*kgo.Record {
	p.t.Helper()
	n := p.outputCount()
	if n == 0 {
		return nil
	}
	return kafkatest.Consume(p.t, p.brokers, p.topics.ConversationActions, n, waitLong)
}

// offsetsEqual reports whether committed matches end on every partition (a partition with no
// records needs no commit).
func offsetsEqual(committed, end map[int32]int64) bool {
	for p, e := range end {
		if e > 0 && committed[p] != e {
			return false
		}
	}
	return true
}

// scrapeMetric reads http://addr/metrics and sums the samples of name whose labels include every
// name="value" pair of labels (the Prometheus text format).
func scrapeMetric(addr, name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return sumSamples(resp.Body, name, labels...)
}

// sumSamples sums the samples of name in a Prometheus text exposition whose labels include every
// pair of labels.
func sumSamples(r io.Reader, name string, labels ...string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(labelSet, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("sample %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// syncBuffer is a bytes.Buffer safe for the process output copiers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
