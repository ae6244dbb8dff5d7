package notes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// feed enqueues actions for convs conversations, perConv each, in small messages through the given
// writers in turn, like a consumer that retries transient errors. It returns the expected ids.
func feed(t *testing.T, writers []*Writer, convs, perConv, perMsg int) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	var msgs []messages.ConversationActions
	for c := range convs {
		conv := fmt.Sprintf("c%d", c)
		for i := 0; i < perConv; i += perMsg {
			var actions []messages.Action
			for j := i; j < min(i+perMsg, perConv); j++ {
				id := fmt.Sprintf("a%d-%d", c, j)
				want[conv] = append(want[conv], id)
				actions = append(actions, act(id, time.Now()))
			}
			msgs = append(msgs, actionsMsg(conv, i == 0, actions...))
		}
	}
	for i, m := range msgs {
		enqueueAll(t, writers[i%len(writers)], m)
	}
	return want
}

func waitDelivered(t *testing.T, ic *fakeIntercom, want map[string][]string) {
	t.Helper()
	total := 0
	for _, ids := range want {
		total += len(ids)
	}
	waitFor(t, fmt.Sprintf("%d actions to be written", total), func() bool {
		n := 0
		for _, ls := range ic.delivered() {
			n += len(ls)
		}
		return n >= total
	})
}

func TestFaultsEveryActionEndsUpInExactlyOneNote(t *testing.T) {
	t.Parallel()
	found := func(ws []*Writer) (n float64) { // notes found by their ref instead of being posted again
		for _, w := range ws {
			n += metricValue(t, w.m.unknownResolutions.WithLabelValues("found"))
		}
		return n
	}
	calls := func(ws []*Writer, op, outcome string) (n float64) {
		for _, w := range ws {
			n += metricValue(t, w.m.calls.WithLabelValues(op, outcome))
		}
		return n
	}
	var outageDown, outageSawOpen atomic.Bool
	cases := []struct {
		name   string
		setup  func(h *harness, cfg *Config)
		during func(ws []*Writer)               // runs alongside the writers, if set
		check  func(t *testing.T, ws []*Writer) // the fault really happened and was handled as meant
	}{
		{name: "5xx storm", setup: func(h *harness, cfg *Config) {
			h.ic.setFault(func(op string, n int) fault {
				switch {
				case op == "reply" && n%4 == 1:
					return fault{Err: errors.New("500 internal server error"), Store: true} // failed after storing
				case op == "reply" && n%4 == 2, op == "find" && n%3 == 2:
					return fault{Err: errors.New("502 bad gateway")}
				}
				return fault{}
			})
		}, check: func(t *testing.T, ws []*Writer) {
			if found(ws) == 0 || calls(ws, "reply_note", "error") == 0 {
				t.Error("no failed post was resolved by its ref")
			}
		}},
		{name: "429 storm", setup: func(h *harness, cfg *Config) {
			h.ic.setFault(func(op string, n int) fault {
				if n%3 != 0 {
					return fault{Err: &RateLimitedError{RetryAfter: 15 * time.Millisecond}}
				}
				return fault{}
			})
		}, check: func(t *testing.T, ws []*Writer) {
			if calls(ws, "reply_note", "rate_limited") == 0 || calls(ws, "reply_note", "breaker_open") != 0 {
				t.Error("429s were not seen, or they opened the breaker")
			}
		}},
		{name: "slow responses past the timeout", setup: func(h *harness, cfg *Config) {
			cfg.CallTimeout = 50 * time.Millisecond
			h.ic.setFault(func(op string, n int) fault {
				if n%4 == 1 {
					return fault{Hang: true, Store: n%8 == 1}
				}
				return fault{}
			})
		}, check: func(t *testing.T, ws []*Writer) {
			if found(ws) == 0 || calls(ws, "reply_note", "timeout") == 0 {
				t.Error("no timed-out post was resolved by its ref")
			}
		}},
		{name: "connection resets", setup: func(h *harness, cfg *Config) {
			h.ic.setFault(func(op string, n int) fault {
				reset := fmt.Errorf("read tcp 127.0.0.1:443: %w", syscall.ECONNRESET)
				switch n % 5 {
				case 1:
					return fault{Err: reset, Store: true}
				case 3:
					return fault{Err: reset}
				}
				return fault{}
			})
		}, check: func(t *testing.T, ws []*Writer) {
			if found(ws) == 0 {
				t.Error("no reset post was resolved by its ref")
			}
		}},
		{name: "outage", setup: func(h *harness, cfg *Config) {
			// Intercom is down (a 60 s outage, scaled down) until the breaker has been open a while.
			outageDown.Store(true)
			h.ic.setFault(func(op string, n int) fault {
				if outageDown.Load() {
					return fault{Err: errors.New("503 service unavailable"), Store: op == "reply" && n%2 == 0}
				}
				return fault{}
			})
		}, during: func(ws []*Writer) {
			defer outageDown.Store(false)
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if ws[0].BreakerOpen() || ws[1].BreakerOpen() {
					outageSawOpen.Store(true)
					time.Sleep(300 * time.Millisecond) // the outage goes on while the breaker is open
					return
				}
			}
		}, check: func(t *testing.T, ws []*Writer) {
			if !outageSawOpen.Load() {
				t.Error("the outage did not open the breaker")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			cfg := testConfig()
			cfg.MaxLinesPerNote = 4
			tc.setup(h, &cfg)
			writers := []*Writer{h.writer(cfg, nil), h.writer(cfg, nil)}
			for _, w := range writers {
				run(t, w)
			}
			during := make(chan struct{})
			go func() {
				defer close(during)
				if tc.during != nil {
					tc.during(writers)
				}
			}()
			want := feed(t, writers, 6, 12, 3)
			<-during
			waitDelivered(t, h.ic, want)
			checkExactlyOnce(t, h.ic, want)
			tc.check(t, writers)

			// Every note was published once, with the part id Intercom gave it.
			parts := map[string]bool{}
			for _, ls := range h.ic.delivered() {
				for _, l := range ls {
					parts[l.PartID] = true
				}
			}
			waitFor(t, "every note to be published", func() bool { return len(h.sink.notes()) >= len(parts) })
			seen := map[string]int{}
			for _, nw := range h.sink.notes() {
				seen[nw.PartID]++
				if !parts[nw.PartID] {
					t.Errorf("published part %q that Intercom does not have", nw.PartID)
				}
			}
			for p, n := range seen {
				if n != 1 {
					t.Errorf("part %s published %d times", p, n)
				}
			}
		})
	}
}

func TestRateBudgetIsNeverExceededUnderABurst(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.RateWindow = time.Second // Intercom counts in 10 s windows; scaled to 1 s
	cfg.RatePerMinute = 3000     // 50 a window, burst 5
	const intercomLimit = 60     // per window, like 10,000 a minute against a budget of 8,000
	h.ic.setRateLimit(intercomLimit, cfg.RateWindow)

	writers := []*Writer{h.writer(cfg, nil), h.writer(cfg, nil)} // the budget is shared through Redis
	for _, w := range writers {
		run(t, w)
	}
	want := feed(t, writers, 100, 1, 1) // 100 conversations due at once
	waitDelivered(t, h.ic, want)
	checkExactlyOnce(t, h.ic, want)

	h.ic.mu.Lock()
	rejected := h.ic.rejected
	h.ic.mu.Unlock()
	if rejected != 0 {
		t.Errorf("Intercom answered 429 %d times", rejected)
	}
	var times []time.Time
	for _, c := range h.ic.callLog() {
		times = append(times, c.At)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	most := 0
	for i, j := 0, 0; j < len(times); j++ { // the most calls in any window-long interval
		for times[j].Sub(times[i]) >= cfg.RateWindow {
			i++
		}
		most = max(most, j-i+1)
	}
	if most > intercomLimit {
		t.Errorf("%d calls within one %s window, Intercom allows %d", most, cfg.RateWindow, intercomLimit)
	}
	var waits float64
	for _, w := range writers {
		waits += metricValue(t, w.m.rateWaits)
	}
	if waits == 0 {
		t.Error("no call waited for the budget: the burst did not test it")
	}
}

func TestRateLimitPausesEveryReplica(t *testing.T) {
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	ctx := context.Background()
	if err := w.ObserveRateLimit(ctx, 100, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if left, _ := h.rdb.PTTL(ctx, pauseKey).Result(); left > 0 {
		t.Fatalf("a comfortable remaining count paused the replicas for %s", left)
	}
	if err := w.ObserveRateLimit(ctx, 3, time.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	left, err := h.rdb.PTTL(ctx, pauseKey).Result()
	if err != nil || left < 25*time.Second || left > 30*time.Second {
		t.Fatalf("pause after a low remaining count = %s (%v)", left, err)
	}

	// A waiting call gives up when its context ends, and says nothing was sent.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = w.call(short, "ws1", "reply_note", nil, func(context.Context) error {
		t.Error("a call went out during the pause")
		return nil
	})
	if !certainlyNotStored(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call during a pause = %v", err)
	}
	if metricValue(t, w.m.rateWaits) == 0 {
		t.Error("rate waits metric not counted")
	}
}
