package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestProcReadsPeakRSSAndCPUOfThisProcess(t *testing.T) {
	rss, err := PeakRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("peak rss %d, %v; want at least a megabyte", rss, err)
	}
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); {
		_ = fmt.Sprint(time.Now()) // keep the CPU busy
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil || after <= before {
		t.Fatalf("cpu %s then %s (%v); want it to grow with work", before, after, err)
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Fatal("PeakRSS of no process gave no error")
	}
}

func TestParseProcFiles(t *testing.T) {
	rss, err := parseVmHWM([]byte("Name:\tingest\nVmPeak:\t 1000 kB\nVmHWM:\t   131200 kB\nVmRSS:\t 90000 kB\n"))
	if err != nil || rss != 131200*1024 {
		t.Fatalf("VmHWM %d, %v", rss, err)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmHWM line, no error")
	}
	// the command name may hold spaces and parentheses
	cpu, err := parseStatCPU([]byte("4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 0 0"))
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("cpu %s, %v; want 3s (300 ticks)", cpu, err)
	}
}
