package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// announcedHandler is a Handler and AssignmentListener that checks every record it handles comes
// from a partition it was told of, since it was last told of it.
type announcedHandler struct {
	mu         sync.Mutex
	told       map[int32]int // partition → times announced
	handled    int
	unheralded []string
}

func (h *announcedHandler) Assigned(_ string, partitions []int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range partitions {
		h.told[p]++
	}
}

func (h *announcedHandler) Handle(_ context.Context, recs []*kgo.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range recs {
		if h.told[r.Partition] == 0 {
			h.unheralded = append(h.unheralded, fmt.Sprintf("%d@%d", r.Partition, r.Offset))
		}
		h.handled++
	}
	return nil
}

func (h *announcedHandler) times(p int32) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.told[p]
}

// TestConsumerTellsTheHandlerItsNewPartitions: a handler that listens is told of each partition
// the consumer starts on before its records arrive, and again when a partition comes back after
// a rebalance took it away.
func TestConsumerTellsTheHandlerItsNewPartitions(t *testing.T) {
	e := newTestEnv(t, kafkatest.Brokers(t), 2)
	e.produceN(40, 8)
	first := &announcedHandler{told: map[int32]int{}}
	a := e.start(first)
	kafkatest.Eventually(t, waitLong, func() bool { return first.times(0) == 1 && first.times(1) == 1 }, "first member told %v", first.told)

	second := &announcedHandler{told: map[int32]int{}}
	b := e.start(second)
	kafkatest.Eventually(t, waitLong, func() bool { return second.times(0)+second.times(1) == 1 }, "second member told %v", second.told)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	// The partition the second member had comes back to the first, which is told again.
	kafkatest.Eventually(t, waitLong, func() bool { return first.times(0)+first.times(1) == 3 }, "first member told %v after the second left", first.told)
	e.produceN(40, 8)
	kafkatest.Eventually(t, waitLong, func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return first.handled >= 40
	}, "first member handled too little")
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*announcedHandler{first, second} {
		if len(h.unheralded) > 0 {
			t.Errorf("records of partitions the handler was not told of: %v", h.unheralded)
		}
	}
}
