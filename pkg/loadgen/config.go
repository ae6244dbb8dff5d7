package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults of Config: the load the pipeline targets are stated for (2,000 events/s over 1,000
// sessions), a tenth of whose users open a conversation.
const (
	DefaultSessions          = 1000
	DefaultEventsPerSecond   = 2000
	DefaultConversationShare = 0.1
	DefaultDuration          = time.Minute
	DefaultOpenConcurrency   = 8
)

// Errors returned by Config.Validate.
var (
	ErrSessions          = errors.New("loadgen: sessions must be at least 1")
	ErrEventsPerSecond   = errors.New("loadgen: events-per-second must be positive")
	ErrConversationShare = errors.New("loadgen: conversation-share must be between 0 and 1")
	ErrNoEnd             = errors.New("loadgen: set a duration or a number of passes, or the load never ends")
	ErrNegative          = errors.New("loadgen: duration and passes must not be negative")
	ErrOpenConcurrency   = errors.New("loadgen: open-concurrency must be at least 1")
)

// Config is the shape of the load. Every session is one user playing the shared journey with
// fresh ids, pass after pass (a new pass keeps the session and user, with new event ids); the
// sessions start evenly spread over one pass, so the total rate is EventsPerSecond once every
// session has started.
type Config struct {
	// Sessions is how many users are active at once.
	Sessions int
	// EventsPerSecond is the rate of all sessions together. It sets the event times; Unpaced
	// produces the same events without waiting for their times (a backlog).
	EventsPerSecond float64
	Unpaced         bool
	// ConversationShare of the sessions open an Intercom conversation right after their user
	// identifies, in their first pass.
	ConversationShare float64
	// Duration bounds the schedule: no event is timed later than Duration after the start.
	// Passes bounds each session's journeys (0: as many as Duration allows).
	Duration time.Duration
	Passes   int
	// OpenConcurrency is how many conversations are opened at once.
	OpenConcurrency int
}

// DefaultConfig returns the defaults RegisterFlags installs.
func DefaultConfig() Config {
	return Config{
		Sessions:          DefaultSessions,
		EventsPerSecond:   DefaultEventsPerSecond,
		ConversationShare: DefaultConversationShare,
		Duration:          DefaultDuration,
		OpenConcurrency:   DefaultOpenConcurrency,
	}
}

// RegisterFlags registers the loadgen.* flags with the defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.Sessions, "loadgen.sessions", d.Sessions, "users active at once, each playing the shared journey with fresh ids")
	fs.Float64Var(&c.EventsPerSecond, "loadgen.events-per-second", d.EventsPerSecond, "events per second of all sessions together")
	fs.BoolVar(&c.Unpaced, "loadgen.unpaced", d.Unpaced, "produce as fast as the broker takes them instead of at the event times")
	fs.Float64Var(&c.ConversationShare, "loadgen.conversation-share", d.ConversationShare, "share of sessions whose user opens a conversation after identifying (0..1)")
	fs.DurationVar(&c.Duration, "loadgen.duration", d.Duration, "how much traffic to play, in event time (0: until every session played its passes)")
	fs.IntVar(&c.Passes, "loadgen.passes", d.Passes, "journeys per session (0: as many as the duration allows)")
	fs.IntVar(&c.OpenConcurrency, "loadgen.open-concurrency", d.OpenConcurrency, "conversations opened at once")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Sessions < 1 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrSessions, c.Sessions))
	}
	if !(c.EventsPerSecond > 0) {
		errs = append(errs, fmt.Errorf("%w: %g", ErrEventsPerSecond, c.EventsPerSecond))
	}
	if !(c.ConversationShare >= 0 && c.ConversationShare <= 1) {
		errs = append(errs, fmt.Errorf("%w: %g", ErrConversationShare, c.ConversationShare))
	}
	if c.Duration < 0 || c.Passes < 0 {
		errs = append(errs, ErrNegative)
	} else if c.Duration == 0 && c.Passes == 0 {
		errs = append(errs, ErrNoEnd)
	}
	if c.OpenConcurrency < 1 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrOpenConcurrency, c.OpenConcurrency))
	}
	return errors.Join(errs...)
}

// Opens reports whether session i (0-based) opens a conversation: the openers are spread evenly
// over the sessions, floor(Sessions × ConversationShare) of them.
func (c Config) Opens(i int) bool {
	return int(float64(i+1)*c.ConversationShare) > int(float64(i)*c.ConversationShare)
}
