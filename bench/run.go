package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/notes"
	"github.com/threadline/threadline/pkg/stack"
)

// Run runs the whole benchmark: the package Benchmark* functions, then the four binaries as
// processes against a kfake broker, a redis-server and the fake Intercom (the limits first,
// then the throughput phase, then one latency row per coalescing setting), and returns what
// it measured. Progress goes to out.
func Run(ctx context.Context, cfg Config, out io.Writer, log *zap.Logger) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	began := time.Now()
	res := &Results{Date: began.UTC(), Config: cfg, Machine: Machine{
		CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version(),
		OSArch: runtime.GOOS + "/" + runtime.GOARCH, LoadAvg: loadAverage(),
	}}
	root, err := stack.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	workDir := cfg.WorkDir
	if !filepath.IsAbs(workDir) {
		workDir = filepath.Join(root, workDir)
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	if cfg.BenchTime != "" {
		pkgs, err := BenchmarkPackages(root)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "bench: package benchmarks (-benchtime %s, -count %d): %v\n", cfg.BenchTime, cfg.BenchCount, pkgs)
		micro, err := os.Create(filepath.Join(workDir, "micro.txt"))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		res.Micro, err = RunMicro(ctx, root, cfg.BenchTime, cfg.BenchCount, pkgs, io.MultiWriter(out, micro))
		micro.Close()
		if err != nil {
			return nil, err
		}
	}

	fmt.Fprintln(out, "bench: building the four binaries")
	binDir, err := filepath.Abs(filepath.Join(workDir, "bin"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := stack.Build(ctx, binDir); err != nil {
		return nil, err
	}
	s, err := startSystem(ctx, cfg, workDir, out, log)
	if err != nil {
		return nil, err
	}
	defer s.close()

	res.Budget = Budget{
		CallsPerMinute:      notes.DefaultConfig().RatePerMinute,
		AppLimitWindowCalls: fakeintercom.DefaultRateLimitPer10s,
	}
	if cfg.Has(PhaseLimits) {
		if err := s.measureLimits(ctx, res); err != nil {
			return nil, err
		}
	}
	if err := s.startAll(ctx); err != nil {
		return nil, err
	}
	if s.notes, err = watchNotes(ctx, s.brokers, s.topics.NotesWritten); err != nil {
		return nil, err
	}
	if cfg.Has(PhaseThroughput) {
		if err := s.runThroughput(ctx, res); err != nil {
			return nil, err
		}
	}
	if s.stages == nil {
		if s.stages, err = watchStages(ctx, s.brokers, s.topics.ProductActions, s.topics.ConversationActions); err != nil {
			return nil, err
		}
	}
	if cfg.Has(PhaseLatency) {
		for i, c := range cfg.Coalescing {
			co, err := ParseCoalescing(c)
			if err != nil {
				return nil, err
			}
			row, err := s.runLatency(ctx, res, co, i == 0)
			if err != nil {
				return nil, err
			}
			res.Rows = append(res.Rows, row)
		}
	}
	if cfg.Has(PhaseDirect) && len(cfg.Direct) > 0 {
		for _, name := range []string{"ingest", "linker", "summarizer"} {
			if err := s.stop(name); err != nil {
				return nil, fmt.Errorf("bench: stop %s: %w", name, err)
			}
		}
		for _, c := range cfg.Direct {
			co, err := ParseCoalescing(c)
			if err != nil {
				return nil, err
			}
			row, err := s.runDirect(ctx, co)
			if err != nil {
				return nil, err
			}
			res.Direct = append(res.Direct, row)
		}
	}
	for _, name := range stack.Services {
		s.notePeakRSS(name)
	}
	res.PeakRSS = s.peakRSS
	if res.DLQRecords, err = s.endOffsets(ctx, s.topics.DLQ); err != nil {
		return nil, err
	}
	if bad := s.notes.bad; bad > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d notes.written records did not decode", bad))
	}
	for i := range res.Profiles {
		if err := Summarize(ctx, &res.Profiles[i], 12); err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// measureLimits measures, on the run's own broker and Redis, what the pipeline is compared
// with: raw franz-go produce+consume and bare encoding/json parsing of the load's own records,
// redis-benchmark, and the Intercom budget.
func (s *system) measureLimits(ctx context.Context, res *Results) error {
	sample, err := SampleRecords(50)
	if err != nil {
		return err
	}
	s.progress("limit: franz-go produce+consume of %d raw records", s.cfg.LimitRecords)
	if res.Kafka, err = MeasureKafka(ctx, s.brokers, s.cfg.Partitions, s.cfg.LimitRecords, sample); err != nil {
		return err
	}
	s.progress("limit: encoding/json parse of the same records")
	if res.JSON, err = MeasureJSON(sample, 2*time.Second); err != nil {
		return err
	}
	s.progress("limit: redis-benchmark on the same Redis")
	if res.Redis, err = MeasureRedis(ctx, s.redis.Addr, s.cfg.RedisRequests, 50, 16); err != nil {
		return err
	}
	return nil
}

// SampleRecords returns the raw records of that many fresh journeys as the load generator
// produces them: capture output, keyed token:distinct_id.
func SampleRecords(journeys int) ([]Record, error) {
	var out []Record
	start := time.Now()
	for i := range journeys {
		j, err := demo.Fresh(start.Add(time.Duration(i)*time.Second), 10)
		if err != nil {
			return nil, fmt.Errorf("bench: sample: %w", err)
		}
		for _, ev := range j.Events {
			var head struct {
				Token      string `json:"token"`
				DistinctID string `json:"distinct_id"`
			}
			if err := json.Unmarshal(ev.Value, &head); err != nil {
				return nil, fmt.Errorf("bench: sample: %w", err)
			}
			out = append(out, Record{Key: []byte(head.Token + ":" + head.DistinctID), Value: ev.Value})
		}
	}
	return out, nil
}

func stackServices() []string { return stack.Services }

// sortedServices returns the services of m in pipeline order, then any others by name.
func sortedServices(m map[string]int64) []string {
	var out []string
	for _, s := range stack.Services {
		if _, ok := m[s]; ok {
			out = append(out, s)
		}
	}
	var rest []string
	for s := range m {
		found := false
		for _, k := range stack.Services {
			found = found || k == s
		}
		if !found {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}
