package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/loadgen"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

func TestConfigDefaultsAreValidAndMistakesNamed(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{"no work dir", func(c *Config) { c.WorkDir = " " }, ErrWorkDir},
		{"no partitions", func(c *Config) { c.Partitions = 0 }, ErrPartitions},
		{"no sessions", func(c *Config) { c.LatencySessions = 0 }, ErrSessions},
		{"no rate", func(c *Config) { c.LatencyRate = 0 }, ErrRate},
		{"share", func(c *Config) { c.ThroughputShare = 2 }, ErrShare},
		{"duration", func(c *Config) { c.LatencyDuration = 0 }, ErrDuration},
		{"coalescing", func(c *Config) { c.Coalescing = []string{"fast"} }, ErrCoalescing},
		{"max-wait below debounce", func(c *Config) { c.Coalescing = []string{"2s/1s"} }, ErrCoalescing},
		{"limit sizes", func(c *Config) { c.LimitRecords = 10 }, ErrLimitSizes},
		{"profile window", func(c *Config) { c.ProfileSeconds = 0 }, ErrProfileWindow},
	} {
		cfg := DefaultConfig()
		tc.change(&cfg)
		if err := cfg.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCoalescingSettingsBecomeNotewriterEnvironment(t *testing.T) {
	d, err := ParseCoalescing("default")
	if err != nil || d.Env() != nil {
		t.Fatalf("default: %+v %v; want no environment", d, err)
	}
	fast, err := ParseCoalescing(" 150ms/800ms ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"THREADLINE_NOTES_DEBOUNCE=150ms", "THREADLINE_NOTES_MAX_WAIT=800ms"}
	if got := fast.Env(); !slices.Equal(got, want) {
		t.Fatalf("env %v, want %v", got, want)
	}
	wider, err := ParseCoalescing("150ms/800ms+flush-concurrency=32+poll-interval=50ms")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "THREADLINE_NOTES_FLUSH_CONCURRENCY=32", "THREADLINE_NOTES_POLL_INTERVAL=50ms")
	if got := wider.Env(); !slices.Equal(got, want) || wider.Name != "150ms/800ms+flush-concurrency=32+poll-interval=50ms" {
		t.Fatalf("env %v (%s), want %v", got, wider.Name, want)
	}
	only, err := ParseCoalescing("default+flush-concurrency=32")
	if err != nil || !slices.Equal(only.Env(), []string{"THREADLINE_NOTES_FLUSH_CONCURRENCY=32"}) {
		t.Fatalf("default with a setting: %v %v", only.Env(), err)
	}
	loaded, err := ParseCoalescing("200ms/500ms+poll-interval=50ms@300x600")
	if err != nil || loaded.Count != 300 || loaded.Rate != 600 || loaded.MaxWait != 500*time.Millisecond ||
		!slices.Equal(loaded.Env()[2:], []string{"THREADLINE_NOTES_POLL_INTERVAL=50ms"}) {
		t.Fatalf("with a load: %+v %v", loaded, err)
	}
	for _, bad := range []string{"150ms/800ms+=3", "default+flush concurrency=3", "default+x", "1s", "1s/x",
		"default@", "default@10", "default@0x5", "default@10x0", "default@ax5"} {
		if _, err := ParseCoalescing(bad); !errors.Is(err, ErrCoalescing) {
			t.Errorf("%q: %v, want ErrCoalescing", bad, err)
		}
	}
}

func TestCoalescingBoundIsThePhysics(t *testing.T) {
	// 2 actions/s per conversation written within 2 s: at least one call per 5 actions.
	cpa, minWait := CoalescingBound(2, 2*time.Second, 1000, 8000.0/60)
	if math.Abs(cpa-0.2) > 1e-9 {
		t.Errorf("calls per action %v, want 0.2", cpa)
	}
	// 1,000 conversations on 133.3 calls/s: each can have a note every 7.5 s at best.
	if minWait != 7500*time.Millisecond {
		t.Errorf("shortest wait %v, want 7.5s", minWait)
	}
}

func TestParseRedisBenchmarkReadsQuietOutput(t *testing.T) {
	out := "SET: rps=0.0 (overall: 0.0) avg_msec=-nan (overall: -nan)\r                     \r" +
		"SET: 202020.20 requests per second, p50=1.583 msec\n" +
		"GET: 444444.44 requests per second, p50=1.351 msec\n" +
		"EVAL redis.call('HSET', KEYS[1], 'f', ARGV[1]) return 1 1 bench:{k}:__rand_int__ v: rps=9.0 (overall: 1.0)\r" +
		"EVAL redis.call('HSET', KEYS[1], 'f', ARGV[1]) return 1 1 bench:{k}:__rand_int__ v: 94490.57 requests per second, p50=6.671 msec\n"
	got := ParseRedisBenchmark(out)
	want := []RedisFigure{{"SET", 202020.20}, {"GET", 444444.44}, {"EVAL", 94490.57}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMeasureRedisRunsRedisBenchmarkAgainstTheServer(t *testing.T) {
	srv := redistest.Start(t)
	lim, err := MeasureRedis(context.Background(), srv.Addr, 2000, 4, 8)
	if _, missing := exec.LookPath("redis-benchmark"); missing != nil {
		// Without redis-tools the limit cannot be measured, and the error says why.
		if !errors.Is(err, ErrNoRedisBenchmark) {
			t.Fatalf("err %v, want ErrNoRedisBenchmark", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range []string{"SET", "GET", "HSET", "ZADD", "EVAL"} {
		if f, ok := lim.Find(test); !ok || f.RequestsPerSecond <= 0 {
			t.Errorf("%s: %+v (found %v)", test, f, ok)
		}
	}
	if lim.Pipeline != 8 || lim.Clients != 4 {
		t.Fatalf("limit %+v does not say how it was measured", lim)
	}
}

func TestMeasureKafkaMovesEveryRecordThroughTheBrokerAndCleansUp(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	sample, err := SampleRecords(2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500
	lim, err := MeasureKafka(context.Background(), brokers, 3, n, sample)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := range n {
		want += int64(len(sample[i%len(sample)].Value))
	}
	if lim.Records != n || lim.Bytes != want || lim.Duration <= 0 || lim.RecordsPerSecond() <= 0 {
		t.Fatalf("limit %+v, want %d records of %d bytes", lim, n, want)
	}
	topics, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, "bench.limit.") {
			t.Fatalf("limit topic %s left behind", name)
		}
	}
}

func TestSampleRecordsAreKeyedAsCaptureKeysThem(t *testing.T) {
	sample, err := SampleRecords(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(sample) != 3*19 {
		t.Fatalf("%d records, want 57", len(sample))
	}
	for _, r := range sample {
		if !strings.HasPrefix(string(r.Key), "phc_") || !strings.Contains(string(r.Key), ":") || len(r.Value) < 1000 {
			t.Fatalf("record key %q, %d bytes: want token:distinct_id and a full event", r.Key, len(r.Value))
		}
	}
}

func TestMeasureJSONParsesTheSampleForAtLeastTheTime(t *testing.T) {
	sample, err := SampleRecords(1)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := MeasureJSON(sample, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if lim.Events == 0 || lim.Events%len(sample) != 0 || lim.Wall < 100*time.Millisecond || lim.CPU <= 0 {
		t.Fatalf("limit %+v", lim)
	}
	if lim.EventsPerCPUSecond() < lim.EventsPerSecond()*0.5 {
		t.Fatalf("per CPU-second %.0f far below per second %.0f: the thread's CPU time is wrong", lim.EventsPerCPUSecond(), lim.EventsPerSecond())
	}
	if _, err := MeasureJSON([]Record{{Value: []byte("{")}}, time.Millisecond); err == nil {
		t.Fatal("a broken record gave no error")
	}
}

const exposition = `# HELP threadline_consumer_records_consumed_total Records whose processing finished.
# TYPE threadline_consumer_records_consumed_total counter
threadline_consumer_records_consumed_total{group="threadline-ingest",service="ingest",topic="posthog.events.raw"} 1.2345e+06
threadline_consumer_records_consumed_total{group="threadline-ingest",service="ingest",topic="intercom.webhooks.raw"} 12
threadline_consumer_records_consumed_total_extra{topic="posthog.events.raw"} 99
threadline_up 1
`

func TestSumSamplesMatchesNameAndLabels(t *testing.T) {
	if got := SumSamples(exposition, RecordsConsumedMetric, map[string]string{"topic": "posthog.events.raw"}); got != 1234500 {
		t.Fatalf("raw topic: %g", got)
	}
	if got := SumSamples(exposition, RecordsConsumedMetric, nil); got != 1234512 {
		t.Fatalf("all topics: %g", got)
	}
	if got := SumSamples(exposition, "threadline_up", nil); got != 1 {
		t.Fatalf("unlabelled: %g", got)
	}
	if got := SumSamples(exposition, RecordsConsumedMetric, map[string]string{"topic": "posthog"}); got != 0 {
		t.Fatalf("a label value prefix matched: %g", got)
	}
}

func TestScrapeReadsAMetricsEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, exposition)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	got, err := Scrape(context.Background(), addr, RecordsConsumedMetric, map[string]string{"topic": "intercom.webhooks.raw"})
	if err != nil || got != 12 {
		t.Fatalf("got %g, %v", got, err)
	}
}

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/threadline/threadline/pkg/phrasing
cpu: AMD EPYC
BenchmarkNormalize/events_plugin_ingestion-2         	     394	    829045 ns/op	     34950 events/cpu-s	     22918 events/s	     33686 json-events/cpu-s	     21155 json-events/s	         1.038 x-vs-json	  206438 B/op	    1161 allocs/op
PASS
ok  	github.com/threadline/threadline/pkg/phrasing	5.124s
pkg: github.com/threadline/threadline/pkg/linkstore
BenchmarkRouteBatch/forward-2         	      22	   9857629 ns/op	     50723 actions/s	  660240 B/op	    9678 allocs/op
BenchmarkRouteBatch/buffer-2          	      16	  13746665 ns/op	     36373 actions/s	  668598 B/op	   10159 allocs/op
pkg: github.com/threadline/threadline/pkg/kafka
BenchmarkConsumerThroughput-2   	  176198	      8303 ns/op	    120444 records/s	    5384 B/op	       0 allocs/op
pkg: github.com/threadline/threadline/pkg/redact
BenchmarkURL/https://app.acme.dev/checkout?plan=pro&coupon=X#top-2         	   23108	      9970 ns/op	      56 B/op	       2 allocs/op
--- FAIL: BenchmarkBroken
`

func TestParseMicroReadsPackagesNamesAndMetrics(t *testing.T) {
	got := ParseMicro(goTestOutput)
	if len(got) != 5 {
		t.Fatalf("%d results: %+v", len(got), got)
	}
	n, ok := FindMicro(got, "/pkg/phrasing", "Normalize/events_plugin_ingestion")
	if !ok || n.Iterations != 394 || n.Metrics["events/cpu-s"] != 34950 || n.Metrics["x-vs-json"] != 1.038 || n.Metrics["allocs/op"] != 1161 {
		t.Fatalf("normalize: %+v", n)
	}
	u, ok := FindMicro(got, "/pkg/redact", "URL/https://app.acme.dev/checkout?plan=pro&coupon=X#top")
	if !ok || u.Metrics["ns/op"] != 9970 {
		t.Fatalf("url: %+v (%v)", u, ok)
	}
	if _, ok := FindMicro(got, "/pkg/kafka", "ConsumerThroughput"); !ok {
		t.Fatal("consumer throughput not found")
	}
}

func TestBenchmarkPackagesFindsTestsWithBenchmarksOnly(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"a/a_test.go":                    "package a\n\nfunc BenchmarkA(b *testing.B) {}\n",
		"a/deeper/d_test.go":             "package deeper\n\nfunc TestD(t *testing.T) {}\n",
		"b/b_test.go":                    "func BenchmarkTop(b *testing.B) {}\n",
		"c/c.go":                         "package c\n\nfunc BenchmarkNotATest() {}\n",
		"d/testdata/x_test.go":           "package x\n\nfunc BenchmarkX(b *testing.B) {}\n",
		"e/node_modules/y/y_test.go":     "package y\n\nfunc BenchmarkY(b *testing.B) {}\n",
		".hidden/h_test.go":              "package h\n\nfunc BenchmarkH(b *testing.B) {}\n",
		"f/comment_test.go":              "package f\n\n// func BenchmarkF is documented but absent\n",
		"root_test.go":                   "package root\n\nfunc BenchmarkRoot(b *testing.B) {}\n",
		"g/nested/deep/g_test.go":        "package g\n\nfunc BenchmarkG(b *testing.B) {}\n",
		"g/nested/deep/other_test.go":    "package g\n\nfunc BenchmarkG2(b *testing.B) {}\n",
		"e/node_modules/y/not_a_pkg.txt": "",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := BenchmarkPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "./a", "./b", "./g/nested/deep"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

const pprofTop = `File: ingest
Type: cpu
Time: 2026-11-25 21:05:00 UTC
Duration: 5s, Total samples = 4.20s (84.00%)
Showing nodes accounting for 2.10s, 50.00% of 4.20s total
Dropped 120 nodes (cum <= 0.02s)
Showing top 3 nodes out of 200
      flat  flat%   sum%        cum   cum%
     0.80s 19.05% 19.05%      0.90s 21.43%  encoding/json.(*decodeState).object
     0.70s 16.67% 35.71%      0.70s 16.67%  runtime.memmove
     0.60s 14.29% 50.00%      1.20s 28.57%  github.com/threadline/threadline/pkg/redact.(*Redactor).Text
`

func TestParsePprofTopReadsTheTable(t *testing.T) {
	total, top := ParsePprofTop(pprofTop)
	if total != "Showing nodes accounting for 2.10s, 50.00% of 4.20s total" {
		t.Fatalf("total %q", total)
	}
	if len(top) != 3 || top[0].Function != "encoding/json.(*decodeState).object" || top[2].CumPct != "28.57%" || top[1].Flat != "0.70s" {
		t.Fatalf("top %+v", top)
	}
}

func TestSummarizeRunsGoToolPprofOnAnAllocationProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allocs.pprof")
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := Profile{Kind: ProfileAllocs, Path: path}
	if err := Summarize(context.Background(), &p, 5); err != nil {
		t.Fatal(err)
	}
	if len(p.Top) == 0 || len(p.Top) > 5 || !strings.Contains(p.Total, "total") {
		t.Fatalf("summary %+v (kept %d buffers)", p, len(keep))
	}
}

func TestFetchProfileWaitsForTheListener(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "profile bytes for "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "sub", "p.pprof")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := FetchProfile(ctx, strings.TrimPrefix(srv.URL, "http://"), "allocs", file); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if string(b) != "profile bytes for /debug/pprof/allocs" || calls.Load() != 3 {
		t.Fatalf("saved %q after %d calls", b, calls.Load())
	}
}

func TestDrainRateIsTakenBetweenTenAndNinetyPercent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := Drain{Target: 1000, Samples: []Sample{
		{At: t0, Value: 0, CPU: 0},
		{At: t0.Add(2 * time.Second), Value: 0, CPU: 100 * time.Millisecond},                                   // start-up
		{At: t0.Add(3 * time.Second), Value: 100, CPU: 200 * time.Millisecond, Redis: 50 * time.Millisecond},   // 10%
		{At: t0.Add(4 * time.Second), Value: 500, CPU: 600 * time.Millisecond},                                 //
		{At: t0.Add(5 * time.Second), Value: 900, CPU: 1000 * time.Millisecond, Redis: 250 * time.Millisecond}, // 90%
		{At: t0.Add(9 * time.Second), Value: 1000, CPU: 1100 * time.Millisecond},                               // tail
	}}
	if got := d.Rate(); got != 400 {
		t.Fatalf("rate %g, want 400 records/s", got)
	}
	if got := d.PerCPUSecond(); got != 1000 {
		t.Fatalf("per CPU-second %g, want 1000", got)
	}
	// 800 ms of the service and 200 ms of redis-server for 800 records
	if got := d.CostPerRecord(); got != 1250*time.Microsecond {
		t.Fatalf("cost per record %s, want 1.25ms", got)
	}
	fast := Drain{Target: 1000, Samples: []Sample{{At: t0, Value: 0}, {At: t0.Add(time.Second), Value: 1000, CPU: 500 * time.Millisecond}}}
	if got := fast.Rate(); got != 1000 {
		t.Fatalf("a backlog gone in one sample: rate %g, want 1000 over the samples", got)
	}
	if got := (Drain{Target: 10}).Rate(); got != 0 {
		t.Fatalf("no samples: %g", got)
	}
}

func TestCallsPerSecondCountTheTimeTheCallsTook(t *testing.T) {
	row := LatencyRow{NotewriterActivity: NotewriterActivity{NoteCalls: 600}, Lines: 1200, Duration: 40 * time.Second}
	if got := row.CallsPerSecond(); got != 15 {
		t.Fatalf("over the load: %g", got)
	}
	row.Active = 60 * time.Second // the backlog took 20 s more to write
	if got := row.CallsPerSecond(); got != 10 {
		t.Fatalf("over the active time: %g", got)
	}
	if got := row.CallsPerAction(); got != 0.5 {
		t.Fatalf("calls per action %g", got)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%g = %s, want %s", p, got, want)
		}
	}
	if Percentile(nil, 99) != 0 {
		t.Error("percentile of nothing")
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its input in place")
	}
}

func TestNotesWatcherReadsNotesWrittenAsTheyCome(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "notes")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	note := func(id string) *kgo.Record {
		n := messages.NoteWritten{Version: messages.Version, ConversationID: "c1", PartID: id, Kind: messages.NoteActions, WrittenAt: time.Now()}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: topic, Key: []byte("c1"), Value: b}
	}
	kafkatest.Produce(t, brokers, note("p1"), note("p2"))
	w, err := watchNotes(context.Background(), brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	kafkatest.Eventually(t, 10*time.Second, func() bool { return w.len() == 2 }, "watcher read %d notes", w.len())
	kafkatest.Produce(t, brokers, note("p3"), &kgo.Record{Topic: topic, Key: []byte("c1"), Value: []byte("not json")})
	kafkatest.Eventually(t, 10*time.Second, func() bool { return w.len() == 4 }, "watcher read %d notes", w.len())
	if got := w.since(2); len(got) != 2 || got[0].PartID != "p3" {
		t.Fatalf("since 2: %+v", got)
	}
	if w.bad != 1 {
		t.Fatalf("%d undecodable notes counted, want 1", w.bad)
	}
}

func TestOpenAllOpensEveryUserAndReportsAFailure(t *testing.T) {
	users := []loadgen.User{{UserID: "u1"}, {UserID: "u2"}, {UserID: "u3"}}
	ok := loadgen.ConversationOpener(openerFunc(func(_ context.Context, u loadgen.User) (string, error) { return "c-" + u.UserID, nil }))
	ids, err := openAll(context.Background(), ok, users, 2)
	if err != nil || len(ids) != 3 || !ids["c-u2"] {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	failing := openerFunc(func(_ context.Context, u loadgen.User) (string, error) {
		if u.UserID == "u2" {
			return "", errors.New("webhook refused")
		}
		return "c-" + u.UserID, nil
	})
	ids, err = openAll(context.Background(), failing, users, 2)
	if err == nil || len(ids) != 2 {
		t.Fatalf("ids %v, err %v; want two conversations and the error", ids, err)
	}
}

type openerFunc func(context.Context, loadgen.User) (string, error)

func (f openerFunc) OpenConversation(ctx context.Context, u loadgen.User) (string, error) {
	return f(ctx, u)
}

func TestMediansMergeTheRunsOfOneBenchmark(t *testing.T) {
	out := `pkg: example.com/a
BenchmarkX-2   	  10	  300 ns/op	  5.0 events/s
BenchmarkY-2   	   1	  100 ns/op
BenchmarkX-2   	  30	  100 ns/op	  9.0 events/s
BenchmarkX-2   	  20	  200 ns/op	  7.0 events/s
`
	got := Medians(ParseMicro(out))
	if len(got) != 2 || got[0].Name != "X" || got[1].Name != "Y" {
		t.Fatalf("merged %+v", got)
	}
	x := got[0]
	if x.Iterations != 20 || x.Metrics["ns/op"] != 200 || x.Metrics["events/s"] != 7 {
		t.Fatalf("X medians %+v", x)
	}
}
