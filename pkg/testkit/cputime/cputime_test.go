package cputime

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/testkit/redistest"
)

func TestProcessCPUGrowsWithWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("the platform does not report process CPU time")
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x ^= i * 7
	}
	after, _ := Process()
	if after <= before {
		t.Fatalf("CPU time did not grow: %v → %v (%d)", before, after, x)
	}
}

func TestMeterAddsWhatPhasesCost(t *testing.T) {
	srv := redistest.Start(t)
	if srv.Embedded {
		t.Fatal("the meter reads a redis-server process's CPU time; none is on PATH")
	}
	ctx := context.Background()
	rdb := srv.Client(t)
	m, err := NewMeter(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	var idle, busy Usage
	for range 5 {
		if err := m.Measure(ctx, &idle, func() {}); err != nil {
			t.Fatal(err)
		}
		if err := m.Measure(ctx, &busy, func() {
			pipe := rdb.Pipeline()
			for i := range 20000 {
				pipe.Set(ctx, "k"+strconv.Itoa(i), i, 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	// 100,000 SETs cost the server tens of milliseconds and this process some more; empty phases
	// cost about nothing once the bias is taken off.
	if busy.Redis < 10*time.Millisecond || busy.Process < 10*time.Millisecond {
		t.Errorf("100,000 SETs measured as %+v", busy)
	}
	if idle.Total() > busy.Total()/10 {
		t.Errorf("empty phases measured as %+v, beside %+v for the SETs", idle, busy)
	}
}
