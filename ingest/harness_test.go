package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// Credentials of the fake Intercom the tests talk to.
const (
	fakeToken    = "fake-token"
	fakeAdminID  = "7310045"
	fakeSecret   = "fake-client-secret"
	waitForKafka = 30 * time.Second
)

// newFakeIntercom starts a fake Intercom with the test credentials behind a real socket.
func newFakeIntercom(t *testing.T) (*fakeintercom.Server, string) {
	t.Helper()
	fake := fakeintercom.New(fakeintercom.Options{Token: fakeToken, AdminID: fakeAdminID, ClientSecret: fakeSecret})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// testConfig parses args (and no environment) into a Config, as run does, after the settings
// every test shares: a Kafka and Redis of the test's own, topics and group unique to the test,
// ephemeral ports, fast consumer timings and a client secret.
func testConfig(t *testing.T, brokers []string, redisAddr string, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("ingest-test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	base := []string{
		"-kafka.brokers=" + strings.Join(brokers, ","),
		"-kafka.topic-partitions=3",
		"-redis.addrs=" + redisAddr,
		"-http.addr=127.0.0.1:0",
		"-admin.addr=127.0.0.1:0",
		"-log.level=warn",
		"-intercom.client-secret=" + fakeSecret,
		"-consumer.group=" + kafkatest.Topic(t, "ingest-group"),
		"-consumer.fetch-max-wait=100ms",
		"-consumer.commit-interval=100ms",
		"-consumer.heartbeat-interval=100ms",
		"-consumer.session-timeout=6s",
		"-consumer.rebalance-timeout=10s",
		"-consumer.drain-timeout=2s",
		"-consumer.retry-backoff-min=5ms",
		"-consumer.retry-backoff-max=100ms",
		"-consumer.lag-interval=200ms",
	}
	d := kafka.DefaultTopics()
	for _, tp := range []struct{ flag, name string }{
		{"topic.posthog-raw", d.PosthogRaw}, {"topic.intercom-raw", d.IntercomRaw},
		{"topic.product-actions", d.ProductActions}, {"topic.conversation-events", d.ConversationEvents},
		{"topic.dlq", d.DLQ},
	} {
		base = append(base, "-"+tp.flag+"="+kafkatest.Topic(t, tp.name))
	}
	noEnv := func(string) (string, bool) { return "", false }
	if err := config.Parse(fs, append(base, args...), noEnv); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// runningIngest is ingest running inside the test, as its binary runs it.
type runningIngest struct {
	cfg     Config
	brokers []string
	url     string // base URL of the capture endpoint and the webhook receiver
	admin   string // base URL of /metrics, /healthz, /readyz
	redis   *redistest.Server
}

// startIngest opens and runs ingest with testConfig(args), and stops it when t ends.
func startIngest(t *testing.T, args ...string) *runningIngest {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	rs := redistest.Start(t)
	cfg := testConfig(t, brokers, rs.Addr, args...)
	ctx, cancel := context.WithCancel(context.Background())
	ing, err := Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("open ingest: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ingest stopped with: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("ingest did not stop")
		}
	})
	return &runningIngest{cfg: cfg, brokers: brokers, url: "http://" + ing.HTTPAddr().String(),
		admin: "http://" + ing.AdminAddr(), redis: rs}
}

func (r *runningIngest) topics() kafka.Topics { return r.cfg.Base.Topics }

// produce writes raw records, each to its topic, synchronously.
func (r *runningIngest) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	kafkatest.Produce(t, r.brokers, recs...)
}

// consume reads the first n records of topic.
func (r *runningIngest) consume(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	return kafkatest.Consume(t, r.brokers, topic, n, waitForKafka)
}

// count is how many records topic holds.
func (r *runningIngest) count(t *testing.T, topic string) int64 {
	t.Helper()
	var n int64
	for _, end := range kafkatest.EndOffsets(t, r.brokers, topic) {
		n += end
	}
	return n
}

// marker is a product event produced last, after the records a test is about; once its action is
// out, the consumer has handled everything before it on the same partition.
func markerEvent(t *testing.T, topic, key, uuid string) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"uuid": uuid, "event": "marker_reached", "distinct_id": "marker-user",
		"timestamp":  "2025-03-14T10:15:00Z",
		"properties": map[string]any{"$session_id": "marker-session", "$pathname": "/marker"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

// productActions decodes product.actions records.
func productActions(t *testing.T, recs []*kgo.Record) []messages.ProductAction {
	t.Helper()
	out := make([]messages.ProductAction, len(recs))
	for i, r := range recs {
		if err := messages.Decode(r.Value, &out[i]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	return out
}

// conversationEvents decodes conversation.events records.
func conversationEvents(t *testing.T, recs []*kgo.Record) []messages.ConversationEvent {
	t.Helper()
	out := make([]messages.ConversationEvent, len(recs))
	for i, r := range recs {
		if err := messages.Decode(r.Value, &out[i]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	return out
}

// header returns a record header's value.
func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// statusLog records every status an HTTP handler answered, to prove some were never sent.
type statusLog struct {
	mu       sync.Mutex
	statuses []int
}

func (l *statusLog) add(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses = append(l.statuses, code)
}

func (l *statusLog) all() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.statuses...)
}

// metric returns the sum of the samples of the metric called name whose labels include every
// name="value" pair of labels, from ingest's /metrics.
func (r *runningIngest) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		matches := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				matches = false
			}
		}
		if !matches {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
