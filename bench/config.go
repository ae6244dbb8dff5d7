package bench

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// Errors returned by Config.Validate.
var (
	ErrWorkDir       = errors.New("bench: work-dir is required")
	ErrPartitions    = errors.New("bench: partitions must be at least 1")
	ErrSessions      = errors.New("bench: session counts must be at least 1")
	ErrRate          = errors.New("bench: rates must be positive")
	ErrShare         = errors.New("bench: conversation shares must be between 0 and 1")
	ErrDuration      = errors.New("bench: durations must be positive")
	ErrCoalescing    = errors.New(`bench: rows must be "default" or <debounce>/<max-wait>, optionally +<notes flag>=<value> and @<count>x<rate>, e.g. 150ms/800ms+flush-concurrency=32@300x600`)
	ErrPhases        = errors.New("bench: phases must be among limits, throughput, latency, direct")
	ErrLimitSizes    = errors.New("bench: limit-records and redis-requests must be at least 1000")
	ErrProfileWindow = errors.New("bench: profile-seconds must be between 1 and 60")
)

// Config configures one run of the pipeline benchmark. DefaultConfig holds every default;
// RegisterFlags exposes each field as a bench.* flag (THREADLINE_BENCH_* in the environment).
type Config struct {
	// WorkDir holds the binaries, the service logs, the profiles and the package benchmarks'
	// output. Results is the Markdown file the table is written to ("" writes none).
	WorkDir string
	Results string
	// Readme is the Markdown file whose bench markers get the main table ("" writes none).
	Readme string
	// BenchTime is -benchtime for the package Benchmark* functions run first ("" skips them).
	BenchTime string
	// BenchCount is how often each package benchmark runs; the report takes the median of each
	// figure (single short runs on a shared VM swing by a fifth).
	BenchCount int
	// Partitions of every topic, as THREADLINE_KAFKA_TOPIC_PARTITIONS.
	Partitions int

	// The throughput phase: a backlog of ThroughputSessions journeys drained by ingest, then by
	// the linker; ThroughputShare of the users opened a conversation.
	ThroughputSessions int
	ThroughputShare    float64

	// The latency rows: LatencySessions users at LatencyRate events/s for LatencyDuration, a
	// LatencyShare of whom open a conversation; one row per Coalescing setting of the notewriter
	// ("default", or debounce/max-wait), optionally with other notes.* settings after a "+"
	// ("150ms/800ms+flush-concurrency=32").
	LatencySessions int
	LatencyRate     float64
	LatencyShare    float64
	LatencyDuration time.Duration
	Coalescing      []string

	// The direct rows: the notewriter alone, fed actions straight on conversation.actions (one
	// action per record, to conversations picked at random) for DirectDuration; each row is a
	// notewriter setting as in Coalescing, with its load as @<conversations>x<actions/s>
	// (DirectConversations and DirectRate when it has none).
	Direct              []string
	DirectConversations int
	DirectRate          float64
	DirectDuration      time.Duration

	// Phases lists the phases to run, in their fixed order: limits, throughput, latency, direct.
	Phases []string

	// DrainTimeout bounds each wait for the pipeline to finish its work.
	DrainTimeout time.Duration
	// LimitRecords is how many records the raw franz-go produce+consume limit moves;
	// RedisRequests is redis-benchmark's -n.
	LimitRecords  int
	RedisRequests int
	// Profile takes CPU and allocation profiles of the services under load, ProfileSeconds
	// long, from /debug/pprof/ on each service's admin address.
	Profile        bool
	ProfileSeconds int
}

// DefaultConfig returns the defaults: sized so that `make bench` finishes in well under ten
// minutes on two shared cores.
func DefaultConfig() Config {
	return Config{
		WorkDir:             ".run/bench",
		Results:             "bench/RESULTS.md",
		Readme:              "README.md",
		BenchTime:           "200ms",
		BenchCount:          3,
		Partitions:          6,
		ThroughputSessions:  3000,
		ThroughputShare:     0.1,
		LatencySessions:     1000,
		LatencyRate:         2000,
		LatencyShare:        0.1,
		LatencyDuration:     40 * time.Second,
		Coalescing:          []string{"default", LatencyTuned},
		Direct:              []string{"default", LatencyTuned + "@60x120"},
		DirectConversations: 1000,
		DirectRate:          2000,
		DirectDuration:      40 * time.Second,
		Phases:              []string{PhaseLimits, PhaseThroughput, PhaseLatency, PhaseDirect},
		DrainTimeout:        90 * time.Second,
		LimitRecords:        50000,
		RedisRequests:       200000,
		Profile:             true,
		ProfileSeconds:      5,
	}
}

// Phases of a run.
const (
	PhaseLimits     = "limits"
	PhaseThroughput = "throughput"
	PhaseLatency    = "latency"
	PhaseDirect     = "direct"
)

// LatencyTuned is the notewriter setting of the latency-tuned rows: a short debounce and
// max-wait, for notes within a second at the load the Intercom budget allows (with redactions,
// which wait behind notes, catching up later).
const LatencyTuned = "200ms/600ms"

// RegisterFlags registers the bench.* flags with the defaults of DefaultConfig.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.WorkDir, "bench.work-dir", d.WorkDir, "directory for the binaries, service logs, profiles and package benchmark output")
	fs.StringVar(&c.Results, "bench.results", d.Results, `Markdown file the results table is written to ("" writes none)`)
	fs.StringVar(&c.Readme, "bench.readme", d.Readme, `Markdown file whose `+ReadmeBegin+` … `+ReadmeEnd+` section gets the main table ("" writes none)`)
	fs.StringVar(&c.BenchTime, "bench.benchtime", d.BenchTime, `-benchtime of the package Benchmark* functions run first ("" skips them)`)
	fs.IntVar(&c.BenchCount, "bench.count", d.BenchCount, "runs of each package benchmark; the report takes the median of each figure")
	fs.IntVar(&c.Partitions, "bench.partitions", d.Partitions, "partitions of every topic")
	fs.IntVar(&c.ThroughputSessions, "bench.throughput-sessions", d.ThroughputSessions, "journeys in the backlog ingest and the linker drain")
	fs.Float64Var(&c.ThroughputShare, "bench.throughput-share", d.ThroughputShare, "share of the backlog's users who open a conversation")
	fs.IntVar(&c.LatencySessions, "bench.latency-sessions", d.LatencySessions, "users active at once in the latency rows")
	fs.Float64Var(&c.LatencyRate, "bench.latency-rate", d.LatencyRate, "events per second of the latency rows")
	fs.Float64Var(&c.LatencyShare, "bench.latency-share", d.LatencyShare, "share of the latency rows' users who open a conversation")
	fs.DurationVar(&c.LatencyDuration, "bench.latency-duration", d.LatencyDuration, "how long each latency row plays its load")
	config.StringListVar(fs, &c.Coalescing, "bench.coalescing", d.Coalescing, `notewriter setting of each latency row: "default" or <debounce>/<max-wait>, optionally +<notes flag>=<value>, and @<sessions>x<events/s> for a load of its own`)
	config.StringListVar(fs, &c.Direct, "bench.direct", d.Direct, `notewriter setting of each direct row (the notewriter alone, actions straight on conversation.actions), as bench.coalescing with @<conversations>x<actions/s>`)
	fs.IntVar(&c.DirectConversations, "bench.direct-conversations", d.DirectConversations, "conversations of a direct row without a load of its own")
	fs.Float64Var(&c.DirectRate, "bench.direct-rate", d.DirectRate, "actions per second of a direct row without a load of its own")
	fs.DurationVar(&c.DirectDuration, "bench.direct-duration", d.DirectDuration, "how long each direct row plays its load")
	config.StringListVar(fs, &c.Phases, "bench.phases", d.Phases, "phases to run: limits, throughput, latency, direct")
	fs.DurationVar(&c.DrainTimeout, "bench.drain-timeout", d.DrainTimeout, "longest wait for the pipeline to finish its work")
	fs.IntVar(&c.LimitRecords, "bench.limit-records", d.LimitRecords, "records of the raw franz-go produce+consume limit")
	fs.IntVar(&c.RedisRequests, "bench.redis-requests", d.RedisRequests, "requests of each redis-benchmark test")
	fs.BoolVar(&c.Profile, "bench.profile", d.Profile, "profile the services under load (CPU and allocations)")
	fs.IntVar(&c.ProfileSeconds, "bench.profile-seconds", d.ProfileSeconds, "length of each CPU profile")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.WorkDir) == "" {
		errs = append(errs, ErrWorkDir)
	}
	if c.Partitions < 1 {
		errs = append(errs, ErrPartitions)
	}
	if c.ThroughputSessions < 1 || c.LatencySessions < 1 {
		errs = append(errs, ErrSessions)
	}
	if !(c.LatencyRate > 0) {
		errs = append(errs, ErrRate)
	}
	for _, s := range []float64{c.ThroughputShare, c.LatencyShare} {
		if !(s >= 0 && s <= 1) {
			errs = append(errs, fmt.Errorf("%w: %g", ErrShare, s))
		}
	}
	if c.DirectConversations < 1 {
		errs = append(errs, ErrSessions)
	}
	if !(c.DirectRate > 0) {
		errs = append(errs, ErrRate)
	}
	for _, p := range c.Phases {
		if !slices.Contains([]string{PhaseLimits, PhaseThroughput, PhaseLatency, PhaseDirect}, p) {
			errs = append(errs, fmt.Errorf("%w: %q", ErrPhases, p))
		}
	}
	if c.LatencyDuration <= 0 || c.DirectDuration <= 0 || c.DrainTimeout <= 0 {
		errs = append(errs, ErrDuration)
	}
	for _, s := range append(slices.Clone(c.Coalescing), c.Direct...) {
		if _, err := ParseCoalescing(s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.LimitRecords < 1000 || c.RedisRequests < 1000 {
		errs = append(errs, ErrLimitSizes)
	}
	if c.Profile && (c.ProfileSeconds < 1 || c.ProfileSeconds > 60) {
		errs = append(errs, ErrProfileWindow)
	}
	return errors.Join(errs...)
}

// Coalescing is the notewriter's setting in one latency row: its coalescing, and any other
// notes.* settings.
type Coalescing struct {
	Name              string
	Debounce, MaxWait time.Duration // zero: the notewriter's defaults
	Extra             []string      // more notes.* settings, as name=value
	// Count and Rate are the row's own load (sessions and events/s of a latency row,
	// conversations and actions/s of a direct row); zero: the configured load.
	Count int
	Rate  float64
}

// Has reports whether the run includes phase.
func (c Config) Has(phase string) bool { return slices.Contains(c.Phases, phase) }

// Env returns the notewriter environment of the setting.
func (c Coalescing) Env() []string {
	var env []string
	if c.Debounce != 0 || c.MaxWait != 0 {
		env = append(env,
			config.EnvName("notes.debounce")+"="+c.Debounce.String(),
			config.EnvName("notes.max-wait")+"="+c.MaxWait.String())
	}
	for _, kv := range c.Extra {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, config.EnvName("notes."+k)+"="+v)
	}
	return env
}

// ParseCoalescing reads "default" or "<debounce>/<max-wait>", each optionally followed by
// "+<notes flag>=<value>" settings.
func ParseCoalescing(s string) (Coalescing, error) {
	s = strings.TrimSpace(s)
	co := Coalescing{Name: s}
	setting, load, hasLoad := strings.Cut(s, "@")
	if hasLoad {
		n, r, ok := strings.Cut(load, "x")
		count, err1 := strconv.Atoi(n)
		rate, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil || count < 1 || !(rate > 0) {
			return Coalescing{}, fmt.Errorf("%w: %q", ErrCoalescing, s)
		}
		co.Count, co.Rate = count, rate
	}
	parts := strings.Split(setting, "+")
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || strings.ContainsAny(k, " /") {
			return Coalescing{}, fmt.Errorf("%w: %q", ErrCoalescing, s)
		}
		co.Extra = append(co.Extra, strings.TrimSpace(k)+"="+strings.TrimSpace(v))
	}
	if parts[0] == "default" {
		return co, nil
	}
	deb, wait, ok := strings.Cut(parts[0], "/")
	if !ok {
		return Coalescing{}, fmt.Errorf("%w: %q", ErrCoalescing, s)
	}
	d, err1 := time.ParseDuration(deb)
	w, err2 := time.ParseDuration(wait)
	if err1 != nil || err2 != nil || d < 0 || w <= 0 || w < d {
		return Coalescing{}, fmt.Errorf("%w: %q", ErrCoalescing, s)
	}
	co.Debounce, co.MaxWait = d, w
	return co, nil
}
