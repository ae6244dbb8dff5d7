package notes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// budget is the Intercom call budget shared by every replica: a GCRA limiter in Redis, plus a pause
// key that any replica sets when Intercom says to slow down (429 Retry-After, a low remaining count).
type budget struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	m       *metrics
}

// newBudget spends ratePerMinute in windows of the given length. The burst is a tenth of a window's
// share, so that no window of that length ever sees more than 1.1 times its share: with the default
// 8,000 a minute in 10 s windows that is at most 1,466 calls where Intercom allows 1,666.
func newBudget(rdb redis.UniversalClient, ratePerMinute int, window time.Duration, m *metrics) *budget {
	perWindow := max(1, int(int64(ratePerMinute)*int64(window)/int64(time.Minute)))
	return &budget{
		rdb:     rdb,
		limiter: redis_rate.NewLimiter(rdb),
		limit:   redis_rate.Limit{Rate: perWindow, Period: window, Burst: max(1, perWindow/10)},
		m:       m,
	}
}

// wait blocks until the shared budget allows one call.
func (b *budget) wait(ctx context.Context) error {
	_, err := b.waitFor(ctx, b.limit)
	return err
}

// acquire is wait that also reports whether it had to wait.
func (b *budget) acquire(ctx context.Context) (waited bool, err error) {
	return b.waitFor(ctx, b.limit)
}

// prepaid is the wait of a call whose budget was acquired before.
func prepaid(context.Context) error { return nil }

// waitLow blocks until the shared budget allows one call of low priority: the same rate on the
// same key, but admitted only while at least half the burst is free, so that when the budget is
// tight notes go first.
func (b *budget) waitLow(ctx context.Context) error {
	low := b.limit
	low.Burst = max(1, low.Burst/2)
	_, err := b.waitFor(ctx, low)
	return err
}

func (b *budget) waitFor(ctx context.Context, limit redis_rate.Limit) (waited bool, err error) {
	for {
		left, err := b.rdb.PTTL(ctx, pauseKey).Result()
		if err != nil {
			return waited, fmt.Errorf("rate budget: read pause: %w", err)
		}
		if left > 0 {
			waited = true
			if err := b.sleep(ctx, left); err != nil {
				return waited, err
			}
			continue
		}
		res, err := b.limiter.Allow(ctx, rateKey, limit)
		if err != nil {
			return waited, fmt.Errorf("rate budget: %w", err)
		}
		if res.Allowed > 0 {
			return waited, nil
		}
		waited = true
		if err := b.sleep(ctx, res.RetryAfter); err != nil {
			return waited, err
		}
	}
}

func (b *budget) sleep(ctx context.Context, d time.Duration) error {
	d = max(d, time.Millisecond)
	b.m.rateWaits.Inc()
	b.m.rateWaitSeconds.Add(d.Seconds())
	return sleepCtx(ctx, d)
}

// pause makes every replica wait d before its next call (at least a second when d is unknown).
func (b *budget) pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		d = time.Second
	}
	if err := pauseScript.Run(ctx, b.rdb, []string{pauseKey}, d.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("rate budget: set pause: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// breakers holds one circuit breaker per Intercom workspace.
type breakers struct {
	cfg     Config
	log     *zap.Logger
	m       *metrics
	stopped func() bool // writing stopped for good (401): trip at once

	mu   sync.Mutex
	byWS map[string]*gobreaker.CircuitBreaker[struct{}]
}

// defaultWorkspace names the breaker of messages that carry no workspace id.
const defaultWorkspace = "default"

func newBreakers(cfg Config, log *zap.Logger, m *metrics, stopped func() bool) *breakers {
	return &breakers{cfg: cfg, log: log, m: m, stopped: stopped, byWS: map[string]*gobreaker.CircuitBreaker[struct{}]{}}
}

func (b *breakers) get(ws string) *gobreaker.CircuitBreaker[struct{}] {
	if ws == "" {
		ws = defaultWorkspace
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cb, ok := b.byWS[ws]; ok {
		return cb
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        ws,
		MaxRequests: 1,
		Timeout:     b.cfg.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(b.cfg.BreakerFailures) || b.stopped()
		},
		IsSuccessful: func(err error) bool {
			// Intercom answered: a gone conversation, a redacted part or a refused request are
			// answers about that request, not failures of the service.
			return err == nil || errors.Is(err, ErrConversationGone) || errors.Is(err, ErrAlreadyRedacted) ||
				errors.Is(err, ErrRejected)
		},
		IsExcluded: func(err error) bool {
			var rl *RateLimitedError
			return errors.As(err, &rl) || errors.Is(err, context.Canceled)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if b.stopped() {
				to = gobreaker.StateOpen // writing stopped for good: no probe will be made
			}
			b.m.breakerState.WithLabelValues(name).Set(float64(stateValue(to)))
			log := b.log.Warn
			if to == gobreaker.StateClosed {
				log = b.log.Info
			}
			log("intercom circuit breaker changed state",
				zap.String("workspace", name), zap.String("from", from.String()), zap.String("to", to.String()))
		},
	})
	b.m.breakerState.WithLabelValues(ws).Set(0)
	b.byWS[ws] = cb
	return cb
}

// open reports whether the workspace's breaker is open (not half-open: a probe may go).
func (b *breakers) open(ws string) bool { return b.get(ws).State() == gobreaker.StateOpen }

// anyOpen reports whether any workspace's breaker is open.
func (b *breakers) anyOpen() bool {
	b.mu.Lock()
	all := make([]*gobreaker.CircuitBreaker[struct{}], 0, len(b.byWS))
	for _, cb := range b.byWS {
		all = append(all, cb)
	}
	b.mu.Unlock()
	for _, cb := range all {
		if cb.State() == gobreaker.StateOpen {
			return true
		}
	}
	return false
}

// markAllOpen sets every workspace's gauge to open (writing stopped for good).
func (b *breakers) markAllOpen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ws := range b.byWS {
		b.m.breakerState.WithLabelValues(ws).Set(float64(stateValue(gobreaker.StateOpen)))
	}
}

// stateValue is the breaker state as the gauge shows it: 0 closed, 1 half-open, 2 open.
func stateValue(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
