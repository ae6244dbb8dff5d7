package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/threadline/threadline/bench"
	"github.com/threadline/threadline/pkg/service"
)

func TestPrintConfigListsTheBenchSettings(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-print-config", "-bench.latency-duration=20s"}, &out)
	if !errors.Is(err, service.ErrPrinted) {
		t.Fatalf("err %v, want ErrPrinted", err)
	}
	for _, want := range []string{
		"THREADLINE_BENCH_LATENCY_DURATION=20s",
		"THREADLINE_BENCH_RESULTS=bench/RESULTS.md",
		"THREADLINE_BENCH_COALESCING=default," + bench.LatencyTuned,
		"THREADLINE_BENCH_DIRECT=default," + bench.LatencyTuned + "@60x120",
		"THREADLINE_BENCH_README=README.md",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("print-config lacks %s:\n%s", want, out.String())
		}
	}
}

func TestAnInvalidConfigurationStopsBeforeAnyWork(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-bench.coalescing=fast", "-bench.partitions=0"}, &out)
	if !errors.Is(err, bench.ErrCoalescing) || !errors.Is(err, bench.ErrPartitions) {
		t.Fatalf("err %v, want ErrCoalescing and ErrPartitions", err)
	}
	if out.Len() != 0 {
		t.Fatalf("it started working:\n%s", out.String())
	}
}
