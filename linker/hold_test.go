package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// gatedProducer blocks each ProduceSync until the test lets it through, telling the test what
// it is producing first.
type gatedProducer struct {
	producing chan []*kgo.Record
	proceed   chan struct{}
}

func (g *gatedProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	g.producing <- rs
	<-g.proceed
	results := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		results[i] = kgo.ProduceResult{Record: r}
	}
	return results
}

// TestFlushHoldsItsSessionUntilProduced runs a link on a real redis-server: while the linker
// produces the pre-conversation batch, the session's stripe is held exclusively (a batch of that
// session cannot start routing, so its live actions cannot overtake the batch), and other
// sessions are free; once produced, the session is free again.
func TestFlushHoldsItsSessionUntilProduced(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	topics := kafka.DefaultTopics()
	store := linkstore.New(rdb, linkstore.DefaultConfig(), zaptest.NewLogger(t), prometheus.NewRegistry(), time.Now)
	out := &gatedProducer{producing: make(chan []*kgo.Record), proceed: make(chan struct{})}
	l := NewLinker(store, nil, out, topics)
	ctx := context.Background()

	j := newJourney("hold-", topics, 1)
	if err := l.Handle(ctx, j.actions(0, 0, 2)); err != nil { // buffered: nothing produced
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Handle(ctx, []*kgo.Record{j.opens(0, 3)}) }()
	recs := <-out.producing
	if len(recs) != 1 || recs[0].Topic != topics.ConversationActions {
		t.Fatalf("produced %d records, want the pre-conversation batch", len(recs))
	}
	linked, other := stripeOf(l.order, j.session(0)), -1
	for i := 1; other < 0 || other == linked; i++ { // a session on another stripe
		other = stripeOf(l.order, fmt.Sprintf("%s-other%d", j.session(0), i))
	}
	if l.order.stripes[linked].TryRLock() {
		t.Fatal("a batch of the linked session could start while its flushed batch was being produced")
	}
	if !l.order.stripes[other].TryRLock() {
		t.Fatal("a batch of another session could not start")
	}
	l.order.stripes[other].RUnlock()
	out.proceed <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !l.order.stripes[linked].TryLock() {
		t.Fatal("the linked session stayed held after its batch was produced")
	}
	l.order.stripes[linked].Unlock()
}
