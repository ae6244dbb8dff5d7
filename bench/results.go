package bench

import (
	"math"
	"sort"
	"time"
)

// Results is everything one run measured.
type Results struct {
	Date    time.Time
	Machine Machine
	Config  Config
	Elapsed time.Duration

	Micro []MicroResult

	Kafka  KafkaLimit
	JSON   JSONLimit
	Redis  RedisLimit
	Budget Budget

	Throughput Throughput
	Rows       []LatencyRow
	Direct     []DirectRow
	PeakRSS    map[string]int64 // service → bytes
	Profiles   []Profile
	DLQRecords int64
	// Problems are what went wrong without stopping the run; the report lists them.
	Problems []string
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	OSArch    string
	LoadAvg   string // at the start of the run
}

// Sample is one reading of a service's consumed-records counter, its process CPU time, and the
// CPU time of the benchmark's own process (the kfake broker).
type Sample struct {
	At    time.Time
	Value float64
	CPU   time.Duration // the service's CPU time
	Bench time.Duration // the benchmark process's (the broker's)
	Redis time.Duration // the redis-server's
}

// Drain is one service working through a backlog.
type Drain struct {
	Service string
	Topic   string
	Target  int // records in the backlog
	Samples []Sample
	// HandleSeconds and HandleCalls are the consumer's handler time and calls for the topic
	// over the whole drain (threadline_consumer_handle_seconds).
	HandleSeconds, HandleCalls float64
}

// Cores returns how many cores the service and the benchmark process (the broker) kept busy
// between 10% and 90% of the backlog.
func (d Drain) Cores() (service, bench float64) {
	from, to, ok := d.Window(0.1, 0.9)
	if !ok {
		if len(d.Samples) < 2 {
			return 0, 0
		}
		from, to = d.Samples[0], d.Samples[len(d.Samples)-1]
	}
	wall := to.At.Sub(from.At).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	return (to.CPU - from.CPU).Seconds() / wall, (to.Bench - from.Bench).Seconds() / wall
}

// Elapsed is the time from the first sample to the last.
func (d Drain) Elapsed() time.Duration {
	if len(d.Samples) < 2 {
		return 0
	}
	return d.Samples[len(d.Samples)-1].At.Sub(d.Samples[0].At)
}

// Window returns the two samples where the counter first reached lo and hi of the target (as
// fractions); the start-up and the tail fall outside it. ok is false when the samples are too
// few to tell.
func (d Drain) Window(lo, hi float64) (from, to Sample, ok bool) {
	first := func(frac float64) (Sample, bool) {
		for _, s := range d.Samples {
			if s.Value >= frac*float64(d.Target) {
				return s, true
			}
		}
		return Sample{}, false
	}
	from, ok1 := first(lo)
	to, ok2 := first(hi)
	if !ok1 || !ok2 || !to.At.After(from.At) {
		return Sample{}, Sample{}, false
	}
	return from, to, true
}

// Rate is the records per second between 10% and 90% of the backlog (or over every sample
// when the backlog went by too fast to tell).
func (d Drain) Rate() float64 {
	from, to, ok := d.Window(0.1, 0.9)
	if !ok {
		if len(d.Samples) < 2 {
			return 0
		}
		from, to = d.Samples[0], d.Samples[len(d.Samples)-1]
		if !to.At.After(from.At) {
			return 0
		}
	}
	return (to.Value - from.Value) / to.At.Sub(from.At).Seconds()
}

// PerCPUSecond is the records per second of the process's CPU time over the same window: the
// per-core rate, which another process's load on the machine does not lower.
func (d Drain) PerCPUSecond() float64 {
	from, to, ok := d.Window(0.1, 0.9)
	if !ok && len(d.Samples) >= 2 {
		from, to = d.Samples[0], d.Samples[len(d.Samples)-1]
	}
	if cpu := to.CPU - from.CPU; cpu > 0 {
		return (to.Value - from.Value) / cpu.Seconds()
	}
	return 0
}

// CostPerRecord is the CPU time the service and the redis-server spent per record over the same
// window: what a record costs the service with the Redis work it causes.
func (d Drain) CostPerRecord() time.Duration {
	from, to, ok := d.Window(0.1, 0.9)
	if !ok && len(d.Samples) >= 2 {
		from, to = d.Samples[0], d.Samples[len(d.Samples)-1]
	}
	records := to.Value - from.Value
	if records <= 0 || to.CPU <= from.CPU {
		return 0
	}
	return time.Duration(float64(to.CPU-from.CPU+to.Redis-from.Redis) / records)
}

// Throughput is the backlog phase: ingest, then the linker, each draining a backlog alone.
type Throughput struct {
	Sessions       int
	Events         int     // raw events in the backlog
	Bytes          int64   // their size
	ProduceRate    float64 // events/s the load generator put them on the broker at
	Ingest         Drain
	Actions        int // product.actions ingest produced from them
	Linker         Drain
	Conversations  int
	Lines          int // action lines the notewriter wrote for the backlog's conversations
	NoteCalls      int // notewriter calls to Intercom meanwhile
	SettleDuration time.Duration
}

// NotewriterActivity is what the notewriter did with Intercom over a row, from the start of its
// load until the pipeline settled.
type NotewriterActivity struct {
	Calls       map[string]int
	NoteCalls   int // the notewriter's calls (notes, redactions, reads, data events)
	RateLimited int // 429s the fake answered
	// Notewriter holds the notewriter's own counters over the row (the Notewriter* metrics).
	Notewriter map[string]float64
	Settle     time.Duration
	// Active is the time from the start of the load to the last Intercom call or note of the row.
	Active time.Duration
}

// LatencyRow is one paced run at the target load under one coalescing setting.
type LatencyRow struct {
	Coalescing    Coalescing
	Sessions      int
	Rate          float64 // configured events/s
	Duration      time.Duration
	Events        int
	Conversations int
	Notes         int // actions notes
	Summaries     int // summary notes
	Lines         int // action lines in notes
	LiveLines     int // lines of live (not pre-conversation) notes: the latency sample
	NotewriterActivity
	Latencies []time.Duration
	// Stages splits the latency of the live lines by stage (StageOrder()).
	Stages map[string][]time.Duration
	// CPU is each process's CPU time while the load played (BenchProcess: the kfake broker, the
	// load generator and the watchers); LoadAvg is the machine's load average after it.
	CPU     map[string]time.Duration
	LoadAvg string
}

// BenchProcess names the benchmark's own process in LatencyRow.CPU.
const BenchProcess = "benchmark process"

// CallsPerAction is the notewriter's Intercom calls per action line written.
func (r LatencyRow) CallsPerAction() float64 {
	if r.Lines == 0 {
		return 0
	}
	return float64(r.NoteCalls) / float64(r.Lines)
}

// CallsPerSecond is the notewriter's calls per second from the start of the load to its last
// call (the load's duration when that is unknown).
func (r LatencyRow) CallsPerSecond() float64 {
	d := r.Active
	if d <= 0 {
		d = r.Duration
	}
	if d <= 0 {
		return 0
	}
	return float64(r.NoteCalls) / d.Seconds()
}

// Percentile returns the p-th percentile (0..100, nearest rank) of the latencies.
func (r LatencyRow) Percentile(p float64) time.Duration {
	return Percentile(r.Latencies, p)
}

// Percentile returns the p-th percentile (0..100, nearest rank) of ds; zero for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}
