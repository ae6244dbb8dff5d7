//go:build !unix

package cputime

import "time"

// Process returns the CPU time this process has used, when the platform tells it; this one does not.
func Process() (time.Duration, bool) { return 0, false }
