package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one raw-topic record of the load: the sizes and keys the limits are measured with.
type Record struct {
	Key, Value []byte
}

// KafkaLimit is raw franz-go throughput: records produced and consumed at the same time through
// the broker, with nothing done to them.
type KafkaLimit struct {
	Records    int
	Bytes      int64
	Partitions int
	Duration   time.Duration // from the first produce to the last record consumed
}

// RecordsPerSecond is the produce+consume rate.
func (k KafkaLimit) RecordsPerSecond() float64 { return rate(k.Records, k.Duration) }

// MeasureKafka produces n records cycling through sample to a new topic of partitions, while one
// consumer reads them back, and times the whole. The topic is deleted afterwards.
func MeasureKafka(ctx context.Context, brokers []string, partitions, n int, sample []Record) (KafkaLimit, error) {
	if len(sample) == 0 || n < 1 {
		return KafkaLimit{}, errors.New("bench: kafka limit: no records")
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return KafkaLimit{}, fmt.Errorf("bench: kafka limit: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	topic := fmt.Sprintf("bench.limit.%016x", rand.Uint64())
	if _, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, topic); err != nil {
		return KafkaLimit{}, fmt.Errorf("bench: kafka limit: create topic: %w", err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.WithoutCancel(ctx), topic) }()

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return KafkaLimit{}, fmt.Errorf("bench: kafka limit: %w", err)
	}
	defer producer.Close()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return KafkaLimit{}, fmt.Errorf("bench: kafka limit: %w", err)
	}
	defer consumer.Close()

	var produceErr atomic.Value
	var size int64
	start := time.Now()
	go func() {
		for i := range n {
			r := sample[i%len(sample)]
			producer.Produce(ctx, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.CompareAndSwap(nil, err)
				}
			})
		}
		if err := producer.Flush(ctx); err != nil {
			produceErr.CompareAndSwap(nil, err)
		}
	}()
	consumed := 0
	for consumed < n {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return KafkaLimit{}, err
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return KafkaLimit{}, fmt.Errorf("bench: kafka limit: fetch: %w", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			consumed++
			size += int64(len(r.Value))
		})
		if err, _ := produceErr.Load().(error); err != nil {
			return KafkaLimit{}, fmt.Errorf("bench: kafka limit: produce: %w", err)
		}
	}
	return KafkaLimit{Records: consumed, Bytes: size, Partitions: partitions, Duration: time.Since(start)}, nil
}

// JSONLimit is the bare encoding/json parse rate of the load's raw events into map[string]any,
// on one goroutine locked to its thread.
type JSONLimit struct {
	Events int
	Wall   time.Duration
	CPU    time.Duration // that thread's CPU time; zero where the platform cannot tell
}

// EventsPerSecond is the wall-clock parse rate.
func (j JSONLimit) EventsPerSecond() float64 { return rate(j.Events, j.Wall) }

// EventsPerCPUSecond is the parse rate per second of CPU time, the per-core figure (wall-clock
// rate when the CPU time is unknown).
func (j JSONLimit) EventsPerCPUSecond() float64 {
	if j.CPU <= 0 {
		return j.EventsPerSecond()
	}
	return rate(j.Events, j.CPU)
}

// MeasureJSON unmarshals the sample's values into `any` (maps for objects), round after round,
// for at least minTime.
func MeasureJSON(sample []Record, minTime time.Duration) (JSONLimit, error) {
	if len(sample) == 0 {
		return JSONLimit{}, errors.New("bench: json limit: no records")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	start := time.Now()
	events := 0
	for time.Since(start) < minTime {
		for _, r := range sample {
			var v any
			if err := json.Unmarshal(r.Value, &v); err != nil {
				return JSONLimit{}, fmt.Errorf("bench: json limit: %w", err)
			}
		}
		events += len(sample)
	}
	out := JSONLimit{Events: events, Wall: time.Since(start)}
	if cpu1, ok := threadCPU(); ok && cpuOK {
		out.CPU = cpu1 - cpu0
	}
	return out, nil
}

// ErrNoRedisBenchmark is returned by MeasureRedis when redis-benchmark (redis-tools) is missing.
var ErrNoRedisBenchmark = errors.New("bench: redis-benchmark (redis-tools) is not on PATH")

// RedisFigure is one redis-benchmark test: requests per second.
type RedisFigure struct {
	Test              string
	RequestsPerSecond float64
}

// RedisLimit is redis-benchmark run against the pipeline's Redis.
type RedisLimit struct {
	Pipeline int // -P: commands per round trip
	Clients  int // -c
	Figures  []RedisFigure
}

// Find returns the figure of test (SET, GET, EVAL …), or false.
func (r RedisLimit) Find(test string) (RedisFigure, bool) {
	for _, f := range r.Figures {
		if f.Test == test {
			return f, true
		}
	}
	return RedisFigure{}, false
}

// RedisScript is the Lua script redis-benchmark runs as its EVAL test: one small hash write
// and a TTL, the kind of work every linker script does per key.
const RedisScript = "redis.call('HSET', KEYS[1], 'f', ARGV[1]) redis.call('PEXPIRE', KEYS[1], 60000) return 1"

// MeasureRedis runs redis-benchmark (from redis-tools) against addr: SET, GET, HSET and ZADD,
// then EVAL of RedisScript, n requests each, from clients connections pipelining pipeline
// commands.
func MeasureRedis(ctx context.Context, addr string, n, clients, pipeline int) (RedisLimit, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return RedisLimit{}, fmt.Errorf("bench: redis limit: %w", err)
	}
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return RedisLimit{}, fmt.Errorf("%w: %w", ErrNoRedisBenchmark, err)
	}
	common := []string{"-h", host, "-p", port, "-q", "-c", strconv.Itoa(clients), "-P", strconv.Itoa(pipeline), "-r", "100000"}
	runs := [][]string{
		append(append([]string{}, common...), "-n", strconv.Itoa(n), "-t", "set,get,hset,zadd"),
		append(append([]string{}, common...), "-n", strconv.Itoa(max(n/4, 1000)), "EVAL", RedisScript, "1", "bench:{k}:__rand_int__", "v"),
	}
	out := RedisLimit{Pipeline: pipeline, Clients: clients}
	for _, args := range runs {
		raw, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			return RedisLimit{}, fmt.Errorf("bench: redis-benchmark %s: %w\n%s", strings.Join(args, " "), err, raw)
		}
		figs := ParseRedisBenchmark(string(raw))
		if len(figs) == 0 {
			return RedisLimit{}, fmt.Errorf("bench: redis-benchmark printed no figures:\n%s", raw)
		}
		out.Figures = append(out.Figures, figs...)
	}
	return out, nil
}

var redisLine = regexp.MustCompile(`^(.+?):\s+([0-9.]+) requests per second`)

// ParseRedisBenchmark reads the -q output of redis-benchmark ("SET: 181818.19 requests per
// second, p50=0.135 msec"; progress lines end in carriage returns). A custom command's test
// is named by its first word, upper-cased.
func ParseRedisBenchmark(out string) []RedisFigure {
	var figs []RedisFigure
	for _, line := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
		m := redisLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		name := m[1]
		if f := strings.Fields(name); len(f) > 1 {
			name = f[0]
		}
		figs = append(figs, RedisFigure{Test: strings.ToUpper(name), RequestsPerSecond: v})
	}
	return figs
}

// Budget is the Intercom call budget the notewriter spends, and the per-app limit behind it.
type Budget struct {
	CallsPerMinute      int // notes.rate-per-minute, shared by every notewriter replica
	AppLimitWindowCalls int // Intercom's per-app limit per 10-second window, as the fake enforces it
}

// CallsPerSecond is the configured budget per second.
func (b Budget) CallsPerSecond() float64 { return float64(b.CallsPerMinute) / 60 }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
