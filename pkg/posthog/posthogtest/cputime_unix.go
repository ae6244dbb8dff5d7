//go:build unix

package posthogtest

import (
	"syscall"
	"time"
)

// CPUTime returns the CPU time this process has used (user + system), which, unlike wall time, does
// not grow when other processes share the machine. ok is false where the platform cannot tell.
func CPUTime() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
