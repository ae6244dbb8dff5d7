package notes

import (
	"errors"
	"flag"
	"fmt"
	"time"
	// Time zones must resolve in minimal containers that ship no zoneinfo.
	_ "time/tzdata"
)

// Errors returned by Config.Validate.
var (
	ErrDebounce           = errors.New("notes: debounce must not be negative")
	ErrMaxWait            = errors.New("notes: max-wait must be positive and at least the debounce")
	ErrMaxLinesPerNote    = errors.New("notes: max-lines-per-note must be at least 1")
	ErrMaxNoteBytes       = errors.New("notes: max-note-bytes is too small for a note")
	ErrTimeZone           = errors.New("notes: unknown time zone")
	ErrRatePerMinute      = errors.New("notes: rate-per-minute must be positive")
	ErrRateWindow         = errors.New("notes: rate-window must be between 1s and 1m")
	ErrRateRemainingFloor = errors.New("notes: rate-remaining-floor must not be negative")
	ErrBreakerFailures    = errors.New("notes: breaker-failures must be at least 1")
	ErrBreakerOpenTimeout = errors.New("notes: breaker-open-timeout must be positive")
	ErrDeliveredTTL       = errors.New("notes: delivered-ttl must be at least an hour")
	ErrCallTimeout        = errors.New("notes: call-timeout must be positive")
	ErrLeaseTTL           = errors.New("notes: lease-ttl must be at least three times the call-timeout")
	ErrPollInterval       = errors.New("notes: poll-interval must be positive")
	ErrFlushConcurrency   = errors.New("notes: flush-concurrency must be at least 1")
	ErrRetryBackoff       = errors.New("notes: retry-min must be positive and not above retry-max")
	ErrMaxPending         = errors.New("notes: max-pending must be at least max-lines-per-note")
)

// minNoteBytes is the smallest note size limit that still fits a heading, one line and the reference.
const minNoteBytes = 512

// Config configures the note writer. DefaultConfig holds every default; RegisterFlags exposes each
// field as a notes.* flag (THREADLINE_NOTES_* in the environment).
type Config struct {
	// Debounce is the trailing quiet time after the last action of a conversation before its batch is
	// written. MaxWait bounds how long the first pending action can wait however busy the user is.
	Debounce time.Duration
	MaxWait  time.Duration
	// MaxLinesPerNote and MaxNoteBytes split a long batch into several notes.
	MaxLinesPerNote int
	MaxNoteBytes    int
	// TimeZone is the IANA zone the note times are written in.
	TimeZone string
	// RatePerMinute is the Intercom call budget shared by every replica, spent in RateWindow slices
	// (Intercom enforces its per-app limit in 10-second windows).
	RatePerMinute int
	RateWindow    time.Duration
	// RateRemainingFloor: when Intercom reports this few calls left in its window (ObserveRateLimit),
	// every replica waits for the window to reset.
	RateRemainingFloor int
	// BreakerFailures consecutive failed calls open a workspace's breaker for BreakerOpenTimeout;
	// then a single probe call decides whether it closes.
	BreakerFailures    int
	BreakerOpenTimeout time.Duration
	// DeliveredTTL is how long accepted action ids, line counters and job states are kept: longer than
	// the retention of conversation.actions, so a replay from the beginning is recognised.
	DeliveredTTL time.Duration
	// CallTimeout bounds each Intercom call. LeaseTTL is how long a replica owns a conversation while
	// flushing it; it is renewed before every call and must outlast one call by a wide margin.
	CallTimeout time.Duration
	LeaseTTL    time.Duration
	// PollInterval is how often the flusher looks for due conversations; FlushConcurrency is how many
	// conversations one replica flushes at a time.
	PollInterval     time.Duration
	FlushConcurrency int
	// RetryMin and RetryMax bound the per-conversation backoff after a failed flush.
	RetryMin time.Duration
	RetryMax time.Duration
	// MaxPending caps the actions waiting for one conversation; beyond it Enqueue pushes back.
	MaxPending int
}

// DefaultConfig returns the defaults. Coalescing trades latency against Intercom calls: a
// conversation receiving λ actions/s written within W needs at least 1/(1+λW) calls per action,
// and N conversations each written within W need up to N/W calls/s. A three-second trailing
// debounce with a ten-second maximum wait writes a quiet user's last actions three seconds after
// they stop and a busy user's within ten, which keeps an active conversation (about 1.5 actions/s)
// near 0.2 calls per action with its summaries and their redactions, and lets about 1,000 busy
// conversations share the budget. Notes within a second take a short debounce and max-wait
// (200ms/600ms), which the budget allows for about 100 such conversations, the redactions of
// summarised notes waiting behind the notes. 8,000 calls a minute stays well
// below Intercom's 10,000 per app.
func DefaultConfig() Config {
	return Config{
		Debounce:           3 * time.Second,
		MaxWait:            10 * time.Second,
		MaxLinesPerNote:    50,
		MaxNoteBytes:       8192,
		TimeZone:           "UTC",
		RatePerMinute:      8000,
		RateWindow:         10 * time.Second,
		RateRemainingFloor: 20,
		BreakerFailures:    5,
		BreakerOpenTimeout: 30 * time.Second,
		DeliveredTTL:       14 * 24 * time.Hour,
		CallTimeout:        10 * time.Second,
		LeaseTTL:           45 * time.Second,
		PollInterval:       100 * time.Millisecond,
		FlushConcurrency:   8,
		RetryMin:           250 * time.Millisecond,
		RetryMax:           30 * time.Second,
		MaxPending:         10000,
	}
}

// RegisterFlags registers the notes.* flags with the defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.DurationVar(&c.Debounce, "notes.debounce", d.Debounce, "trailing quiet time after a conversation's last action before its note is written")
	fs.DurationVar(&c.MaxWait, "notes.max-wait", d.MaxWait, "longest time an action waits for its note, however busy the conversation")
	fs.IntVar(&c.MaxLinesPerNote, "notes.max-lines-per-note", d.MaxLinesPerNote, "most numbered lines in one note; longer batches are split")
	fs.IntVar(&c.MaxNoteBytes, "notes.max-note-bytes", d.MaxNoteBytes, "largest note body in bytes; longer batches are split")
	fs.StringVar(&c.TimeZone, "notes.time-zone", d.TimeZone, "IANA time zone of the times in notes")
	fs.IntVar(&c.RatePerMinute, "notes.rate-per-minute", d.RatePerMinute, "Intercom calls per minute shared by all replicas (Intercom allows 10,000 per app)")
	fs.DurationVar(&c.RateWindow, "notes.rate-window", d.RateWindow, "window the rate budget is spent in (Intercom counts in 10-second windows)")
	fs.IntVar(&c.RateRemainingFloor, "notes.rate-remaining-floor", d.RateRemainingFloor, "wait for Intercom's window to reset when it reports this few calls remaining")
	fs.IntVar(&c.BreakerFailures, "notes.breaker-failures", d.BreakerFailures, "consecutive failed Intercom calls that open a workspace's circuit breaker")
	fs.DurationVar(&c.BreakerOpenTimeout, "notes.breaker-open-timeout", d.BreakerOpenTimeout, "how long an open breaker waits before a probe call")
	fs.DurationVar(&c.DeliveredTTL, "notes.delivered-ttl", d.DeliveredTTL, "how long delivered action ids, line counters and summary jobs are remembered (longer than topic retention)")
	fs.DurationVar(&c.CallTimeout, "notes.call-timeout", d.CallTimeout, "timeout of one Intercom call")
	fs.DurationVar(&c.LeaseTTL, "notes.lease-ttl", d.LeaseTTL, "how long a replica owns a conversation it is flushing (renewed before each call)")
	fs.DurationVar(&c.PollInterval, "notes.poll-interval", d.PollInterval, "how often the flusher looks for due conversations")
	fs.IntVar(&c.FlushConcurrency, "notes.flush-concurrency", d.FlushConcurrency, "conversations one replica flushes at a time")
	fs.DurationVar(&c.RetryMin, "notes.retry-min", d.RetryMin, "first backoff after a failed flush")
	fs.DurationVar(&c.RetryMax, "notes.retry-max", d.RetryMax, "longest backoff after failed flushes")
	fs.IntVar(&c.MaxPending, "notes.max-pending", d.MaxPending, "most actions waiting for one conversation before Enqueue pushes back")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Debounce < 0 {
		errs = append(errs, ErrDebounce)
	}
	if c.MaxWait <= 0 || c.MaxWait < c.Debounce {
		errs = append(errs, ErrMaxWait)
	}
	if c.MaxLinesPerNote < 1 {
		errs = append(errs, ErrMaxLinesPerNote)
	}
	if c.MaxNoteBytes < minNoteBytes {
		errs = append(errs, fmt.Errorf("%w: %d < %d", ErrMaxNoteBytes, c.MaxNoteBytes, minNoteBytes))
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		errs = append(errs, fmt.Errorf("%w: %q", ErrTimeZone, c.TimeZone))
	}
	if c.RatePerMinute <= 0 {
		errs = append(errs, ErrRatePerMinute)
	}
	if c.RateWindow < time.Second || c.RateWindow > time.Minute {
		errs = append(errs, ErrRateWindow)
	}
	if c.RateRemainingFloor < 0 {
		errs = append(errs, ErrRateRemainingFloor)
	}
	if c.BreakerFailures < 1 {
		errs = append(errs, ErrBreakerFailures)
	}
	if c.BreakerOpenTimeout <= 0 {
		errs = append(errs, ErrBreakerOpenTimeout)
	}
	if c.DeliveredTTL < time.Hour {
		errs = append(errs, ErrDeliveredTTL)
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, ErrCallTimeout)
	}
	if c.CallTimeout > 0 && c.LeaseTTL < 3*c.CallTimeout {
		errs = append(errs, ErrLeaseTTL)
	}
	if c.PollInterval <= 0 {
		errs = append(errs, ErrPollInterval)
	}
	if c.FlushConcurrency < 1 {
		errs = append(errs, ErrFlushConcurrency)
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, ErrRetryBackoff)
	}
	if c.MaxPending < c.MaxLinesPerNote || c.MaxPending < 1 {
		errs = append(errs, ErrMaxPending)
	}
	return errors.Join(errs...)
}

// location returns the configured time zone; Validate has checked it.
func (c Config) location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}
