//go:build !unix

package posthogtest

import "time"

// CPUTime is not available here: benchmarks report wall-time rates only.
func CPUTime() (d time.Duration, ok bool) { return 0, false }
