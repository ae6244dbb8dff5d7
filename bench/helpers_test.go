package bench

import (
	"os"
	"os/exec"
	"testing"

	"github.com/threadline/threadline/pkg/stack"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startProcess starts the binary at path with env added; the returned function kills it.
func startProcess(t *testing.T, path string, env ...string) func() {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
