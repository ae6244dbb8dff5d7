package linkstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/cputime"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// BenchmarkRouteBatch measures RouteBatch on a real redis-server with poll batches of 500
// actions from 100 sessions (5 each, one identity each). "forward" has every session linked, the
// steady state of a linker; "buffer" has none linked; "buffer-spread" has none linked either but
// 500 sessions of one action each, with a few properties, the shape of a backlog of new sessions.
// It reports actions/s and the CPU time redis-server spent per action, which unlike the rate does
// not depend on what else runs.
func BenchmarkRouteBatch(b *testing.B) {
	b.Run("forward", func(b *testing.B) { benchmarkRouteBatch(b, true, 100, nil) })
	b.Run("buffer", func(b *testing.B) { benchmarkRouteBatch(b, false, 100, nil) })
	props := map[string]string{"plan": "pro", "$event_type": "click", "$screen_name": "pricing",
		"$prev_pageview_pathname": "/", "$prev_pageview_duration": "12.5", "experiment": "checkout-b"}
	b.Run("buffer-spread", func(b *testing.B) { benchmarkRouteBatch(b, false, 500, props) })
}

func benchmarkRouteBatch(b *testing.B, linked bool, sessions int, props map[string]string) {
	const batchSize = 500
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	start := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	// A window and cap large enough that the buffering path keeps everything.
	s := New(rdb, Config{BufferWindow: 24 * time.Hour, BufferTTL: 24 * time.Hour}, zap.NewNop(), nil,
		func() time.Time { return start })

	batch := make([]messages.ProductAction, batchSize)
	for i := range batch {
		sid := "bench-s" + strconv.Itoa(i%sessions)
		batch[i] = messages.ProductAction{
			Version: messages.Version,
			Action: messages.Action{
				SessionID: sid, Event: "$autocapture", Kind: messages.KindClick,
				Page: "pricing", Path: "/pricing", Target: "Select Pro button",
				Text: "User clicked Select Pro button on the pricing page",
			},
			Identity:   messages.Identity{DistinctID: "bench-u" + strconv.Itoa(i%sessions)},
			Properties: props,
		}
	}
	if linked {
		for i := 0; i < sessions; i++ {
			ev := messages.ConversationEvent{
				Version: messages.Version, EventID: "bench-e" + strconv.Itoa(i), Type: messages.ConvCreated,
				ConversationID: "bench-c" + strconv.Itoa(i), SessionHint: "bench-s" + strconv.Itoa(i), OccurredAt: start,
			}
			if _, err := s.Apply(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	}

	cpuBefore, err := cputime.Redis(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range batch {
			batch[i].Action.ActionID = "bench-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
			batch[i].Action.EventTime = start.Add(time.Duration(n*batchSize+i) * time.Millisecond)
		}
		out, err := s.RouteBatch(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if linked && len(out) != batchSize {
			b.Fatalf("%d messages for %d linked actions", len(out), batchSize)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "actions/s")
	cpuAfter, err := cputime.Redis(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((cpuAfter-cpuBefore).Microseconds())/float64(b.N*batchSize), "redis-cpu-µs/action")
}
