// Package tooltest finds the external programs some tests drive (redis-cli, kcat, redis-benchmark,
// node, Chromium). On a developer machine without one, the test is skipped with a message naming
// it; with THREADLINE_TEST_REQUIRE_TOOLS=1, as CI sets, a missing program fails the test instead.
package tooltest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv is the switch that turns a missing program from a skip into a failure.
const RequireEnv = "THREADLINE_TEST_REQUIRE_TOOLS"

// Required reports whether missing programs must fail tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Need returns the path of every named program, in order. Each argument may list alternatives
// separated by "|" ("chromium|chromium-browser"). When one is missing the test is skipped, or
// fails when Required; install is the hint printed with the names of the missing programs.
func Need(t testing.TB, install string, programs ...string) []string {
	t.Helper()
	var paths, missing []string
	for _, alts := range programs {
		found := ""
		for _, name := range strings.Split(alts, "|") {
			if p, err := exec.LookPath(name); err == nil {
				found = p
				break
			}
		}
		if found == "" {
			missing = append(missing, alts)
		}
		paths = append(paths, found)
	}
	if len(missing) == 0 {
		return paths
	}
	msg := "this test needs " + strings.Join(missing, ", ") + " on PATH (" + install + ")"
	if Required() {
		t.Fatalf("%s; %s=1 forbids skipping it", msg, RequireEnv)
	}
	t.Skipf("%s; skipped here, CI installs it and sets %s=1", msg, RequireEnv)
	return nil
}
