package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redisclient"
	"github.com/threadline/threadline/pkg/testkit/cputime"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// BenchmarkLinkedActions measures the linker's steady state on a real redis-server, and
// redis-benchmark on the same server in the same run.
//
// Each iteration hands one poll batch (kafka.DefaultMaxPollRecords product.actions records of
// linked sessions, 5 per session) of each of three partitions to Linker.Handle at once, as the
// consumer's partition workers do: decoding, the store's pipelined round trip per batch, and
// encoding the conversation.actions records, which are then discarded (Kafka is not what is
// measured). It reports linked actions/s, and the CPU time per action of redis-server and of the
// linker's side (this process), which unlike the rates do not depend on what else runs on the
// machine, and actions/cpu-s, the actions one second of CPU links, both sides together: two idle
// cores can link about twice that many per second. Then it runs
//
//	redis-benchmark -q -t set,get -P 16 -n 200000 --csv
//
// against the same server and reports its SET and GET rates and the ratio of linked actions to
// SETs. It needs redis-server and redis-benchmark (Debian's redis-tools) on PATH.
func BenchmarkLinkedActions(b *testing.B) { benchmarkActions(b, true) }

// BenchmarkBufferedActions is BenchmarkLinkedActions for the path most of a backlog takes:
// sessions that have no conversation (yet), one action of each of 500 sessions per batch, each
// action carrying a few properties, as ingest writes them. Every action is buffered; nothing is
// produced.
func BenchmarkBufferedActions(b *testing.B) { benchmarkActions(b, false) }

func benchmarkActions(b *testing.B, linked bool) {
	const (
		partitions = 3
		batchSize  = kafka.DefaultMaxPollRecords
	)
	perSession, props := 5, map[string]string(nil)
	if !linked {
		perSession = 1
		props = map[string]string{"plan": "pro", "$event_type": "click", "$screen_name": "pricing",
			"$prev_pageview_pathname": "/", "$prev_pageview_duration": "12.5", "experiment": "checkout-b"}
	}
	sessions := batchSize / perSession // per partition
	redisBenchmark, err := exec.LookPath("redis-benchmark")
	if err != nil {
		b.Fatalf("redis-benchmark is not on PATH: install redis-tools (it comes with redis-server on Debian): %v", err)
	}
	srv := redistest.Start(b)
	if srv.Embedded {
		b.Fatal("this benchmark needs a redis-server process; none is on PATH")
	}
	rdb, err := redisclient.New(redisclient.Config{Addrs: []string{srv.Addr}, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	topics := kafka.DefaultTopics()
	store := linkstore.New(rdb, linkstore.DefaultConfig(), zap.NewNop(), prometheus.NewRegistry(), time.Now)
	out := &discardProducer{}
	l := NewLinker(store, nil, out, topics)

	start := time.Now().UTC()
	batches := make([]*benchBatch, partitions)
	for p := range batches {
		batches[p] = newBenchBatch(b, topics.ProductActions, int32(p), batchSize, sessions, start, props)
		for s := 0; linked && s < sessions; s++ {
			ev := messages.ConversationEvent{
				Version: messages.Version, EventID: fmt.Sprintf("bench-e%d-%d", p, s), Type: messages.ConvCreated,
				ConversationID: fmt.Sprintf("bench-c%d-%d", p, s), SessionHint: benchSession(p, s), OccurredAt: start,
			}
			if _, err := store.Apply(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	handleRound := func(round int) {
		var wg sync.WaitGroup
		errs := make([]error, partitions)
		for p, batch := range batches {
			recs := batch.records(round)
			wg.Go(func() { errs[p] = l.Handle(ctx, recs) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	handleRound(-1) // warm up: scripts loaded, sessions known to be linked
	out.records.Store(0)
	cpuBefore, err := cputime.Redis(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}

	linkerCPUBefore, measuredCPU := cputime.Process()
	rounds := 0
	for b.Loop() {
		handleRound(rounds)
		rounds++
	}
	handled := rounds * partitions * batchSize
	linkerCPUAfter, _ := cputime.Process()
	want := int64(handled)
	if !linked {
		want = 0
	}
	if got := out.records.Load(); got != want {
		b.Fatalf("%d conversation.actions records for %d actions (linked: %v)", got, handled, linked)
	}
	actionsPerSec := float64(handled) / b.Elapsed().Seconds()
	cpuAfter, err := cputime.Redis(ctx, rdb)
	if err != nil {
		b.Fatal(err)
	}

	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	rates, err := runRedisBenchmark(redisBenchmark, host, port)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(actionsPerSec, "actions/s")
	redisCPUPerAction := float64((cpuAfter - cpuBefore).Microseconds()) / float64(handled)
	b.ReportMetric(redisCPUPerAction, "redis-cpu-µs/action")
	if measuredCPU {
		linkerCPUPerAction := float64((linkerCPUAfter - linkerCPUBefore).Microseconds()) / float64(handled)
		b.ReportMetric(linkerCPUPerAction, "linker-cpu-µs/action")
		b.ReportMetric(1e6/(redisCPUPerAction+linkerCPUPerAction), "actions/cpu-s")
	}
	b.ReportMetric(rates["SET"], "redis-SET/s")
	b.ReportMetric(rates["GET"], "redis-GET/s")
	b.ReportMetric(actionsPerSec/rates["SET"], "actions/SET")
}

// runRedisBenchmark runs redis-benchmark's SET and GET tests, pipelined 16 deep, against
// host:port and returns their requests per second by test name.
func runRedisBenchmark(bin, host, port string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-q", "-t", "set,get", "-P", "16", "-n", "200000", "--csv")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w: %s", err, stderr.String())
	}
	return parseRedisBenchmarkCSV(out)
}

// parseRedisBenchmarkCSV reads redis-benchmark --csv output: a header naming the "test" and "rps"
// columns, then a row per test.
func parseRedisBenchmarkCSV(out []byte) (map[string]float64, error) {
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark output: %w", err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("redis-benchmark output has no results: %q", out)
	}
	testCol, rpsCol := -1, -1
	for i, name := range rows[0] {
		switch name {
		case "test":
			testCol = i
		case "rps":
			rpsCol = i
		}
	}
	if testCol < 0 || rpsCol < 0 {
		return nil, fmt.Errorf("redis-benchmark output header %q lacks test or rps", rows[0])
	}
	rates := map[string]float64{}
	for _, row := range rows[1:] {
		if len(row) <= max(testCol, rpsCol) {
			return nil, fmt.Errorf("redis-benchmark output row %q is short", row)
		}
		rps, err := strconv.ParseFloat(row[rpsCol], 64)
		if err != nil {
			return nil, fmt.Errorf("redis-benchmark rps of %s: %w", row[testCol], err)
		}
		rates[strings.ToUpper(row[testCol])] = rps
	}
	for _, test := range []string{"SET", "GET"} {
		if rates[test] <= 0 {
			return nil, fmt.Errorf("redis-benchmark output has no %s rate: %q", test, out)
		}
	}
	return rates, nil
}

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := []byte(`"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","591716.00","1.207","0.336","1.135","1.687","3.159","4.319"
"GET","687285.19","0.973","0.352","0.919","1.431","1.991","5.087"
`)
	rates, err := parseRedisBenchmarkCSV(out)
	if err != nil {
		t.Fatal(err)
	}
	if rates["SET"] != 591716 || rates["GET"] != 687285.19 {
		t.Fatalf("rates %v", rates)
	}
	for _, bad := range []string{"", `"test","rps"` + "\n", `"name","rate"` + "\n" + `"SET","1"` + "\n", `"test","rps"` + "\n" + `"SET","fast"` + "\n"} {
		if _, err := parseRedisBenchmarkCSV([]byte(bad)); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

// benchBatch is one partition's poll batch: the records' values are a fixed action with the
// action id spliced in, so each round gets fresh ids without re-encoding.
type benchBatch struct {
	topic     string
	partition int32
	keys      [][]byte
	prefixes  [][]byte // value up to the action id
	suffixes  [][]byte // value after it
}

const benchIDPlaceholder = "bench-action-id-placeholder"

func benchSession(partition, session int) string {
	return fmt.Sprintf("bench-s%d-%d", partition, session)
}

func newBenchBatch(b *testing.B, topic string, partition int32, size, sessions int, at time.Time, props map[string]string) *benchBatch {
	bb := &benchBatch{topic: topic, partition: partition}
	for i := 0; i < size; i++ {
		s := i % sessions
		pa := messages.ProductAction{
			Version: messages.Version,
			Action: messages.Action{
				ActionID: benchIDPlaceholder, SessionID: benchSession(int(partition), s),
				EventTime: at.Add(time.Duration(i) * time.Millisecond), Event: "$autocapture", Kind: messages.KindClick,
				Page: "pricing", Path: "/pricing", Target: "Select Pro button",
				Text: "User clicked Select Pro button on the pricing page",
			},
			Identity:   messages.Identity{DistinctID: fmt.Sprintf("bench-u%d-%d", partition, s)},
			Properties: props,
		}
		before, after, ok := bytes.Cut(mustJSON(pa), []byte(benchIDPlaceholder))
		if !ok {
			b.Fatal("placeholder not in the encoded action")
		}
		bb.keys = append(bb.keys, []byte(pa.Action.SessionID))
		bb.prefixes = append(bb.prefixes, before)
		bb.suffixes = append(bb.suffixes, after)
	}
	return bb
}

// records returns the batch with action ids unique to round ("bench-<partition>-<round>-<i>"),
// built with little work of its own, as it counts as the linker's CPU.
func (bb *benchBatch) records(round int) []*kgo.Record {
	recs := make([]*kgo.Record, len(bb.keys))
	backing := make([]kgo.Record, len(bb.keys))
	for i := range recs {
		value := make([]byte, 0, len(bb.prefixes[i])+40+len(bb.suffixes[i]))
		value = append(value, bb.prefixes[i]...)
		value = append(value, "bench-"...)
		value = strconv.AppendInt(value, int64(bb.partition), 10)
		value = append(value, '-')
		value = strconv.AppendInt(value, int64(round), 10)
		value = append(value, '-')
		value = strconv.AppendInt(value, int64(i), 10)
		value = append(value, bb.suffixes[i]...)
		backing[i] = kgo.Record{Topic: bb.topic, Partition: bb.partition, Offset: int64(i), Key: bb.keys[i], Value: value}
		recs[i] = &backing[i]
	}
	return recs
}

// discardProducer counts the records the linker produces and drops them.
type discardProducer struct{ records atomic.Int64 }

func (d *discardProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	d.records.Add(int64(len(rs)))
	results := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		results[i] = kgo.ProduceResult{Record: r}
	}
	return results
}
