package cputime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis returns the CPU time a redis-server has used: INFO cpu's used_cpu_user plus
// used_cpu_sys.
func Redis(ctx context.Context, rdb redis.UniversalClient) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	var seconds float64
	found := 0
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_user" && name != "used_cpu_sys") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu line %q: %w", line, err)
		}
		seconds += v
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("INFO cpu lacks used_cpu_user or used_cpu_sys: %q", info)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// Usage is the CPU time of measured phases, this process's and a redis-server's.
type Usage struct{ Process, Redis time.Duration }

// Total is both sides added up.
func (u Usage) Total() time.Duration { return u.Process + u.Redis }

// Meter measures phases of a benchmark against one redis-server: what a phase costs this
// process and the server, less what measuring costs by itself (mostly the server's INFO and its
// round trip, taken as the median of empty phases when the Meter is made). Over many phases the
// sums are exact; a single phase may come out slightly negative.
type Meter struct {
	rdb  redis.UniversalClient
	bias Usage
}

// ErrNoProcessCPU means the platform does not report the process's CPU time.
var ErrNoProcessCPU = errors.New("cputime: the process's CPU time is unknown on this platform")

// NewMeter makes a Meter for rdb and measures its bias.
func NewMeter(ctx context.Context, rdb redis.UniversalClient) (*Meter, error) {
	if _, ok := Process(); !ok {
		return nil, ErrNoProcessCPU
	}
	m := &Meter{rdb: rdb}
	const samples = 51
	process, server := make([]time.Duration, samples), make([]time.Duration, samples)
	for i := range samples {
		var u Usage
		if err := m.Measure(ctx, &u, func() {}); err != nil {
			return nil, err
		}
		process[i], server[i] = u.Process, u.Redis
	}
	m.bias = Usage{Process: median(process), Redis: median(server)}
	return m, nil
}

// Measure runs phase and adds what it cost to into.
func (m *Meter) Measure(ctx context.Context, into *Usage, phase func()) error {
	server0, err := Redis(ctx, m.rdb)
	if err != nil {
		return err
	}
	process0, _ := Process()
	phase()
	process1, _ := Process()
	server1, err := Redis(ctx, m.rdb)
	if err != nil {
		return err
	}
	into.Process += process1 - process0 - m.bias.Process
	into.Redis += server1 - server0 - m.bias.Redis
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
