package service

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitIsSetUnlessGOMEMLIMITIs(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	if got := (Base{MemoryLimitMiB: 96}).applyMemoryLimit(); got != 96<<20 {
		t.Fatalf("limit %d, want 96 MiB", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got := (Base{MemoryLimitMiB: 0}).applyMemoryLimit(); got != math.MaxInt64 {
		t.Fatalf("0 set a limit: %d", got)
	}
	t.Setenv("GOMEMLIMIT", "200MiB")
	debug.SetMemoryLimit(200 << 20) // as the runtime did at start-up
	if got := (Base{MemoryLimitMiB: 96}).applyMemoryLimit(); got != 200<<20 {
		t.Fatalf("the flag overrode GOMEMLIMIT: %d", got)
	}
}

func TestMemoryLimitMustNotBeNegative(t *testing.T) {
	b := Base{MemoryLimitMiB: -1}
	if err := b.Validate(); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("got %v, want ErrMemoryLimit", err)
	}
}
