package kafka

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// adjustFetchOffsets runs after the group fetched the committed offsets of newly assigned
// partitions and before fetching starts: it applies ReplayFrom, once per partition, and records
// where each partition starts.
func (c *Consumer) adjustFetchOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	<-c.initialized
	if !c.replay.none() {
		if err := c.rewind(ctx, offsets); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	for topic, ps := range offsets {
		for p, o := range ps {
			if w := c.workers[topicPartition{topic, p}]; w != nil {
				w.next.Store(max(o.EpochOffset().Offset, -1))
			}
		}
	}
	c.mu.Unlock()
	c.kickLag()
	return offsets, nil
}

// rewind moves the partitions in offsets that this process has not replayed yet to the
// ReplayFrom position, but never forward past a committed offset: a replay may repeat work,
// never skip it.
func (c *Consumer) rewind(ctx context.Context, offsets map[string]map[int32]kgo.Offset) error {
	c.mu.Lock()
	pending := map[string][]int32{}
	for topic, ps := range offsets {
		for p := range ps {
			if !c.replayed[topicPartition{topic, p}] {
				pending[topic] = append(pending[topic], p)
			}
		}
	}
	c.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	topics := slices.Sorted(maps.Keys(pending))
	var (
		listed kadm.ListedOffsets
		err    error
		from   string
	)
	if c.replay.earliest {
		from = ReplayEarliest
		listed, err = c.adm.ListStartOffsets(ctx, topics...)
	} else {
		from = c.replay.at.UTC().Format(time.RFC3339)
		listed, err = c.adm.ListOffsetsAfterMilli(ctx, c.replay.at.UnixMilli(), topics...)
	}
	if err != nil {
		return fmt.Errorf("kafka: replay from %s: list offsets of %v: %w", from, topics, err)
	}
	var done []topicPartition
	for _, topic := range topics {
		for _, p := range pending[topic] {
			lo, ok := listed.Lookup(topic, p)
			if !ok || lo.Err != nil {
				return fmt.Errorf("kafka: replay from %s: no offset for %s/%d: %v", from, topic, p, lo.Err)
			}
			current := offsets[topic][p].EpochOffset().Offset
			if current >= 0 && current < lo.Offset {
				c.log.Info("kafka replay keeps the committed offset, which is earlier than the replay position",
					zap.String("topic", topic), zap.Int32("partition", p), zap.Int64("committed", current), zap.Int64("replay", lo.Offset))
			} else {
				offsets[topic][p] = kgo.NewOffset().At(lo.Offset).WithEpoch(-1)
				c.log.Info("kafka replay rewinds partition", zap.String("from", from),
					zap.String("topic", topic), zap.Int32("partition", p), zap.Int64("offset", lo.Offset))
			}
			done = append(done, topicPartition{topic, p})
		}
	}
	c.mu.Lock()
	for _, tp := range done {
		c.replayed[tp] = true
	}
	c.mu.Unlock()
	return nil
}
