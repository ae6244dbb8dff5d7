package main

import (
	"maps"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// TestRedisOutagePausesAndResumes stops redis-server under a running linker process while
// actions and a conversation event arrive, and starts it again.
//
// Redis runs with an append-only file synced on every write, so the links made before the outage
// survive it, as they would on a production Redis with persistence (without it the sessions would
// buffer until their conversations' next event linked them again). While Redis is down the
// linker commits nothing on either input topic, produces nothing, reports not ready, and retries
// with backoff: its retries stay within what the backoff policy allows for the time elapsed on
// every partition at once, far from a hot loop. Once Redis is back it resumes by itself, and
// every action arrives: the live actions of linked sessions and the pre-conversation batch of a
// conversation that opened during the outage.
func TestRedisOutagePausesAndResumes(t *testing.T) {
	const (
		users      = 4 // users 0..2 open their conversations before the outage, user 3 during it
		before     = 4 // actions per user before the outage
		during     = 4 // actions per linked user during the outage
		backoffMin = 200 * time.Millisecond
		backoffMax = 1600 * time.Millisecond
		observe    = 3 * time.Second // how long the outage is watched once the linker noticed it
	)
	brokers := kafkatest.Brokers(t)
	srv := redistest.StartWith(t, redistest.PersistentArgs()...)
	procs := newLinkerProcesses(t, brokers, srv.Addr,
		"THREADLINE_CONSUMER_RETRY_BACKOFF_MIN="+backoffMin.String(),
		"THREADLINE_CONSUMER_RETRY_BACKOFF_MAX="+backoffMax.String())
	topics := procs.topics
	j := newJourney("outage-", topics, users)
	for i := 0; i < users; i++ {
		j.expectPre(i, 0, before)
		if i < 3 {
			j.expectLive(i, before, during)
		}
	}

	procs.start()
	procs.produce(j.actionsOfAll(0, before)...)
	procs.produce(j.opens(0, before), j.opens(1, before), j.opens(2, before))
	kafkatest.Eventually(t, waitLong, func() bool { return procs.outputCount() == 3 },
		"the pre-conversation batches of users 0..2 were not produced")
	procs.waitCommittedToEnd()
	committedActions, committedEvents := procs.committed(topics.ProductActions), procs.committed(topics.ConversationEvents)
	retriesBefore := procs.metric("threadline_consumer_retries_total")

	srv.Stop()
	down := time.Now()
	for i := 0; i < 3; i++ {
		procs.produce(j.actions(i, before, during)...)
	}
	procs.produce(j.opens(3, before+during))
	kafkatest.Eventually(t, waitLong, func() bool { return procs.metric("threadline_consumer_retries_total") > retriesBefore },
		"the linker did not notice the outage")
	kafkatest.Eventually(t, waitLong, func() bool { return !procs.ready() }, "the linker stayed ready without Redis")
	for watched := time.Now(); time.Since(watched) < observe; time.Sleep(100 * time.Millisecond) {
		if got := procs.committed(topics.ProductActions); !maps.Equal(got, committedActions) {
			t.Fatalf("product.actions committed %v during the outage, had %v", got, committedActions)
		}
		if got := procs.committed(topics.ConversationEvents); !maps.Equal(got, committedEvents) {
			t.Fatalf("conversation.events committed %v during the outage, had %v", got, committedEvents)
		}
	}
	retries := procs.metric("threadline_consumer_retries_total") - retriesBefore
	elapsed := time.Since(down)
	// Each partition holding records the outage blocks retries on its own.
	blocked := pending(kafkatest.EndOffsets(t, brokers, topics.ProductActions), committedActions) +
		pending(kafkatest.EndOffsets(t, brokers, topics.ConversationEvents), committedEvents)
	bound := blocked * maxRetries(elapsed, backoffMin, backoffMax)
	if retries < 1 || retries > float64(bound) {
		t.Fatalf("%v retries in %s of outage on %d blocked partitions: want 1 to %d, what the backoff allows",
			retries, elapsed, blocked, bound)
	}
	if n := procs.outputCount(); n != 3 {
		t.Fatalf("%d records on conversation.actions during the outage, want the 3 from before it", n)
	}

	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	procs.waitCommittedToEnd()
	kafkatest.Eventually(t, waitLong, procs.ready, "the linker did not become ready again")
	procs.stop()
	d := j.checkDelivery(t, procs.readOutput())
	t.Logf("outage of %s: %v retries on %d blocked partitions (bound %d); %d records on conversation.actions, %d exact repeats",
		elapsed.Round(time.Millisecond), retries, blocked, bound, d.messages, d.repeats)
}

// pending counts the partitions whose end offset is past the committed offset.
func pending(end, committed map[int32]int64) int {
	n := 0
	for p, e := range end {
		if e > committed[p] {
			n++
		}
	}
	return n
}

// maxRetries is the most retries one partition can count within elapsed under the consumer's
// backoff policy: a retry is counted, then waits at least half of backoffMin·2^attempt, capped
// at backoffMax.
func maxRetries(elapsed, backoffMin, backoffMax time.Duration) int {
	n, waited, d := 0, time.Duration(0), backoffMin
	for waited <= elapsed {
		n++
		waited += d / 2
		d = min(2*d, backoffMax)
	}
	return n
}

func TestMaxRetries(t *testing.T) {
	cases := []struct {
		elapsed time.Duration
		want    int
	}{
		{0, 1},                       // the first retry is counted before any wait
		{25 * time.Millisecond, 2},   // waits of at least 25, 50, 100, 200, 400, 400… ms
		{174 * time.Millisecond, 3},  // 25+50 ≤ 174 < 25+50+100
		{775 * time.Millisecond, 6},  // 25+50+100+200+400 = 775
		{1975 * time.Millisecond, 9}, // then 400 ms per retry
	}
	for _, c := range cases {
		if got := maxRetries(c.elapsed, 50*time.Millisecond, 800*time.Millisecond); got != c.want {
			t.Errorf("maxRetries(%s) = %d, want %d", c.elapsed, got, c.want)
		}
	}
}
