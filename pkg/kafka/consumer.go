package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// Errors of NewConsumer and Run.
var (
	ErrNoService      = errors.New("kafka: consumer needs a service name")
	ErrNoTopics       = errors.New("kafka: consumer needs at least one topic")
	ErrNoDLQ          = errors.New("kafka: consumer needs a dead-letter topic")
	ErrNoHandler      = errors.New("kafka: consumer needs a handler")
	ErrAlreadyRunning = errors.New("kafka: consumer Run called twice")
	ErrConsumerClosed = errors.New("kafka: consumer closed before Run")
	ErrClientClosed   = errors.New("kafka: consumer client closed while running")
)

const (
	// pauseCheckInterval is how often a PauseWhile condition is evaluated.
	pauseCheckInterval = 200 * time.Millisecond
	// commitTimeout bounds the synchronous commits on revoke and shutdown.
	commitTimeout = 10 * time.Second
	// dlqProduceTimeout bounds one attempt to produce a dead-letter record.
	dlqProduceTimeout = 30 * time.Second
)

type topicPartition struct {
	topic     string
	partition int32
}

// Consumer is a consumer-group member that hands the records of each assigned partition, in
// order, to a Handler running in a goroutine of its own, and commits only what the handler
// finished. See the package documentation for the delivery semantics.
type Consumer struct {
	cfg      ConsumerConfig
	service  string
	topics   []string
	dlqTopic string
	handler  Handler
	log      *zap.Logger
	metrics  *consumerMetrics
	replay   replayStart

	cl  *kgo.Client
	adm *kadm.Client
	// initialized is closed once cl and adm are set. The client joins the group as soon as it
	// is created, so group callbacks wait for it before touching either.
	initialized chan struct{}

	mu       sync.Mutex
	workers  map[topicPartition]*partitionWorker
	joined   bool // in a group session: assigned (possibly nothing) and not lost since
	closing  bool // Run is shutting down: no new workers
	replayed map[topicPartition]bool

	workerWG sync.WaitGroup
	ready    atomic.Bool
	running  atomic.Bool
	lagKick  chan struct{}

	fatalOnce sync.Once
	fatalErr  error
	fatalCh   chan struct{}

	pauseMu       sync.Mutex
	pausedByCall  bool
	pausedByCond  bool
	fetchPaused   bool
	pauseCond     func() bool
	closeOnce     sync.Once
	closedByClose atomic.Bool
}

// NewConsumer returns a Consumer of topics in group cfg.Group, on a client built from kcfg with
// NewClient; the client id is kcfg.ClientID joined with the group (see consumerClientID). service names the service in logs,
// metrics and dead letters; records whose handling fails permanently go to dlqTopic. Metrics are
// registered on reg when it is not nil. The client starts joining the group at once; Run
// consumes.
func NewConsumer(cfg ConsumerConfig, kcfg Config, service string, topics []string, dlqTopic string, h Handler, log *zap.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case service == "":
		return nil, ErrNoService
	case len(topics) == 0 || slices.Contains(topics, ""):
		return nil, fmt.Errorf("%w: %q", ErrNoTopics, topics)
	case dlqTopic == "":
		return nil, ErrNoDLQ
	case h == nil:
		return nil, ErrNoHandler
	}
	if log == nil {
		log = zap.NewNop()
	}
	replay, err := parseReplayFrom(cfg.ReplayFrom)
	if err != nil {
		return nil, err
	}
	metrics, err := newConsumerMetrics(reg, service, cfg.Group)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg:      cfg,
		service:  service,
		topics:   slices.Clone(topics),
		dlqTopic: dlqTopic,
		handler:  h,
		log:      log.With(zap.String("group", cfg.Group), zap.Strings("topics", topics)),
		metrics:  metrics,
		replay:   replay,
		workers:  make(map[topicPartition]*partitionWorker),
		replayed: make(map[topicPartition]bool),
		lagKick:  make(chan struct{}, 1),
		fatalCh:  make(chan struct{}),

		initialized: make(chan struct{}),
	}
	kcfg.ClientID = consumerClientID(kcfg.ClientID, cfg.Group)
	cl, err := NewClient(kcfg, log, reg,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(c.topics...),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(cfg.FetchMaxWait),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitInterval),
		kgo.AutoCommitCallback(c.onAutoCommit),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjustFetchOffsets),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
	)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	c.adm = kadm.NewClient(cl)
	close(c.initialized)
	return c, nil
}

// consumerClientID names a consumer's client after its group as well, so that its client metrics
// do not collide with those of a producing client built from the same Config: the client id and
// the group joined by a dash, or the group alone when it already starts with the client id.
func consumerClientID(clientID, group string) string {
	if strings.HasPrefix(group, clientID) {
		return group
	}
	return clientID + "-" + group
}

// Client returns the consumer's Kafka client, for producing on the same connections (a stage's
// output). Do not poll, commit or close it.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Ready reports whether the consumer has been assigned its partitions and caught up with them
// (lag 0 on each) at least once. It stays true afterwards.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Pause stops fetching every partition of the consumer's topics until Resume; records already
// fetched are still handled. Use it while a downstream dependency is known to be down.
func (c *Consumer) Pause() { c.setPaused(func() { c.pausedByCall = true }) }

// Resume undoes Pause. Fetching stays paused while a PauseWhile condition holds.
func (c *Consumer) Resume() { c.setPaused(func() { c.pausedByCall = false }) }

// PauseWhile makes Run pause fetching while cond returns true (checked every 200 ms), for
// example while a circuit breaker is open. A nil cond removes the condition.
func (c *Consumer) PauseWhile(cond func() bool) {
	c.setPaused(func() {
		c.pauseCond = cond
		if cond == nil {
			c.pausedByCond = false
		}
	})
}

func (c *Consumer) setPaused(change func()) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	change()
	want := c.pausedByCall || c.pausedByCond
	if want == c.fetchPaused {
		return
	}
	c.fetchPaused = want
	if want {
		c.cl.PauseFetchTopics(c.topics...)
		c.metrics.paused.Set(1)
		c.log.Info("kafka consumer paused fetching")
		return
	}
	c.cl.ResumeFetchTopics(c.topics...)
	c.metrics.paused.Set(0)
	c.log.Info("kafka consumer resumed fetching")
}

func (c *Consumer) watchPauseCondition(ctx context.Context) {
	t := time.NewTicker(pauseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.pauseMu.Lock()
		cond := c.pauseCond
		c.pauseMu.Unlock()
		if cond != nil {
			hold := cond()
			c.setPaused(func() {
				if c.pauseCond != nil {
					c.pausedByCond = hold
				}
			})
		}
	}
}

// Close releases the client of a Consumer whose Run was never called. After Run it does nothing.
func (c *Consumer) Close() {
	if c.running.Load() {
		return
	}
	c.closeOnce.Do(func() {
		c.closedByClose.Store(true)
		c.cl.Close()
	})
}

// Run consumes until ctx ends or a handler returns a Fatal error. On the way out it stops taking
// records, lets in-flight handler calls finish (up to DrainTimeout), commits what finished,
// leaves the group and closes the client. It returns nil after a clean shutdown, or the Fatal
// error.
func (c *Consumer) Run(ctx context.Context) error {
	if c.closedByClose.Load() {
		return ErrConsumerClosed
	}
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()

	var bg sync.WaitGroup
	bg.Add(3)
	go func() { defer bg.Done(); c.monitorLag(pollCtx) }()
	go func() { defer bg.Done(); c.watchPauseCondition(pollCtx) }()
	go func() {
		defer bg.Done()
		select {
		case <-c.fatalCh:
			cancelPoll()
		case <-pollCtx.Done():
		}
	}()

	c.log.Info("kafka consumer running")
	runErr := c.pollLoop(pollCtx)
	cancelPoll()

	c.mu.Lock()
	c.closing = true
	var ws []*partitionWorker
	for tp, w := range c.workers {
		ws = append(ws, w)
		delete(c.workers, tp)
	}
	c.mu.Unlock()
	c.stopWorkers(ws, false)
	if len(ws) > 0 {
		c.commitMarked("shutdown")
	}
	c.cl.Close()
	c.workerWG.Wait()
	bg.Wait()

	if err := c.fatal(); err != nil {
		c.log.Error("kafka consumer stopped by a fatal error", zap.Error(err))
		return err
	}
	if runErr != nil {
		return runErr
	}
	c.log.Info("kafka consumer stopped")
	return nil
}

func (c *Consumer) pollLoop(ctx context.Context) error {
	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			c.cl.AllowRebalance()
			if ctx.Err() != nil {
				return nil
			}
			return ErrClientClosed
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			c.log.Warn("kafka fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
		})
		fetches.EachPartition(c.dispatch)
		c.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// dispatch queues a polled partition's records for its worker. BlockRebalanceOnPoll guarantees
// the worker exists: assignment callbacks cannot run between a poll and AllowRebalance.
func (c *Consumer) dispatch(p kgo.FetchTopicPartition) {
	if len(p.Records) == 0 {
		return
	}
	c.mu.Lock()
	w := c.workers[topicPartition{p.Topic, p.Partition}]
	c.mu.Unlock()
	if w == nil {
		c.log.Error("kafka records polled for a partition without a worker; they will be fetched again after the next assignment",
			zap.String("topic", p.Topic), zap.Int32("partition", p.Partition), zap.Int("records", len(p.Records)))
		return
	}
	end := p.LastStableOffset
	if end < 0 {
		end = p.HighWatermark
	}
	w.enqueue(p.Records, end)
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	<-c.initialized
	c.mu.Lock()
	c.joined = true
	if c.closing {
		c.mu.Unlock()
		return
	}
	var added []topicPartition
	listener, _ := c.handler.(AssignmentListener)
	for topic, partitions := range assigned {
		var fresh []int32
		for _, p := range partitions {
			if _, ok := c.workers[topicPartition{topic, p}]; !ok {
				fresh = append(fresh, p)
			}
		}
		if listener != nil && len(fresh) > 0 {
			listener.Assigned(topic, fresh)
		}
		for _, p := range fresh {
			tp := topicPartition{topic, p}
			w := newPartitionWorker(c, tp)
			c.workers[tp] = w
			added = append(added, tp)
			c.workerWG.Add(1)
			go w.run()
		}
	}
	n := len(c.workers)
	c.mu.Unlock()
	c.metrics.assigned.Set(float64(n))
	if len(added) > 0 {
		c.log.Info("kafka partitions assigned", zap.Any("partitions", assigned))
	}
	c.kickLag()
}

func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	<-c.initialized
	ws := c.detach(revoked)
	if len(ws) == 0 {
		return
	}
	c.log.Info("kafka partitions revoked; finishing in-flight work", zap.Any("partitions", revoked))
	c.stopWorkers(ws, false)
	c.commitMarked("revoke")
}

func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	<-c.initialized
	c.mu.Lock()
	c.joined = false // out of the group until the next assignment
	c.mu.Unlock()
	ws := c.detach(lost)
	if len(ws) == 0 {
		return
	}
	c.log.Warn("kafka partitions lost; abandoning in-flight work without committing", zap.Any("partitions", lost))
	c.stopWorkers(ws, true)
}

// detach removes the workers of partitions from the assignment.
func (c *Consumer) detach(partitions map[string][]int32) []*partitionWorker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws []*partitionWorker
	for topic, ps := range partitions {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if w, ok := c.workers[tp]; ok {
				ws = append(ws, w)
				delete(c.workers, tp)
			}
		}
	}
	c.metrics.assigned.Set(float64(len(c.workers)))
	return ws
}

// stopWorkers stops ws and waits for them. A graceful stop lets an in-flight handler call finish
// within DrainTimeout and marks what it finished; a lost stop fences the workers first, so nothing
// they finish afterwards is marked.
func (c *Consumer) stopWorkers(ws []*partitionWorker, lost bool) {
	if len(ws) == 0 {
		return
	}
	for _, w := range ws {
		if lost {
			w.fence()
		}
		w.signalStop()
	}
	drain := time.AfterFunc(c.cfg.DrainTimeout, func() {
		for _, w := range ws {
			w.cancel()
		}
	})
	for _, w := range ws {
		<-w.done
	}
	drain.Stop()
	for _, w := range ws {
		w.cancel()
		w.release()
	}
}

func (c *Consumer) commitMarked(why string) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := c.cl.CommitMarkedOffsets(ctx)
	c.metrics.commit(err)
	if err != nil {
		c.log.Error("kafka commit of finished work failed; it will be processed again", zap.String("on", why), zap.Error(err))
		return
	}
	c.log.Debug("kafka committed finished work", zap.String("on", why))
}

func (c *Consumer) onAutoCommit(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if req == nil || len(req.Topics) == 0 {
		return
	}
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && err == nil {
					err = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	}
	c.metrics.commit(err)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Warn("kafka background commit failed; retried at the next interval", zap.Error(err))
	}
}

// fail records the first fatal error and stops Run.
func (c *Consumer) fail(err error) {
	c.fatalOnce.Do(func() {
		c.mu.Lock()
		c.fatalErr = err
		c.mu.Unlock()
		close(c.fatalCh)
	})
}

func (c *Consumer) fatal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatalErr
}

func (c *Consumer) kickLag() {
	select {
	case c.lagKick <- struct{}{}:
	default:
	}
}
