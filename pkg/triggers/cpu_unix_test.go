//go:build unix

package triggers

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has used, when the platform
// tells it.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
