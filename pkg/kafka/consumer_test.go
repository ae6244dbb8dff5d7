package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	testService = "test-service"
	waitLong    = 30 * time.Second
)

// fastConsumerConfig keeps group and retry timings short so the tests run quickly. The session
// timeout stays within a real broker's default minimum (6 s).
func fastConsumerConfig(group string) ConsumerConfig {
	c := DefaultConsumerConfig(group)
	c.MaxPollRecords = 10
	c.PartitionBuffer = 50
	c.RetryBackoffMin = 5 * time.Millisecond
	c.RetryBackoffMax = 40 * time.Millisecond
	c.DrainTimeout = 5 * time.Second
	c.SessionTimeout = 6 * time.Second
	c.HeartbeatInterval = 100 * time.Millisecond
	c.RebalanceTimeout = 10 * time.Second
	c.CommitInterval = 100 * time.Millisecond
	c.FetchMaxWait = 100 * time.Millisecond
	c.LagInterval = 200 * time.Millisecond
	return c
}

// testEnv is one test's topic, dead-letter topic and group on a Kafka of its own.
type testEnv struct {
	t       *testing.T
	brokers []string
	topic   string
	dlq     string
	group   string
	reg     *prometheus.Registry
	log     *zap.Logger
}

// testLogger logs to t at info level until t's cleanups run; franz-go may still log from a
// closing client's connection goroutines after that, and those lines are dropped.
func testLogger(t testing.TB) *zap.Logger {
	w := &untilCleanupWriter{t: t}
	t.Cleanup(w.stop)
	enc := zap.NewDevelopmentEncoderConfig()
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zap.InfoLevel))
}

type untilCleanupWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *untilCleanupWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *untilCleanupWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func newTestEnv(t *testing.T, brokers []string, partitions int32) *testEnv {
	t.Helper()
	e := &testEnv{
		t:       t,
		log:     testLogger(t),
		brokers: brokers,
		topic:   kafkatest.Topic(t, "in"),
		dlq:     kafkatest.Topic(t, "dlq"),
		group:   kafkatest.Topic(t, "group"),
		reg:     prometheus.NewRegistry(),
	}
	kafkatest.CreateTopic(t, brokers, e.topic, partitions)
	kafkatest.CreateTopic(t, brokers, e.dlq, 1)
	return e
}

// runningConsumer is a Consumer whose Run is in progress in a goroutine.
type runningConsumer struct {
	*Consumer
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (e *testEnv) newConsumer(h Handler, mutate ...func(*ConsumerConfig)) *Consumer {
	e.t.Helper()
	cfg := fastConsumerConfig(e.group)
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := NewConsumer(cfg, testConfig(e.brokers), testService, []string{e.topic}, e.dlq, h, e.log, e.reg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *testEnv) start(h Handler, mutate ...func(*ConsumerConfig)) *runningConsumer {
	e.t.Helper()
	return run(e.t, e.newConsumer(h, mutate...))
}

func run(t *testing.T, c *Consumer) *runningConsumer {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningConsumer{Consumer: c, t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx)
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run and returns what it returned.
func (r *runningConsumer) stop() error {
	r.cancel()
	return r.wait()
}

// wait waits for Run to return by itself.
func (r *runningConsumer) wait() error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(waitLong):
		r.t.Fatalf("consumer Run did not return within %s", waitLong)
		return nil
	}
}

// recorder remembers every record a handler finished, by member.
type recorder struct {
	mu      sync.Mutex
	handled map[int32]map[int64]int // partition → offset → times handled
	values  []string                // in handling order
	byName  map[string]int          // member → records handled
	control int                     // control records that reached the handler
}

func newRecorder() *recorder {
	return &recorder{handled: map[int32]map[int64]int{}, byName: map[string]int{}}
}

func (r *recorder) add(member string, rec *kgo.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Attrs.IsControl() {
		r.control++
	}
	if r.handled[rec.Partition] == nil {
		r.handled[rec.Partition] = map[int64]int{}
	}
	r.handled[rec.Partition][rec.Offset]++
	r.values = append(r.values, string(rec.Value))
	r.byName[member]++
}

func (r *recorder) handler(member string) Handler {
	return PerRecord(func(_ context.Context, rec *kgo.Record) error {
		r.add(member, rec)
		return nil
	})
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, offs := range r.handled {
		n += len(offs)
	}
	return n
}

func (r *recorder) was(partition int32, offset int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handled[partition][offset] > 0
}

func (r *recorder) valuesSnapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.values)
}

func (r *recorder) member(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

// missing lists the offsets below each partition's end that were never handled.
func (r *recorder) missing(ends map[int32]int64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p, end := range ends {
		for o := int64(0); o < end; o++ {
			if r.handled[p][o] == 0 {
				out = append(out, fmt.Sprintf("%d@%d", p, o))
			}
		}
	}
	return out
}

func (e *testEnv) produceN(n int, keys int) {
	e.t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: e.topic, Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte("v" + strconv.Itoa(i))}
	}
	kafkatest.Produce(e.t, e.brokers, recs...)
}

func (e *testEnv) committed() map[int32]int64 {
	return kafkatest.CommittedOffsets(e.t, e.brokers, e.group, e.topic)
}

// waitCommittedToEnd waits until the group committed every partition's end offset.
func (e *testEnv) waitCommittedToEnd() {
	e.t.Helper()
	ends := kafkatest.EndOffsets(e.t, e.brokers, e.topic)
	kafkatest.Eventually(e.t, waitLong, func() bool {
		got := e.committed()
		for p, end := range ends {
			if end > 0 && got[p] != end {
				return false
			}
		}
		return true
	}, "committed offsets %v never reached the end offsets %v", e.committed(), ends)
}

// metricValue sums the samples of a metric family whose labels include want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestConsumerHappyPathMarksAndCommits(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 3)
	e.produceN(60, 12)
	rec := newRecorder()
	c := e.start(rec.handler("a"))

	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == 60 }, "handled %d of 60", rec.distinct())
	e.waitCommittedToEnd()
	kafkatest.Eventually(t, waitLong, c.Ready, "consumer never became ready")
	if missing := rec.missing(kafkatest.EndOffsets(t, e.brokers, e.topic)); len(missing) > 0 {
		t.Fatalf("never handled: %v", missing)
	}
	if got := len(rec.valuesSnapshot()); got != 60 {
		t.Errorf("handler calls covered %d records, want each of 60 exactly once", got)
	}
	if got := metricValue(t, e.reg, "threadline_consumer_records_consumed_total", map[string]string{"topic": e.topic, "service": testService}); got != 60 {
		t.Errorf("records_consumed_total = %v, want 60", got)
	}
	if got := metricValue(t, e.reg, "threadline_consumer_commits_total", map[string]string{"result": "ok"}); got < 1 {
		t.Errorf("commits_total{result=ok} = %v, want at least 1", got)
	}
	kafkatest.Eventually(t, waitLong, func() bool {
		return metricValue(t, e.reg, "threadline_consumer_lag", map[string]string{"topic": e.topic}) == 0 &&
			metricValue(t, e.reg, "threadline_consumer_assigned_partitions", nil) == 3
	}, "lag gauge not 0 on 3 assigned partitions")
	if err := c.stop(); err != nil {
		t.Fatalf("Run returned %v after a clean shutdown", err)
	}
}

func TestConsumerTransientErrorRetriesWithoutCommitting(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	values := make([]string, 10)
	for i := range values {
		values[i] = "v" + strconv.Itoa(i)
	}
	kafkatest.ProduceValues(t, e.brokers, e.topic, "session-1", values...)

	var failing atomic.Bool
	failing.Store(true)
	var attempts atomic.Int32
	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "v5" && failing.Load() {
			attempts.Add(1)
			return errors.New("redis: connection refused")
		}
		rec.add("a", r)
		return nil
	}))

	kafkatest.Eventually(t, waitLong, func() bool { return attempts.Load() >= 3 }, "the failing record was not retried")
	// Records before the failing one are committed; nothing at or past it is.
	kafkatest.Eventually(t, waitLong, func() bool { return e.committed()[0] == 5 }, "committed %v, want 5 while v5 fails", e.committed())
	seen := attempts.Load()
	kafkatest.Eventually(t, waitLong, func() bool { return attempts.Load() >= seen+3 }, "retries stopped")
	if got := e.committed()[0]; got != 5 {
		t.Fatalf("committed offset %d while offset 5 still fails, want 5", got)
	}
	for o := int64(5); o < 10; o++ {
		if rec.was(0, o) {
			t.Fatalf("offset %d handled while offset 5 was failing", o)
		}
	}

	failing.Store(false)
	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == 10 }, "handled %d of 10 after recovery", rec.distinct())
	e.waitCommittedToEnd()
	if got := rec.valuesSnapshot(); !slices.Equal(got, values) {
		t.Fatalf("handled %v, want %v in order", got, values)
	}
	if got := metricValue(t, e.reg, "threadline_consumer_retries_total", nil); got < 6 {
		t.Errorf("retries_total = %v, want at least 6", got)
	}
	if got := metricValue(t, e.reg, "threadline_consumer_handler_errors_total", map[string]string{"class": "transient"}); got < 6 {
		t.Errorf("handler_errors_total{class=transient} = %v, want at least 6", got)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerPermanentErrorGoesToDLQThenContinues(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	kafkatest.ProduceValues(t, e.brokers, e.topic, "user-1", "ok0", "bad", "ok2", "ok3")
	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "bad" {
			return Permanent("decode", fmt.Errorf("decode product action: %w", io.ErrUnexpectedEOF))
		}
		rec.add("a", r)
		return nil
	}))

	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == 3 }, "handled %d of 3 good records", rec.distinct())
	e.waitCommittedToEnd()
	if got := rec.valuesSnapshot(); !slices.Equal(got, []string{"ok0", "ok2", "ok3"}) {
		t.Fatalf("handled %v", got)
	}

	dead := kafkatest.Consume(t, e.brokers, e.dlq, 1, waitLong)[0]
	if string(dead.Key) != "user-1" {
		t.Errorf("dead letter key = %q, want the original key", dead.Key)
	}
	headers := map[string]string{}
	for _, h := range dead.Headers {
		headers[h.Key] = string(h.Value)
	}
	wantHeaders := map[string]string{
		HeaderSourceTopic:     e.topic,
		HeaderSourcePartition: "0",
		HeaderSourceOffset:    "1",
		HeaderService:         testService,
		HeaderReason:          "decode",
		HeaderError:           "decode product action: unexpected EOF",
	}
	for k, v := range wantHeaders {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, headers[k], v)
		}
	}
	var dl messages.DeadLetter
	if err := messages.Decode(dead.Value, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.SourceTopic != e.topic || dl.Partition != 0 || dl.Offset != 1 || dl.Service != testService ||
		dl.Reason != "decode" || string(dl.Value) != "bad" || string(dl.Key) != "user-1" ||
		dl.Error != "decode product action: unexpected EOF" || dl.FailedAt.IsZero() {
		t.Errorf("dead letter = %+v", dl)
	}
	if got := metricValue(t, e.reg, "threadline_consumer_dlq_records_total", map[string]string{"reason": "decode"}); got != 1 {
		t.Errorf("dlq_records_total{reason=decode} = %v, want 1", got)
	}
	if got := kafkatest.EndOffsets(t, e.brokers, e.dlq)[0]; got != 1 {
		t.Errorf("dead-letter topic holds %d records, want 1", got)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerBatchHandlerPartialProgressAndBarePermanent(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	kafkatest.ProduceValues(t, e.brokers, e.topic, "k", "r0", "r1", "r2", "r3", "poison", "r5")

	var (
		mu          sync.Mutex
		calls       [][]string
		failedAt    = -1 // index in calls of the call that failed at r2
		handledVals []string
	)
	c := e.start(HandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		mu.Lock()
		defer mu.Unlock()
		var vals []string
		for _, r := range recs {
			vals = append(vals, string(r.Value))
		}
		calls = append(calls, vals)
		if vals[0] == "poison" {
			// A bare error classifies recs[0].
			return Permanent("invalid", errors.New("no session id"))
		}
		for i, v := range vals {
			if i > 0 && v == "r2" && failedAt < 0 {
				failedAt = len(calls) - 1
				handledVals = append(handledVals, vals[:i]...)
				return &RecordError{Index: i, Err: errors.New("timeout")}
			}
			if i > 0 && v == "poison" {
				// Finish what comes before the poison; the next call starts with it.
				handledVals = append(handledVals, vals[:i]...)
				return &RecordError{Index: i, Err: errors.New("batch boundary")}
			}
		}
		handledVals = append(handledVals, vals...)
		return nil
	}))
	e.waitCommittedToEnd()
	dead := kafkatest.Consume(t, e.brokers, e.dlq, 1, waitLong)[0]
	if string(dead.Value) == "" || !slices.ContainsFunc(dead.Headers, func(h kgo.RecordHeader) bool {
		return h.Key == HeaderSourceOffset && string(h.Value) == "4"
	}) {
		t.Fatalf("dead letter does not name offset 4: %+v", dead.Headers)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(handledVals, []string{"r0", "r1", "r2", "r3", "r5"}) {
		t.Fatalf("handled %v across calls %v", handledVals, calls)
	}
	if failedAt < 0 || failedAt+1 >= len(calls) {
		t.Fatalf("no call failed part-way at r2: calls %v", calls)
	}
	if next := calls[failedAt+1]; next[0] != "r2" {
		t.Fatalf("after a failure at r2 the next call started at %q (calls %v)", next[0], calls)
	}
}

func TestConsumerFatalErrorStopsRun(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 2)
	kafkatest.ProduceToPartitions(t, e.brokers,
		&kgo.Record{Topic: e.topic, Partition: 0, Value: []byte("a0")},
		&kgo.Record{Topic: e.topic, Partition: 0, Value: []byte("a1")},
		&kgo.Record{Topic: e.topic, Partition: 1, Value: []byte("b0")},
		&kgo.Record{Topic: e.topic, Partition: 1, Value: []byte("fatal")},
		&kgo.Record{Topic: e.topic, Partition: 1, Value: []byte("b2")},
	)
	errSchema := errors.New("schema version 9 unsupported")
	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "fatal" {
			return Fatal(errSchema)
		}
		rec.add("a", r)
		return nil
	}))
	err := c.wait()
	if !IsFatal(err) || !errors.Is(err, errSchema) {
		t.Fatalf("Run returned %v, want the fatal error", err)
	}
	if rec.was(1, 2) {
		t.Fatal("the record after the fatal one was handled")
	}
	committed := e.committed()
	if committed[1] > 1 {
		t.Fatalf("partition 1 committed %d, past the fatal record at offset 1", committed[1])
	}
	for p, off := range committed {
		for o := int64(0); o < off; o++ {
			if !rec.was(p, o) {
				t.Fatalf("committed %d@%d but offset %d was never handled", p, off, o)
			}
		}
	}
	if got := metricValue(t, e.reg, "threadline_consumer_handler_errors_total", map[string]string{"class": "fatal"}); got != 1 {
		t.Errorf("handler_errors_total{class=fatal} = %v, want 1", got)
	}
}

func TestConsumerHandlerPanicIsFatal(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	kafkatest.ProduceValues(t, e.brokers, e.topic, "k", "boom")
	c := e.start(PerRecord(func(context.Context, *kgo.Record) error { panic("nil map") }))
	if err := c.wait(); !IsFatal(err) {
		t.Fatalf("Run returned %v, want a fatal error for the panic", err)
	}
	if got := e.committed()[0]; got != 0 {
		t.Fatalf("committed %d past a panicking record", got)
	}
}

func TestConsumerShutdownFinishesInFlightAndCommits(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	kafkatest.ProduceValues(t, e.brokers, e.topic, "k", "v0", "v1", "v2", "v3", "v4")
	entered := make(chan struct{})
	release := make(chan struct{})
	var inFlightCtxErr atomic.Value
	rec := newRecorder()
	c := e.start(PerRecord(func(ctx context.Context, r *kgo.Record) error {
		if string(r.Value) == "v3" {
			close(entered)
			<-release
			inFlightCtxErr.Store(fmt.Sprint(ctx.Err()))
		}
		rec.add("a", r)
		return nil
	}), func(c *ConsumerConfig) { c.CommitInterval = time.Hour }) // only revoke/shutdown commits

	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- c.stop() }()
	// Shutdown waits for the in-flight call rather than abandoning it.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a handler call was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v after a clean shutdown", err)
	}
	if got := inFlightCtxErr.Load(); got != "<nil>" {
		t.Fatalf("in-flight handler context was cancelled during the drain: %v", got)
	}
	handled := int64(rec.distinct())
	committed := e.committed()[0]
	if handled < 4 || committed != handled {
		t.Fatalf("handled %d records, committed %d; want the finished work (at least v0..v3) committed", handled, committed)
	}

	// A new member of the group resumes after the committed offset.
	kafkatest.ProduceValues(t, e.brokers, e.topic, "k", "after")
	rec2 := newRecorder()
	e.start(rec2.handler("b"))
	kafkatest.Eventually(t, waitLong, func() bool { return slices.Contains(rec2.valuesSnapshot(), "after") }, "the next member never handled the new record")
	for o := int64(0); o < committed; o++ {
		if rec2.was(0, o) {
			t.Fatalf("offset %d was handled again although it was committed", o)
		}
	}
}

// TestConsumerRebalanceWhileRecordsInFlight runs a second member into the group while the first
// is mid-stream, then stops the first: every record is handled at least once, none is lost, and
// no committed offset ever passes a record that was not handled.
func TestConsumerRebalanceWhileRecordsInFlight(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 6)
	rec := newRecorder()
	slow := func(member string) Handler {
		return PerRecord(func(ctx context.Context, r *kgo.Record) error {
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			rec.add(member, r)
			return nil
		})
	}

	// Watch committed offsets throughout: each must cover only handled records.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var violations []string
	watchDone := make(chan struct{})
	adm := kadm.NewClient(kafkatest.Client(t, e.brokers))
	go func() {
		defer close(watchDone)
		for watchCtx.Err() == nil {
			resps, err := adm.FetchOffsets(watchCtx, e.group)
			if err == nil {
				resps.Each(func(o kadm.OffsetResponse) {
					if o.Topic != e.topic || o.Err != nil {
						return
					}
					for off := int64(0); off < o.At; off++ {
						if !rec.was(o.Partition, off) {
							violations = append(violations, fmt.Sprintf("committed %d@%d before offset %d was handled", o.Partition, o.At, off))
							return
						}
					}
				})
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	e.produceN(600, 60)
	a := e.start(slow("a"))
	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() >= 60 }, "first member did not start")

	b := e.start(slow("b"))
	kafkatest.Eventually(t, waitLong, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.workers) > 0
	}, "second member was never assigned partitions")
	if rec.distinct() >= 600 {
		t.Fatalf("the first member finished before the rebalance; the test did not rebalance mid-stream")
	}
	e.produceN(300, 60)
	kafkatest.Eventually(t, waitLong, func() bool { return rec.member("b") > 0 }, "second member handled nothing")

	if err := a.stop(); err != nil {
		t.Fatalf("first member: %v", err)
	}
	e.produceN(120, 60)

	ends := kafkatest.EndOffsets(t, e.brokers, e.topic)
	kafkatest.Eventually(t, waitLong, func() bool { return len(rec.missing(ends)) == 0 }, "records never handled: %v", rec.missing(ends))
	e.waitCommittedToEnd()
	stopWatch()
	<-watchDone
	if len(violations) > 0 {
		t.Fatalf("committed offsets passed unhandled records: %v", violations[:min(len(violations), 5)])
	}
	total := 0
	for _, end := range ends {
		total += int(end)
	}
	if total != 1020 {
		t.Fatalf("end offsets sum to %d, want 1020", total)
	}
	t.Logf("handled %d deliveries of %d records (a: %d, b: %d)", len(rec.valuesSnapshot()), total, rec.member("a"), rec.member("b"))
	if err := b.stop(); err != nil {
		t.Fatalf("second member: %v", err)
	}
}

func TestConsumerBackpressurePausesFullPartition(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	e.produceN(100, 1)
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		once.Do(func() { close(entered) })
		<-release
		rec.add("a", r)
		return nil
	}), func(c *ConsumerConfig) { c.PartitionBuffer, c.MaxPollRecords = 5, 5 })

	<-entered
	pausedHere := func() bool { return slices.Contains(c.cl.PauseFetchPartitions(nil)[e.topic], 0) }
	kafkatest.Eventually(t, waitLong, pausedHere, "partition fetching not paused with a full buffer")
	c.mu.Lock()
	w := c.workers[topicPartition{e.topic, 0}]
	c.mu.Unlock()
	w.mu.Lock()
	buffered := len(w.queue) + w.inFlight
	w.mu.Unlock()
	if buffered > 5+5 {
		t.Fatalf("%d records buffered, want at most buffer+poll = 10", buffered)
	}
	close(release)
	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == 100 }, "handled %d of 100", rec.distinct())
	e.waitCommittedToEnd()
	kafkatest.Eventually(t, waitLong, func() bool { return !pausedHere() }, "partition still paused after draining")
}

func TestConsumerPauseResumeAndPauseWhile(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 2)
	rec := newRecorder()
	c := e.start(rec.handler("a"))
	kafkatest.Eventually(t, waitLong, c.Ready, "consumer never became ready on an empty topic")

	topicPaused := func() bool { return slices.Contains(c.cl.PauseFetchTopics(), e.topic) }
	c.Pause()
	if !topicPaused() || metricValue(t, e.reg, "threadline_consumer_paused", nil) != 1 {
		t.Fatal("Pause did not pause the topic")
	}
	e.produceN(10, 5)
	time.Sleep(300 * time.Millisecond)
	if n := rec.distinct(); n != 0 {
		t.Fatalf("%d records handled while paused", n)
	}
	c.Resume()
	kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == 10 }, "handled %d of 10 after Resume", rec.distinct())

	var breakerOpen atomic.Bool
	c.PauseWhile(breakerOpen.Load)
	breakerOpen.Store(true)
	kafkatest.Eventually(t, waitLong, topicPaused, "PauseWhile did not pause while the condition held")
	breakerOpen.Store(false)
	kafkatest.Eventually(t, waitLong, func() bool { return !topicPaused() }, "PauseWhile did not resume")
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerReadyOnlyAfterCatchingUp(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	e.produceN(30, 3)
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		once.Do(func() { close(entered) })
		<-release
		rec.add("a", r)
		return nil
	}))
	<-entered
	if c.Ready() {
		t.Fatal("ready before the first record was handled")
	}
	close(release)
	kafkatest.Eventually(t, waitLong, c.Ready, "never ready")
	if n := rec.distinct(); n != 30 {
		t.Fatalf("ready with %d of 30 records handled", n)
	}

	// A member that the group gives no partition (one partition, two members) is ready too.
	other := e.start(newRecorder().handler("b"))
	kafkatest.Eventually(t, waitLong, other.Ready, "idle member never ready")
}

func TestConsumerReplayFrom(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range 10 {
		ts := base
		if i >= 5 {
			ts = base.Add(time.Minute)
		}
		recs = append(recs, &kgo.Record{Topic: e.topic, Key: []byte("k"), Value: []byte("v" + strconv.Itoa(i)), Timestamp: ts})
	}
	kafkatest.Produce(t, e.brokers, recs...)

	offsetsOf := func(r *recorder) []int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Sorted(func(yield func(int64) bool) {
			for o := range r.handled[0] {
				if !yield(o) {
					return
				}
			}
		})
	}
	runUntil := func(group, replay string, want int) []int64 {
		t.Helper()
		rec := newRecorder()
		c := e.start(rec.handler(group), func(c *ConsumerConfig) { c.Group, c.ReplayFrom = group, replay })
		kafkatest.Eventually(t, waitLong, func() bool { return rec.distinct() == want }, "replay %q: handled %d, want %d", replay, rec.distinct(), want)
		kafkatest.Eventually(t, waitLong, func() bool {
			return kafkatest.CommittedOffsets(t, e.brokers, group, e.topic)[0] == 10
		}, "replay %q: not committed to the end", replay)
		if err := c.stop(); err != nil {
			t.Fatal(err)
		}
		return offsetsOf(rec)
	}

	all := []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if got := runUntil(e.group, "", 10); !slices.Equal(got, all) {
		t.Fatalf("first run handled %v", got)
	}
	if got := runUntil(e.group, "earliest", 10); !slices.Equal(got, all) {
		t.Fatalf("replay from earliest handled %v, want all", got)
	}
	if got := runUntil(e.group, base.Add(30*time.Second).Format(time.RFC3339Nano), 5); !slices.Equal(got, all[5:]) {
		t.Fatalf("replay from a time handled %v, want %v", got, all[5:])
	}

	// A replay never moves a group forward past records it has not processed.
	behind := kafkatest.Topic(t, "behind")
	adm := kadm.NewClient(kafkatest.Client(t, e.brokers))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var seek kadm.Offsets
	seek.AddOffset(e.topic, 0, 2, -1)
	if _, err := adm.CommitOffsets(ctx, behind, seek); err != nil {
		t.Fatal(err)
	}
	if got := runUntil(behind, time.Now().Add(time.Hour).Format(time.RFC3339), 8); !slices.Equal(got, all[2:]) {
		t.Fatalf("replay from the future handled %v, want %v (from the committed offset)", got, all[2:])
	}
}

func TestConsumerTransactionalInputSkipsControlRecords(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	txn := kafkatest.Client(t, e.brokers, kgo.TransactionalID(kafkatest.Topic(t, "txn")), kgo.DefaultProduceTopic(e.topic))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	transact := func(commit bool, values ...string) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := txn.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	transact(true, "t1", "t2")
	transact(false, "aborted")
	transact(true, "t3")

	rec := newRecorder()
	c := e.start(rec.handler("a"))
	kafkatest.Eventually(t, waitLong, c.Ready, "never ready on a transactional topic")
	e.waitCommittedToEnd()
	if got := rec.valuesSnapshot(); !slices.Equal(got, []string{"t1", "t2", "t3"}) {
		t.Fatalf("handled %v, want the committed records only", got)
	}
	if rec.control != 0 {
		t.Fatalf("%d control records reached the handler", rec.control)
	}
}

func TestConsumerDLQProduceFailureIsRetriedWithoutCommitting(t *testing.T) {
	cluster, brokers := kafkatest.Cluster(t)
	e := newTestEnv(t, brokers, 1)
	kafkatest.ProduceValues(t, brokers, e.topic, "k", "ok0", "bad", "ok2")

	var failDLQ atomic.Bool
	failDLQ.Store(true)
	var failures atomic.Int32
	cluster.ControlKey(kmsg.Produce.Int16(), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if !failDLQ.Load() {
			cluster.DropControl()
			return nil, nil, false
		}
		cluster.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		failures.Add(1)
		return resp, nil, true
	})

	rec := newRecorder()
	c := e.start(PerRecord(func(_ context.Context, r *kgo.Record) error {
		if string(r.Value) == "bad" {
			return Permanent("invalid", errors.New("missing session id"))
		}
		rec.add("a", r)
		return nil
	}))
	kafkatest.Eventually(t, waitLong, func() bool { return failures.Load() >= 3 }, "dead-letter produce was not retried")
	if got := e.committed()[0]; got > 1 {
		t.Fatalf("committed %d while the record at offset 1 could not be dead-lettered", got)
	}
	if rec.was(0, 2) {
		t.Fatal("the record after the undead-lettered one was handled")
	}
	failDLQ.Store(false)
	e.waitCommittedToEnd()
	dead := kafkatest.Consume(t, brokers, e.dlq, 1, waitLong)[0]
	var dl messages.DeadLetter
	if err := messages.Decode(dead.Value, &dl); err != nil || dl.Offset != 1 || dl.Reason != "invalid" {
		t.Fatalf("dead letter %+v (%v)", dl, err)
	}
	if got := rec.valuesSnapshot(); !slices.Equal(got, []string{"ok0", "ok2"}) {
		t.Fatalf("handled %v", got)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestConsumerSurvivesLostPartitions makes the broker forget the member mid-call (a heartbeat
// answered UnknownMemberID): the in-flight call is cancelled, what it reports afterwards is not
// marked, and the record is handled again once the member rejoins.
func TestConsumerSurvivesLostPartitions(t *testing.T) {
	cluster, brokers := kafkatest.Cluster(t)
	e := newTestEnv(t, brokers, 1)
	kafkatest.ProduceValues(t, brokers, e.topic, "k", "v0", "v1")
	entered := make(chan struct{})
	var v0Deliveries atomic.Int32
	var cancelledFirst atomic.Bool
	rec := newRecorder()
	c := e.start(PerRecord(func(ctx context.Context, r *kgo.Record) error {
		if string(r.Value) == "v0" && v0Deliveries.Add(1) == 1 {
			close(entered)
			<-ctx.Done() // the partition is lost under this call
			cancelledFirst.Store(true)
			return nil // claims success too late: must not be marked
		}
		rec.add("a", r)
		return nil
	}))
	<-entered
	cluster.ControlKey(kmsg.Heartbeat.Int16(), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		resp := kr.(*kmsg.HeartbeatRequest).ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	kafkatest.Eventually(t, waitLong, func() bool { return rec.was(0, 0) && rec.was(0, 1) }, "records not handled again after the partition was lost")
	e.waitCommittedToEnd()
	if !cancelledFirst.Load() || v0Deliveries.Load() < 2 {
		t.Fatalf("first call cancelled: %v; deliveries of v0: %d", cancelledFirst.Load(), v0Deliveries.Load())
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerLostPartitionIsFenced(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 1)
	c := e.newConsumer(newRecorder().handler("a"))
	defer c.Close()
	w := newPartitionWorker(c, topicPartition{e.topic, 0})
	w.fence()
	w.markDone([]*kgo.Record{{Topic: e.topic, Partition: 0, Offset: 7}})
	if got := w.next.Load(); got != -1 {
		t.Fatalf("a fenced worker marked offset %d", got-1)
	}
	if w.ctx.Err() == nil {
		t.Fatal("fencing did not cancel the handler context")
	}
}

func TestNewConsumerRejectsIncompleteSetup(t *testing.T) {
	brokers := []string{"127.0.0.1:1"}
	h := newRecorder().handler("a")
	cfg := fastConsumerConfig("g")
	log := zap.NewNop() // nothing listens on the broker address; its dial errors are noise
	cases := []struct {
		name string
		make func() (*Consumer, error)
		want error
	}{
		{"no service", func() (*Consumer, error) {
			return NewConsumer(cfg, testConfig(brokers), "", []string{"t"}, "dlq", h, log, nil)
		}, ErrNoService},
		{"no topics", func() (*Consumer, error) { return NewConsumer(cfg, testConfig(brokers), "s", nil, "dlq", h, log, nil) }, ErrNoTopics},
		{"empty topic", func() (*Consumer, error) {
			return NewConsumer(cfg, testConfig(brokers), "s", []string{""}, "dlq", h, log, nil)
		}, ErrNoTopics},
		{"no dlq", func() (*Consumer, error) {
			return NewConsumer(cfg, testConfig(brokers), "s", []string{"t"}, "", h, log, nil)
		}, ErrNoDLQ},
		{"no handler", func() (*Consumer, error) {
			return NewConsumer(cfg, testConfig(brokers), "s", []string{"t"}, "dlq", nil, log, nil)
		}, ErrNoHandler},
		{"bad consumer config", func() (*Consumer, error) {
			bad := cfg
			bad.Group = ""
			return NewConsumer(bad, testConfig(brokers), "s", []string{"t"}, "dlq", h, log, nil)
		}, ErrGroup},
		{"bad kafka config", func() (*Consumer, error) {
			return NewConsumer(cfg, testConfig(nil), "s", []string{"t"}, "dlq", h, log, nil)
		}, ErrNoBrokers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.make()
			if c != nil {
				c.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	// A producing client and a consumer built from one Config keep their client metrics apart.
	creg := prometheus.NewRegistry()
	producer, err := NewClient(testConfig(brokers), log, creg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	consumer, err := NewConsumer(cfg, testConfig(brokers), "s", []string{"t"}, "dlq", h, log, creg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ids := map[string]bool{}
	families, err := creg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client_id" {
					ids[l.GetValue()] = true
				}
			}
		}
	}
	if !ids["threadline-test"] || !ids["threadline-test-g"] || len(ids) != 2 {
		t.Fatalf("client metrics labelled %v, want the producer's and the consumer's client ids", ids)
	}
	if got := consumerClientID("threadline", "threadline-linker"); got != "threadline-linker" {
		t.Fatalf("consumerClientID = %q", got)
	}

	// Two consumers of one service and group share a registry without conflict; Run works once.
	reg := prometheus.NewRegistry()
	c1, err := NewConsumer(cfg, testConfig(brokers), "s", []string{"t"}, "dlq", h, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewConsumer(cfg, testConfig(brokers), "s", []string{"t"}, "dlq", h, log, reg)
	if err != nil {
		t.Fatalf("second consumer on one registry: %v", err)
	}
	c2.Close()
	if err := c2.Run(context.Background()); !errors.Is(err, ErrConsumerClosed) {
		t.Fatalf("Run after Close = %v, want ErrConsumerClosed", err)
	}
	c1.Close()
}

// BenchmarkConsumerThroughput measures records handled per second by one member over six
// partitions, with a handler that does nothing.
func BenchmarkConsumerThroughput(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	topic, dlq, group := kafkatest.Topic(b, "bench"), kafkatest.Topic(b, "dlq"), kafkatest.Topic(b, "group")
	kafkatest.CreateTopic(b, brokers, topic, 6)
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 64)), Value: []byte("value-" + strconv.Itoa(i))}
	}
	kafkatest.Produce(b, brokers, recs...)
	var handled atomic.Int64
	all := make(chan struct{})
	cfg := fastConsumerConfig(group)
	cfg.MaxPollRecords, cfg.PartitionBuffer = 500, 1000
	b.ResetTimer()
	c, err := NewConsumer(cfg, testConfig(brokers), testService, []string{topic}, dlq, HandlerFunc(func(_ context.Context, recs []*kgo.Record) error {
		if handled.Add(int64(len(recs))) == int64(b.N) {
			close(all)
		}
		return nil
	}), zap.NewNop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("handled %d of %d", handled.Load(), b.N)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
