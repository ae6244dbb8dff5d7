package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// partitionWorker owns one assigned partition: it takes the partition's polled records from its
// queue in offset order, hands them to the handler, and marks what the handler finished.
type partitionWorker struct {
	c   *Consumer
	tp  topicPartition
	log *zap.Logger

	mu          sync.Mutex
	queue       []*kgo.Record // polled, not yet taken
	inFlight    int           // taken, not yet finished
	fetchPaused bool          // this partition's fetching is paused because the buffer is full
	fenced      bool          // the partition was lost: nothing more is marked
	released    bool          // the worker is gone: its lag series must not come back

	wake     chan struct{} // capacity 1: records were queued
	stop     chan struct{} // closed: finish the in-flight call, then exit
	stopOnce sync.Once
	done     chan struct{} // closed when run returns

	// ctx is every handler call's context: cancelled when the partition is lost, or when a
	// stopping worker's DrainTimeout runs out.
	ctx    context.Context
	cancel context.CancelFunc

	next  atomic.Int64 // offset after the last finished record; -1 while unknown
	end   atomic.Int64 // the partition's end offset (last stable offset) last seen; -1 while unknown
	start atomic.Int64 // the partition's log start offset, used while next is unknown; -1 while unknown
	lag   atomic.Int64 // last computed lag; -1 while unknown
}

func newPartitionWorker(c *Consumer, tp topicPartition) *partitionWorker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &partitionWorker{
		c:      c,
		tp:     tp,
		log:    c.log.With(zap.String("topic", tp.topic), zap.Int32("partition", tp.partition)),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	w.next.Store(-1)
	w.end.Store(-1)
	w.start.Store(-1)
	w.lag.Store(-1)
	return w
}

// enqueue appends polled records and pauses the partition's fetching when the buffer is full.
func (w *partitionWorker) enqueue(recs []*kgo.Record, end int64) {
	w.raiseEnd(end)
	w.mu.Lock()
	w.queue = append(w.queue, recs...)
	if !w.fetchPaused && len(w.queue)+w.inFlight >= w.c.cfg.PartitionBuffer {
		w.fetchPaused = true
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// resumeIfDrainedLocked resumes fetching once half the buffer is free. w.mu must be held.
func (w *partitionWorker) resumeIfDrainedLocked() {
	if w.fetchPaused && len(w.queue)+w.inFlight <= w.c.cfg.PartitionBuffer/2 {
		w.fetchPaused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
}

func (w *partitionWorker) raiseEnd(end int64) {
	for {
		cur := w.end.Load()
		if end <= cur || w.end.CompareAndSwap(cur, end) {
			return
		}
	}
}

func (w *partitionWorker) run() {
	defer w.c.workerWG.Done()
	defer close(w.done)
	for {
		batch, ok := w.take()
		if !ok {
			return
		}
		stop := w.process(batch)
		w.mu.Lock()
		w.inFlight = 0
		w.resumeIfDrainedLocked()
		w.mu.Unlock()
		if stop {
			return
		}
	}
}

// take waits for records and returns the next batch: up to MaxPollRecords data records in offset
// order. Control records (transaction markers) never reach the handler; they are marked as soon
// as everything before them is done, so committed offsets can reach the end of the partition.
func (w *partitionWorker) take() ([]*kgo.Record, bool) {
	for {
		if w.stopping() {
			return nil, false
		}
		w.mu.Lock()
		var control *kgo.Record
		for len(w.queue) > 0 && w.queue[0].Attrs.IsControl() {
			control, w.queue = w.queue[0], w.queue[1:]
		}
		if control != nil {
			w.markLocked(control, 0)
		}
		n := 0
		for n < len(w.queue) && n < w.c.cfg.MaxPollRecords && !w.queue[n].Attrs.IsControl() {
			n++
		}
		if n > 0 {
			batch := make([]*kgo.Record, n)
			copy(batch, w.queue)
			clear(w.queue[:n])
			w.queue = w.queue[n:]
			if len(w.queue) == 0 {
				w.queue = nil
			}
			w.inFlight = n
			w.mu.Unlock()
			return batch, true
		}
		w.resumeIfDrainedLocked()
		w.mu.Unlock()
		if control != nil {
			w.c.updateLag(w)
		}
		select {
		case <-w.wake:
		case <-w.stop:
			return nil, false
		}
	}
}

// process runs the handler over batch until every record is done, retrying transient failures
// and dead-lettering permanent ones. It returns true when the worker must exit: it was stopped
// with work unfinished, or a fatal error stops the consumer.
func (w *partitionWorker) process(batch []*kgo.Record) (exit bool) {
	attempt := 0
	for len(batch) > 0 {
		began := time.Now()
		err := w.handle(batch)
		w.c.metrics.handleSeconds.WithLabelValues(w.tp.topic).Observe(time.Since(began).Seconds())
		if err == nil {
			w.markDone(batch)
			return false
		}
		done, cause := splitHandlerError(err, len(batch))
		if done > 0 {
			w.markDone(batch[:done])
			batch = batch[done:]
			attempt = 0
		}
		if len(batch) == 0 {
			return false
		}
		rec := batch[0]
		class := classify(cause)
		w.c.metrics.handlerErrors.WithLabelValues(class).Inc()
		switch class {
		case classFatal:
			w.log.Error("kafka handler failed fatally; stopping the consumer", zap.Int64("offset", rec.Offset), zap.Error(cause))
			w.c.fail(fmt.Errorf("kafka: %s/%d offset %d: %w", rec.Topic, rec.Partition, rec.Offset, cause))
			return true
		case classPermanent:
			reason, _ := IsPermanent(cause)
			if !w.deadLetter(rec, reason, cause) {
				return true
			}
			w.markDone(batch[:1])
			batch = batch[1:]
			attempt = 0
			if w.stopping() {
				return true
			}
		default:
			if w.stopping() {
				return true
			}
			delay := w.backoff(attempt)
			w.log.Warn("kafka handler failed; retrying without committing",
				zap.Int64("offset", rec.Offset), zap.Int("attempt", attempt+1), zap.Duration("backoff", delay), zap.Error(cause))
			w.c.metrics.retries.Inc()
			if !w.sleep(delay) {
				return true
			}
			attempt++
		}
	}
	return false
}

// handle calls the handler, turning a panic into a Fatal error so that Run can shut down cleanly
// and commit the other partitions' finished work.
func (w *partitionWorker) handle(batch []*kgo.Record) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Fatal(fmt.Errorf("handler panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return w.c.handler.Handle(w.ctx, batch)
}

// deadLetter produces rec to the dead-letter topic, synchronously, retrying with backoff until it
// succeeds. It returns false if the worker was stopped before the record was dead-lettered.
func (w *partitionWorker) deadLetter(rec *kgo.Record, reason string, cause error) bool {
	for attempt := 0; ; attempt++ {
		dl, err := DeadLetterRecord(w.c.dlqTopic, w.c.service, rec, reason, cause, time.Now())
		if err == nil {
			ctx, cancel := context.WithTimeout(w.ctx, dlqProduceTimeout)
			err = w.c.cl.ProduceSync(ctx, dl).FirstErr()
			cancel()
		}
		if err == nil {
			w.c.metrics.dlqRecords.WithLabelValues(reason).Inc()
			w.log.Warn("kafka record dead-lettered", zap.Int64("offset", rec.Offset), zap.String("reason", reason),
				zap.String("dlq", w.c.dlqTopic), zap.Error(cause))
			return true
		}
		if w.stopping() || w.ctx.Err() != nil {
			return false
		}
		delay := w.backoff(attempt)
		w.log.Error("kafka dead-letter produce failed; retrying without committing",
			zap.Int64("offset", rec.Offset), zap.Duration("backoff", delay), zap.Error(err))
		w.c.metrics.retries.Inc()
		if !w.sleep(delay) {
			return false
		}
	}
}

// markDone marks recs (a finished prefix, in offset order) for commit.
func (w *partitionWorker) markDone(recs []*kgo.Record) {
	w.mu.Lock()
	w.markLocked(recs[len(recs)-1], len(recs))
	w.mu.Unlock()
	w.c.updateLag(w)
}

// markLocked marks everything up to and including last, unless the partition was lost. w.mu
// must be held, so that a fence cannot slip between the check and the mark.
func (w *partitionWorker) markLocked(last *kgo.Record, count int) {
	if w.fenced {
		return
	}
	w.c.cl.MarkCommitRecords(last)
	w.next.Store(last.Offset + 1)
	if count > 0 {
		w.c.metrics.recordsConsumed.WithLabelValues(w.tp.topic).Add(float64(count))
	}
}

// backoff returns the wait before retry attempt+1: exponential from RetryBackoffMin, capped at
// RetryBackoffMax, with jitter over its upper half so replicas do not retry in step.
func (w *partitionWorker) backoff(attempt int) time.Duration {
	lo, hi := w.c.cfg.RetryBackoffMin, w.c.cfg.RetryBackoffMax
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d; it returns false if the worker was stopped or its context ended first.
func (w *partitionWorker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
		return false
	case <-w.ctx.Done():
		return false
	}
}

func (w *partitionWorker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *partitionWorker) signalStop() { w.stopOnce.Do(func() { close(w.stop) }) }

// fence stops all further marks and cancels the in-flight handler call.
func (w *partitionWorker) fence() {
	w.mu.Lock()
	w.fenced = true
	w.mu.Unlock()
	w.cancel()
}

// release undoes what the worker holds in the client after it exited: a fetch pause (the
// partition may be assigned here again later) and its lag series.
func (w *partitionWorker) release() {
	w.mu.Lock()
	if w.fetchPaused {
		w.fetchPaused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.tp.topic: {w.tp.partition}})
	}
	w.queue = nil
	w.released = true
	w.c.metrics.dropLag(w.tp.topic, w.tp.partition)
	w.mu.Unlock()
}

// publishLag sets the partition's lag series, unless the worker was released.
func (w *partitionWorker) publishLag(lag int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.released {
		w.c.metrics.setLag(w.tp.topic, w.tp.partition, lag)
	}
}
