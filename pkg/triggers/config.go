package triggers

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// Config configures proactive triggers. An empty File turns the feature off.
type Config struct {
	// File is the YAML rules file (THREADLINE_TRIGGERS_FILE); empty: triggers are off.
	File string
	// DwellGrace is how long past a dwell threshold the engine waits for a late pageview or
	// pageleave (posthog-js sends events in batches) before it decides the user is still there.
	DwellGrace time.Duration
	// ClaimLease is how long an emitted event may stay unconfirmed (Confirm) before Tick emits it
	// again: the time to produce it, and a bound on how late a crash recovers it.
	ClaimLease time.Duration
	// MarkerTTL is how long the decision about a (rule, action) is remembered: a replay of
	// product.actions older than this decides afresh. Keep it at least the topic's retention.
	MarkerTTL time.Duration
	// MaxRedeliveries is how often Tick emits an unconfirmed event again before it gives up.
	MaxRedeliveries int
	// TickBatch caps the due dwell checks and the unconfirmed events one Tick handles.
	TickBatch int
	// ContactTTL is how long the contact of an email hash (RememberContact) is remembered after
	// the last conversation event that named it.
	ContactTTL time.Duration
}

// DefaultConfig returns the defaults, the one place they are written down.
func DefaultConfig() Config {
	return Config{
		DwellGrace:      5 * time.Second,
		ClaimLease:      30 * time.Second,
		MarkerTTL:       7 * 24 * time.Hour,
		MaxRedeliveries: 5,
		TickBatch:       500,
		ContactTTL:      30 * 24 * time.Hour,
	}
}

// RegisterFlags registers the triggers.* flags on fs with the defaults as their initial values.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.File, "triggers.file", d.File,
		"YAML rules that turn product actions into Intercom data events (empty: triggers off)")
	config.DurationVar(fs, &c.DwellGrace, "triggers.dwell-grace", d.DwellGrace,
		"dwell rules: wait this long past the threshold for a late page event before firing")
	config.DurationVar(fs, &c.ClaimLease, "triggers.claim-lease", d.ClaimLease,
		"an emitted data event not confirmed within this time is emitted again")
	config.DurationVar(fs, &c.MarkerTTL, "triggers.marker-ttl", d.MarkerTTL,
		"how long each rule's decision about an action is kept against replays (at least the topic retention)")
	fs.IntVar(&c.MaxRedeliveries, "triggers.max-redeliveries", d.MaxRedeliveries,
		"how often an unconfirmed data event is emitted again before it is given up")
	fs.IntVar(&c.TickBatch, "triggers.tick-batch", d.TickBatch,
		"most dwell checks and re-emissions handled by one tick")
	config.DurationVar(fs, &c.ContactTTL, "triggers.contact-ttl", d.ContactTTL,
		"how long an email hash resolves to the Intercom contact a conversation event named")
}

// Errors returned by Validate.
var (
	ErrDwellGrace      = errors.New("triggers.dwell-grace must be positive")
	ErrClaimLease      = errors.New("triggers.claim-lease must be positive")
	ErrMarkerTTL       = errors.New("triggers.marker-ttl must be at least a day")
	ErrMaxRedeliveries = errors.New("triggers.max-redeliveries must be positive")
	ErrTickBatch       = errors.New("triggers.tick-batch must be positive")
	ErrContactTTL      = errors.New("triggers.contact-ttl must be positive")
)

// minMarkerTTL keeps decisions long enough for the longest every and an ordinary replay.
const minMarkerTTL = 24 * time.Hour

// Validate checks the configuration. It does not read File: Load does, and reports every
// problem in it.
func (c Config) Validate() error {
	var errs []error
	if c.DwellGrace <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrDwellGrace, c.DwellGrace))
	}
	if c.ClaimLease <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrClaimLease, c.ClaimLease))
	}
	if c.MarkerTTL < minMarkerTTL {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrMarkerTTL, c.MarkerTTL))
	}
	if c.MaxRedeliveries <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %d)", ErrMaxRedeliveries, c.MaxRedeliveries))
	}
	if c.TickBatch <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %d)", ErrTickBatch, c.TickBatch))
	}
	if c.ContactTTL <= 0 {
		errs = append(errs, fmt.Errorf("%w (got %s)", ErrContactTTL, c.ContactTTL))
	}
	return errors.Join(errs...)
}

// Enabled reports whether a rules file is configured.
func (c Config) Enabled() bool { return c.File != "" }

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DwellGrace == 0 {
		c.DwellGrace = d.DwellGrace
	}
	if c.MaxRedeliveries == 0 {
		c.MaxRedeliveries = d.MaxRedeliveries
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = d.ClaimLease
	}
	if c.MarkerTTL == 0 {
		c.MarkerTTL = d.MarkerTTL
	}
	if c.TickBatch == 0 {
		c.TickBatch = d.TickBatch
	}
	if c.ContactTTL == 0 {
		c.ContactTTL = d.ContactTTL
	}
	return c
}
