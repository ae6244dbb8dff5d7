package linkstore

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// Routing policies: which of a session's linked conversations receive its actions.
const (
	// PolicyMostRecent sends each action to the open conversation with the most recent activity.
	PolicyMostRecent = "most-recent"
	// PolicyAllOpen sends each action to every open conversation of the session.
	PolicyAllOpen = "all-open"
)

// Config configures the link store. New gives zero fields the values of DefaultConfig, except
// ClosedGrace, where zero means no grace.
type Config struct {
	// BufferWindow keeps, per unlinked session, only actions this close in event time to the newest
	// one (or to the link time when the buffer is flushed).
	BufferWindow time.Duration
	// BufferMax caps the buffered actions per session; the oldest are dropped first.
	BufferMax int
	// BufferTTL drops a session's buffer after this long without a new buffered action. It bounds
	// memory for the many sessions that never open a conversation and must exceed BufferWindow plus
	// the lag expected between the two input topics.
	BufferTTL time.Duration
	// SessionTTL bounds every session, identity, conversation and idempotency record: each expires
	// this long after it was last written.
	SessionTTL time.Duration
	// PendingTTL is how long a conversation whose user has no known session waits for that user's
	// next action.
	PendingTTL time.Duration
	// ClosedGrace is how long after a conversation closes (in action event time) it still receives
	// the session's actions.
	ClosedGrace time.Duration
	// Policy is PolicyMostRecent or PolicyAllOpen.
	Policy string
}

// DefaultConfig returns the defaults, the one place they are written down.
func DefaultConfig() Config {
	return Config{
		BufferWindow: 120 * time.Second,
		BufferMax:    200,
		BufferTTL:    30 * time.Minute,
		SessionTTL:   24 * time.Hour,
		PendingTTL:   time.Hour,
		ClosedGrace:  2 * time.Minute,
		Policy:       PolicyMostRecent,
	}
}

// RegisterFlags registers the linker.* flags on fs with the defaults as their initial values.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	config.DurationVar(fs, &c.BufferWindow, "linker.buffer-window", d.BufferWindow,
		"pre-link buffer: keep actions this close in event time to the newest (or to the link)")
	fs.IntVar(&c.BufferMax, "linker.buffer-max", d.BufferMax,
		"pre-link buffer: most actions kept per session (oldest dropped first)")
	config.DurationVar(fs, &c.BufferTTL, "linker.buffer-ttl", d.BufferTTL,
		"pre-link buffer: drop a session's buffer after this long without new actions")
	config.DurationVar(fs, &c.SessionTTL, "linker.session-ttl", d.SessionTTL,
		"expiry of session, identity, conversation and idempotency records after their last write")
	config.DurationVar(fs, &c.PendingTTL, "linker.pending-ttl", d.PendingTTL,
		"how long a conversation waits for its user's next action when no session is known")
	config.DurationVar(fs, &c.ClosedGrace, "linker.closed-grace", d.ClosedGrace,
		"a closed conversation still receives actions up to this long after it closed")
	fs.StringVar(&c.Policy, "linker.policy", d.Policy,
		"which linked conversations receive actions: most-recent or all-open")
}

// Errors returned by Validate.
var (
	ErrBufferWindow = errors.New("linker.buffer-window must be positive")
	ErrBufferMax    = errors.New("linker.buffer-max must be positive")
	ErrBufferTTL    = errors.New("linker.buffer-ttl must be at least linker.buffer-window")
	ErrSessionTTL   = errors.New("linker.session-ttl must be at least linker.buffer-window and linker.pending-ttl")
	ErrPendingTTL   = errors.New("linker.pending-ttl must be positive")
	ErrClosedGrace  = errors.New("linker.closed-grace must not be negative")
	ErrPolicy       = errors.New("linker.policy must be most-recent or all-open")
)

// Validate checks the configuration as given (zero values are errors here; New fills them).
func (c Config) Validate() error {
	var errs []error
	if c.BufferWindow <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrBufferWindow, c.BufferWindow))
	}
	if c.BufferMax <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %d)", ErrBufferMax, c.BufferMax))
	}
	if c.BufferTTL < c.BufferWindow {
		errs = append(errs, fmt.Errorf("%w (got %s < %s)", ErrBufferTTL, c.BufferTTL, c.BufferWindow))
	}
	if c.PendingTTL <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrPendingTTL, c.PendingTTL))
	}
	if c.SessionTTL < c.BufferWindow || c.SessionTTL < c.PendingTTL || c.SessionTTL <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrSessionTTL, c.SessionTTL))
	}
	if c.ClosedGrace < 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrClosedGrace, c.ClosedGrace))
	}
	if c.Policy != PolicyMostRecent && c.Policy != PolicyAllOpen {
		errs = append(errs, fmt.Errorf("%w (got %q)", ErrPolicy, c.Policy))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BufferWindow == 0 {
		c.BufferWindow = d.BufferWindow
	}
	if c.BufferMax == 0 {
		c.BufferMax = d.BufferMax
	}
	if c.BufferTTL == 0 {
		c.BufferTTL = max(d.BufferTTL, c.BufferWindow)
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = d.PendingTTL
	}
	if c.Policy == "" {
		c.Policy = d.Policy
	}
	return c
}
