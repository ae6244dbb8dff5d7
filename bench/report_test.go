package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/fakeintercom"
)

const moreBenchmarks = `pkg: github.com/threadline/threadline/linker
BenchmarkLinkedActions-2   	       4	  57429268 ns/op	         0.2083 actions/SET	     26119 actions/s	        18.74 linker-cpu-µs/action	    267380 redis-GET/s	    125392 redis-SET/s	        10.17 redis-cpu-µs/action	 5284938 B/op	   62532 allocs/op
pkg: github.com/threadline/threadline/pkg/triggers
BenchmarkMatch-2                      	    3441	     86354 ns/op	       265.7 ns/action	       0 B/op	       0 allocs/op
BenchmarkRiding/matching=2%-2          	     600	   1200000 ns/op	       562.0 cpu-ns/action	         2.000 events/batch	       300.0 process-ns/action	       262.0 redis-ns/action	  100000 B/op	    1000 allocs/op
BenchmarkRiding/matching=10%-2         	     600	   2200000 ns/op	      2400 cpu-ns/action	        10.00 events/batch	      1300 process-ns/action	      1100 redis-ns/action	  200000 B/op	    2000 allocs/op
`

// sampleResults is a run with round figures, so that every ratio is known.
func sampleResults() *Results {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	drain := func(service, topic string, perSec, perCPUSec float64) Drain {
		// 1,000 records between the 10% and 90% samples: 1,250 in all
		wall := time.Duration(1000 / perSec * float64(time.Second))
		return Drain{Service: service, Topic: topic, Target: 1250, Samples: []Sample{
			{At: t0, Value: 125},
			{At: t0.Add(wall), Value: 1125, CPU: time.Duration(1000 / perCPUSec * float64(time.Second)), Bench: wall / 5},
		}, HandleSeconds: 3 * wall.Seconds(), HandleCalls: 3}
	}
	lat := make([]time.Duration, 0, 100)
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*20*time.Millisecond) // p99 1.98 s
	}
	cfg := DefaultConfig()
	return &Results{
		Date:    t0,
		Config:  cfg,
		Elapsed: 5 * time.Minute,
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", GoVersion: "go1.26", OSArch: "linux/amd64", LoadAvg: "1.00 1.00 1.00"},
		Micro:   ParseMicro(goTestOutput + moreBenchmarks),
		Kafka:   KafkaLimit{Records: 40000, Duration: time.Second},
		JSON:    JSONLimit{Events: 50000, Wall: time.Second, CPU: time.Second},
		Redis: RedisLimit{Pipeline: 16, Clients: 50, Figures: []RedisFigure{
			{"SET", 200000}, {"GET", 300000}, {"EVAL", 50000},
		}},
		Budget: Budget{CallsPerMinute: 6000, AppLimitWindowCalls: fakeintercom.DefaultRateLimitPer10s},
		Throughput: Throughput{
			Events: 57000, Actions: 51000,
			Ingest: drain("ingest", "posthog.events.raw", 10000, 20000), Linker: drain("linker", "product.actions", 5000, 25000),
			Conversations: 300, Lines: 4800, NoteCalls: 480,
		},
		Rows: []LatencyRow{{
			Coalescing: Coalescing{Name: "default", Debounce: time.Second, MaxWait: 5 * time.Second},
			Sessions:   1000, Rate: 2000, Duration: 40 * time.Second, Events: 80000, Conversations: 100,
			Notes: 1000, Summaries: 50, Lines: 4000, LiveLines: 100,
			NotewriterActivity: NotewriterActivity{
				NoteCalls:  1200,
				Calls:      map[string]int{fakeintercom.EndpointReply: 1050, fakeintercom.EndpointRedact: 150},
				Notewriter: map[string]float64{NotewriterBudgetWaits: 7, NotewriterBudgetWaitSeconds: 1.25, NotewriterHandleSeconds: 2, NotewriterHandleCalls: 400},
			},
			Latencies: lat,
			Stages: map[string][]time.Duration{
				StageIngest: {10 * time.Millisecond, 30 * time.Millisecond}, StageLinker: {20 * time.Millisecond},
				StageNotewriter: {1500 * time.Millisecond},
			},
			CPU:     map[string]time.Duration{"ingest": 12 * time.Second, BenchProcess: 20 * time.Second},
			LoadAvg: "3.00 2.00 1.00",
		}},
		PeakRSS:    map[string]int64{"ingest": 75 << 20, "notewriter": 200 << 20},
		DLQRecords: 0,
		Profiles: []Profile{{Service: "ingest", Kind: ProfileCPU, Stage: "backlog", Total: "Showing nodes accounting for 1s, 50% of 2s total",
			Top: []TopEntry{{Flat: "0.5s", FlatPct: "25%", Cum: "1s", CumPct: "50%", Function: "encoding/json.(*decodeState).object"}}}},
		Problems: []string{"something odd"},
	}
}

func findRow(t *testing.T, rows []Row, prefix string) Row {
	t.Helper()
	for _, r := range rows {
		if strings.HasPrefix(r.Figure, prefix) {
			return r
		}
	}
	t.Fatalf("no row %q among %d", prefix, len(rows))
	return Row{}
}

func TestPipelineRowsSetEachFigureBesideItsLimit(t *testing.T) {
	rows := sampleResults().PipelineRows()
	for _, tc := range []struct {
		prefix                  string
		measured, ratio, meets  string
		limitMentions, targetIs string
	}{
		{"ingest events/s", "10,000", "0.25", "no", "40,000 records/s", "≥ 60,000"},
		{"ingest events per CPU-second", "20,000", "0.40", "", "50,000 events per CPU-second", ""},
		// the sample's only shape, 34,950 per CPU-second beside encoding/json's 33,686
		{"normalise events per CPU-second, the slowest of 1 shapes: events_plugin_ingestion", "34,950", "1.04", "no", "33,686", "≥ 100,000/s/core, every shape"},
		// 562 ns beside the linker's 40 µs per action in the pipeline run (no Redis figure in the sample)
		{"trigger rules' cost per action, 20 rules, matching=2%", "562ns", "0.01", "yes", "in the pipeline run, its process (Kafka included) + redis-server: 40µs", "≤ 5% of the linker's cost per action"},
		{"linker actions/s", "5,000", "0.03", "no", "200,000 requests/s", "≥ 50,000"},
		{"linker actions per CPU-second", "25,000", "0.50", "", "50,000 requests/s", ""},
		{"notewriter calls per action, backlog", "0.100", "0.50", "yes", "target", "≤ 0.2"},
		// 4,000 lines in 40 s = 100 actions/s; a budget of 100 calls/s allows 1 call per action
		{"notewriter calls per action, default", "0.300", "0.30", "no", "1.000", "≤ 0.2"},
		{"Intercom calls/s, default", "30.0", "0.30", "yes", "100.0/s", "< 1 × budget, no 429"},
		{"e2e latency event → note stored p50 / p95 / p99, default", "1s / 1.9s / 1.98s", "1.98", "no", "p99 1s", "p99 ≤ 1s"},
		{"peak RSS (VmHWM) of ingest", "75.0 MB", "0.50", "yes", "target", "≤ 150 MB"},
		{"peak RSS (VmHWM) of notewriter", "200.0 MB", "1.33", "no", "target", "≤ 150 MB"},
	} {
		r := findRow(t, rows, tc.prefix)
		if r.Measured != tc.measured || r.Ratio != tc.ratio || r.Meets != tc.meets || !strings.Contains(r.Limit, tc.limitMentions) || r.Target != tc.targetIs {
			t.Errorf("%s: got %+v\nwant measured %q ratio %q meets %q limit ~%q target %q", tc.prefix, r, tc.measured, tc.ratio, tc.meets, tc.limitMentions, tc.targetIs)
		}
	}
	// services in pipeline order
	if i, j := indexOf(rows, "peak RSS (VmHWM) of ingest"), indexOf(rows, "peak RSS (VmHWM) of notewriter"); i > j {
		t.Error("peak RSS rows are not in pipeline order")
	}
}

func indexOf(rows []Row, prefix string) int {
	for i, r := range rows {
		if strings.HasPrefix(r.Figure, prefix) {
			return i
		}
	}
	return -1
}

func TestMicroRowsCarryTheKeyPackageFigures(t *testing.T) {
	rows := sampleResults().MicroRows()
	n := findRow(t, rows, "normalize/events_plugin_ingestion events per CPU-second")
	if n.Measured != "34,950" || n.Ratio != "1.04" || n.Meets != "no" || !strings.Contains(n.Limit, "33,686") {
		t.Errorf("normalise: %+v", n)
	}
	r := findRow(t, rows, "linker RouteBatch/forward actions/s")
	if r.Measured != "50,723" || r.Ratio != "0.25" || r.Meets != "yes" {
		t.Errorf("route batch: %+v", r)
	}
	c := findRow(t, rows, "consumer loop records/s")
	if c.Ratio != "3.01" {
		t.Errorf("consumer: %+v", c)
	}
	l := findRow(t, rows, "linker Handle")
	if l.Measured != "26,119" || l.Ratio != "0.21" || l.Meets != "no" {
		t.Errorf("linker handle: %+v", l)
	}
	m := findRow(t, rows, "rule evaluation Match")
	// 265.7 ns beside the linker's 40 µs of CPU per action in the run
	if m.Measured != "265ns" || m.Ratio != "0.01" || !strings.Contains(m.Limit, "40µs") {
		t.Errorf("match: %+v", m)
	}
	// 2.4 µs beside the linker's 40 µs in the pipeline run: 6%; beside Handle (18.74 + 10.17 µs): 8.3%
	e := findRow(t, rows, "trigger rules' cost per action, 20 rules, matching=10%")
	if e.Measured != "2.4µs" || e.Ratio != "0.06" || e.Meets != "no" || !strings.Contains(e.Limit, "28.91µs (8.3%)") {
		t.Errorf("rule cost at 10%%: %+v", e)
	}
	// Without the pipeline run, Handle is the measure.
	noPipeline := sampleResults()
	noPipeline.Throughput = Throughput{}
	if e := findRow(t, noPipeline.MicroRows(), "trigger rules' cost per action, 20 rules, matching=2%"); e.Ratio != "0.02" || e.Meets != "yes" || !strings.Contains(e.Limit, "Handle alone") {
		t.Errorf("rule cost without the pipeline run: %+v", e)
	}

	none := sampleResults()
	none.Micro = ParseMicro(goTestOutput)
	if r := findRow(t, none.MicroRows(), "trigger rules' cost per action (pkg/triggers BenchmarkRiding)"); r.Measured != "not in this run" {
		t.Errorf("missing rule cost benchmark: %+v", r)
	}
	if rows := (&Results{}).MicroRows(); len(rows) != 0 {
		t.Errorf("no package benchmarks run, yet rows %+v", rows)
	}
}

func TestMarkdownReportHasTheMachineTablesProfilesAndProblems(t *testing.T) {
	var sb strings.Builder
	sampleResults().WriteMarkdown(&sb)
	md := sb.String()
	for _, want := range []string{
		"# Threadline pipeline benchmark",
		"Run 2026-01-01 00:00 UTC on 2 × Test CPU (nproc 2), go1.26 linux/amd64",
		"| Figure | Measured | Limit beside it (same run) | Ratio | Target | Meets |",
		"| ingest events/s, end to end",
		"## Package benchmarks",
		"## Profiles under load",
		"### ingest, cpu, draining the backlog alone",
		"| 0.5s | 25% | 1s | 50% | encoding/json.(*decodeState).object |",
		"## Every package benchmark",
		"| pkg/redact | URL/https://app.acme.dev/checkout?plan=pro&coupon=X#top | 9,970 | 56 | 2 |  |",
		"POST /conversations/redact: 150; POST /conversations/{id}/reply: 1050",
		"Dead-lettered records during the run: 0.",
		"| ingest (posthog.events.raw) | 1,250 | 100ms | 10,000 | 0.50 | 0.20 | 3 | 417 | 100ms | 3.00 |",
		"| linker (product.actions) | 1,250 | 200ms | 5,000 | 0.20 | 0.20 | 3 | 417 | 200ms | 3.00 |",
		"| default | ingest: event time → on product.actions | 10ms | 30ms | 30ms | 2 |",
		"| default | notewriter: conversation.actions → note stored | 1.5s | 1.5s | 1.5s | 1 |",
		"| Latency row | ingest | linker | notewriter | summarizer | benchmark process | load average after |",
		"| default | 0.30 |  |  |  | 0.50 | 3.00 2.00 1.00 |",
		"| default | 7 | 1.2 | 0 | 400 | 5ms |",
		"- something odd",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "/work/") || strings.Contains(md, "/tmp/") {
		t.Error("the report names a machine path")
	}

	var summary strings.Builder
	sampleResults().WriteSummary(&summary)
	if !strings.Contains(summary.String(), "| linker actions/s") || !strings.Contains(summary.String(), "problem: something odd") {
		t.Errorf("summary:\n%s", summary.String())
	}
}

func TestNumbersAreWrittenForPeople(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 61234.4: "61,234", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := fmtInt(v); got != want {
			t.Errorf("fmtInt(%g) = %s, want %s", v, got, want)
		}
	}
	if got := ratio(1, 0); got != "—" {
		t.Errorf("ratio over nothing = %s", got)
	}
	if got := cell("a|b"); got != `a\|b` {
		t.Errorf("cell = %s", got)
	}
}
