package kafka

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
)

// monitorLag lists the end offsets of the assigned partitions every LagInterval, and whenever
// the assignment changes, to keep the lag metric and readiness right for partitions that get no
// new records.
func (c *Consumer) monitorLag(ctx context.Context) {
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.lagKick:
		}
		if err := c.refreshLag(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug("kafka lag refresh failed", zap.Error(err))
		}
	}
}

func (c *Consumer) refreshLag(ctx context.Context) error {
	c.mu.Lock()
	ws := slices.Collect(maps.Values(c.workers))
	c.mu.Unlock()
	if len(ws) == 0 {
		c.checkReady()
		return nil
	}
	topicSet := map[string]bool{}
	needStart := false
	for _, w := range ws {
		topicSet[w.tp.topic] = true
		needStart = needStart || w.next.Load() < 0
	}
	topics := slices.Sorted(maps.Keys(topicSet))
	ctx, cancel := context.WithTimeout(ctx, max(c.cfg.LagInterval, 5*time.Second))
	defer cancel()
	// Under read_committed the consumer can reach the last stable offset, not the high watermark.
	ends, err := c.adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	var starts kadm.ListedOffsets
	if needStart {
		if starts, err = c.adm.ListStartOffsets(ctx, topics...); err != nil {
			return fmt.Errorf("list start offsets of %v: %w", topics, err)
		}
	}
	for _, w := range ws {
		if o, ok := ends.Lookup(w.tp.topic, w.tp.partition); ok && o.Err == nil {
			w.raiseEnd(o.Offset)
		}
		if o, ok := starts.Lookup(w.tp.topic, w.tp.partition); ok && o.Err == nil {
			w.start.Store(o.Offset)
		}
		c.updateLag(w)
	}
	c.checkReady()
	return nil
}

// updateLag recomputes a partition's lag from its end offset and position, and checks readiness
// when it reaches zero.
func (c *Consumer) updateLag(w *partitionWorker) {
	end := w.end.Load()
	pos := w.next.Load()
	if pos < 0 {
		pos = w.start.Load()
	}
	if end < 0 || pos < 0 {
		return
	}
	lag := max(end-pos, 0)
	w.lag.Store(lag)
	w.publishLag(lag)
	if lag == 0 && !c.ready.Load() {
		c.checkReady()
	}
}

// checkReady turns Ready on once the group assigned this member its partitions and each has
// lag 0.
func (c *Consumer) checkReady() {
	if c.ready.Load() {
		return
	}
	c.mu.Lock()
	caughtUp := c.joined && !c.closing
	for _, w := range c.workers {
		if w.lag.Load() != 0 {
			caughtUp = false
			break
		}
	}
	n := len(c.workers)
	c.mu.Unlock()
	if caughtUp && c.ready.CompareAndSwap(false, true) {
		c.metrics.ready.Set(1)
		c.log.Info("kafka consumer caught up; ready", zap.Int("partitions", n))
	}
}
