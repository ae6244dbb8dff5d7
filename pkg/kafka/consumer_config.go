package kafka

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// Defaults of ConsumerConfig.
const (
	DefaultMaxPollRecords    = 500
	DefaultPartitionBuffer   = 2000
	DefaultRetryBackoffMin   = 100 * time.Millisecond
	DefaultRetryBackoffMax   = 10 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	DefaultSessionTimeout    = 45 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 60 * time.Second
	DefaultCommitInterval    = 5 * time.Second
	DefaultFetchMaxWait      = 100 * time.Millisecond
	DefaultLagInterval       = 10 * time.Second
)

// minCommitInterval is the shortest background commit interval franz-go accepts.
const minCommitInterval = 100 * time.Millisecond

// ReplayEarliest is the ReplayFrom value that replays every partition from its first record.
const ReplayEarliest = "earliest"

// Errors ConsumerConfig.Validate returns, wrapped with the offending value.
var (
	ErrGroup          = errors.New("kafka: consumer group is empty")
	ErrMaxPollRecords = errors.New("kafka: max poll records must be at least 1")
	ErrPartitionBuf   = errors.New("kafka: partition buffer must be at least 1")
	ErrRetryBackoff   = errors.New("kafka: retry backoff must be positive with min <= max")
	ErrReplayFrom     = errors.New(`kafka: replay-from must be empty, "earliest" or an RFC 3339 time`)
	ErrGroupTimeouts  = errors.New("kafka: group timeouts must be positive, heartbeat interval below session timeout, drain timeout below rebalance timeout")
	ErrIntervals      = errors.New("kafka: commit interval must be at least 100ms, fetch max wait and lag interval positive")
)

// ConsumerConfig configures one Consumer: its group, how much it reads ahead, how it retries and
// where a replay starts.
type ConsumerConfig struct {
	Group string
	// MaxPollRecords bounds one poll, and one handler call.
	MaxPollRecords int
	// PartitionBuffer is how many records are buffered per partition before that partition's
	// fetching is paused; it resumes when half of them are done.
	PartitionBuffer int
	// RetryBackoffMin and RetryBackoffMax bound the capped exponential backoff (with jitter)
	// between attempts of a transient failure.
	RetryBackoffMin, RetryBackoffMax time.Duration
	// ReplayFrom ("", "earliest" or an RFC 3339 time) rewinds the group's partitions once, when
	// this process is first assigned each of them; it never moves a partition forward past
	// unprocessed records.
	ReplayFrom string

	// DrainTimeout is how long a revoked partition, or a stopping consumer, lets an in-flight
	// handler call finish before its context is cancelled.
	DrainTimeout time.Duration
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout are the group membership timings.
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration
	// CommitInterval is how often marked offsets are committed in the background.
	CommitInterval time.Duration
	// FetchMaxWait is how long the broker may hold a fetch that has no new data. A partition whose
	// fetching resumes joins only the fetch after the one in flight, which, while every other
	// partition is paused or caught up, waits this long: keep it below the time half a partition
	// buffer takes to handle.
	FetchMaxWait time.Duration
	// LagInterval is how often partition end offsets are listed for the lag metric and readiness.
	LagInterval time.Duration
}

// DefaultConsumerConfig returns the defaults RegisterFlags installs, with group as the group.
func DefaultConsumerConfig(group string) ConsumerConfig {
	return ConsumerConfig{
		Group:             group,
		MaxPollRecords:    DefaultMaxPollRecords,
		PartitionBuffer:   DefaultPartitionBuffer,
		RetryBackoffMin:   DefaultRetryBackoffMin,
		RetryBackoffMax:   DefaultRetryBackoffMax,
		DrainTimeout:      DefaultDrainTimeout,
		SessionTimeout:    DefaultSessionTimeout,
		HeartbeatInterval: DefaultHeartbeatInterval,
		RebalanceTimeout:  DefaultRebalanceTimeout,
		CommitInterval:    DefaultCommitInterval,
		FetchMaxWait:      DefaultFetchMaxWait,
		LagInterval:       DefaultLagInterval,
	}
}

// RegisterFlags registers the consumer.* flags and replay-from on fs, with the defaults of
// DefaultConsumerConfig(defaultGroup).
func (c *ConsumerConfig) RegisterFlags(fs *flag.FlagSet, defaultGroup string) {
	d := DefaultConsumerConfig(defaultGroup)
	fs.StringVar(&c.Group, "consumer.group", d.Group, "Kafka consumer group")
	fs.IntVar(&c.MaxPollRecords, "consumer.max-poll-records", d.MaxPollRecords, "records per poll and per handler call, at most")
	fs.IntVar(&c.PartitionBuffer, "consumer.partition-buffer", d.PartitionBuffer, "records buffered per partition before its fetching pauses")
	config.DurationVar(fs, &c.RetryBackoffMin, "consumer.retry-backoff-min", d.RetryBackoffMin, "first backoff after a transient failure")
	config.DurationVar(fs, &c.RetryBackoffMax, "consumer.retry-backoff-max", d.RetryBackoffMax, "longest backoff after transient failures")
	fs.StringVar(&c.ReplayFrom, "replay-from", d.ReplayFrom, `replay the group's partitions from "earliest" or an RFC 3339 time (backfill; never skips unprocessed records)`)
	config.DurationVar(fs, &c.DrainTimeout, "consumer.drain-timeout", d.DrainTimeout, "how long an in-flight handler call may finish after its partition is revoked or the consumer stops")
	config.DurationVar(fs, &c.SessionTimeout, "consumer.session-timeout", d.SessionTimeout, "group session timeout")
	config.DurationVar(fs, &c.HeartbeatInterval, "consumer.heartbeat-interval", d.HeartbeatInterval, "group heartbeat interval")
	config.DurationVar(fs, &c.RebalanceTimeout, "consumer.rebalance-timeout", d.RebalanceTimeout, "group rebalance timeout")
	config.DurationVar(fs, &c.CommitInterval, "consumer.commit-interval", d.CommitInterval, "how often finished work is committed in the background")
	config.DurationVar(fs, &c.FetchMaxWait, "consumer.fetch-max-wait", d.FetchMaxWait, "how long the broker may hold a fetch without new data")
	config.DurationVar(fs, &c.LagInterval, "consumer.lag-interval", d.LagInterval, "how often end offsets are listed for the lag metric and readiness")
}

// Validate checks the configuration without contacting Kafka.
func (c ConsumerConfig) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Group) == "" {
		errs = append(errs, ErrGroup)
	}
	if c.MaxPollRecords < 1 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrMaxPollRecords, c.MaxPollRecords))
	}
	if c.PartitionBuffer < 1 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrPartitionBuf, c.PartitionBuffer))
	}
	if c.RetryBackoffMin <= 0 || c.RetryBackoffMax < c.RetryBackoffMin {
		errs = append(errs, fmt.Errorf("%w: min %s, max %s", ErrRetryBackoff, c.RetryBackoffMin, c.RetryBackoffMax))
	}
	if _, err := parseReplayFrom(c.ReplayFrom); err != nil {
		errs = append(errs, err)
	}
	if c.DrainTimeout <= 0 || c.SessionTimeout <= 0 || c.HeartbeatInterval <= 0 || c.RebalanceTimeout <= 0 ||
		c.HeartbeatInterval >= c.SessionTimeout || c.DrainTimeout >= c.RebalanceTimeout {
		errs = append(errs, fmt.Errorf("%w: drain %s, session %s, heartbeat %s, rebalance %s",
			ErrGroupTimeouts, c.DrainTimeout, c.SessionTimeout, c.HeartbeatInterval, c.RebalanceTimeout))
	}
	if c.CommitInterval < minCommitInterval || c.FetchMaxWait <= 0 || c.LagInterval <= 0 {
		errs = append(errs, fmt.Errorf("%w: commit %s, fetch max wait %s, lag %s", ErrIntervals, c.CommitInterval, c.FetchMaxWait, c.LagInterval))
	}
	return errors.Join(errs...)
}

// replayStart is a parsed ReplayFrom: nothing, the earliest offsets, or the first offsets at or
// after a time.
type replayStart struct {
	earliest bool
	at       time.Time
}

func (r replayStart) none() bool { return !r.earliest && r.at.IsZero() }

func parseReplayFrom(s string) (replayStart, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return replayStart{}, nil
	case strings.EqualFold(s, ReplayEarliest):
		return replayStart{earliest: true}, nil
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return replayStart{}, fmt.Errorf("%w: %q: %w", ErrReplayFrom, s, err)
	}
	return replayStart{at: at}, nil
}
