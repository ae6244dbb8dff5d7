package cputime

import "testing"

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
