package linkstore

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
)

// queueing is a Rider that queues a SET and an INCR of it (which Redis refuses: not an integer).
type queueing struct {
	key     string
	queued  int
	set     *redis.StatusCmd
	refused *redis.IntCmd
	err     error // returned by Queue instead of queueing
}

func (q *queueing) Queue(ctx context.Context, pipe redis.Pipeliner) error {
	if q.err != nil {
		return q.err
	}
	q.queued++
	q.set = pipe.Set(ctx, q.key, "not a number", 0)
	q.refused = pipe.Incr(ctx, q.key)
	return nil
}

// TestRidersGoInTheRouteRoundTrip: a rider's commands are sent with the route round trip (a
// linked session's batch stays one round trip), the rider reads its own replies, and its errors
// are not the store's; a rider whose Queue fails fails the batch before anything is sent.
func TestRidersGoInTheRouteRoundTrip(t *testing.T) {
	srv, newClient := singleRedis(t)
	h := newHarness(t, newClient)
	var trips roundTrips
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	s := New(rdb, Config{}, zaptest.NewLogger(t), prometheus.NewRegistry(), h.clock.Now)
	h.apply(s, h.event("e1", messages.ConvCreated, "c1", at(0), "hint=s1"))
	h.route(s, h.action("s1", "a1", at(1), h.who("u1"))) // identities recorded, session known linked

	rider := &queueing{key: h.id("rider")}
	rdb.AddHook(&trips)
	out, err := s.RouteBatch(h.ctx, []messages.ProductAction{h.action("s1", "a2", at(2), h.who("u1"))}, rider)
	if err != nil {
		t.Fatalf("RouteBatch with a rider whose command fails: %v", err)
	}
	h.expect("the action is forwarded", out, "c1 live a2")
	if trips.pipelines != 1 || trips.evalshas != 1 {
		t.Errorf("%d round trips and %d script calls, want 1 and 1 (the route round trip, with the rider in it)", trips.pipelines, trips.evalshas)
	}
	if rider.queued != 1 || rider.set.Val() != "OK" || rider.refused.Err() == nil {
		t.Errorf("rider: queued %d times, SET %q, INCR error %v; want 1, OK and an error", rider.queued, rider.set.Val(), rider.refused.Err())
	}

	broken := &queueing{err: errors.New("cannot encode")}
	trips = roundTrips{}
	if _, err := s.RouteBatch(h.ctx, []messages.ProductAction{h.action("s1", "a3", at(3), h.who("u1"))}, broken); !errors.Is(err, broken.err) {
		t.Fatalf("RouteBatch with a failing rider: %v, want its error", err)
	}
	if trips.pipelines != 0 {
		t.Errorf("%d round trips after a rider failed to queue, want 0", trips.pipelines)
	}
	h.expect("the action is routed when the batch is retried", h.route(s, h.action("s1", "a3", at(3), h.who("u1"))), "c1 live a3")
}
