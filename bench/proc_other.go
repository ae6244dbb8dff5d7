//go:build !linux

package bench

import (
	"errors"
	"runtime"
	"time"
)

// errNoProc is returned where /proc is not available: the pipeline benchmark reads peak RSS and
// process CPU time from Linux's /proc.
var errNoProc = errors.New("bench: process figures need Linux /proc")

// PeakRSS is not available here.
func PeakRSS(int) (int64, error) { return 0, errNoProc }

// ProcessCPU is not available here.
func ProcessCPU(int) (time.Duration, error) { return 0, errNoProc }

func threadCPU() (time.Duration, bool) { return 0, false }

func selfCPU() time.Duration { return 0 }

func cpuModel() string { return runtime.GOARCH }

func loadAverage() string { return "" }
