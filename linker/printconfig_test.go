package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/config"
)

// runLinker runs the linker (this test binary in its linker role) with args and env on top of
// this process's environment without its THREADLINE_* settings, and returns its stdout, stderr
// and exit code.
func runLinker(t *testing.T, args []string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, runAsLinkerEnv+"=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run linker: %v", err)
	}
	return out.String(), errOut.String(), code
}

// printedSettings parses -print-config output (NAME=value lines) into a map.
func printedSettings(t *testing.T, out string) map[string]string {
	t.Helper()
	settings := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, config.EnvPrefix) {
			t.Fatalf("-print-config line %q is not NAME=value", line)
		}
		settings[name] = value
	}
	return settings
}

// TestPrintConfigMasksTheRedisPasswordAndShowsLinkerSettings runs the linker with -print-config:
// it prints every setting and exits 0 without touching Kafka or Redis; the Redis password (and
// the Kafka SASL password) print masked and never appear in the output; every linker.* setting
// shows, from its default, from the environment, or from a flag, which wins over the environment.
func TestPrintConfigMasksTheRedisPasswordAndShowsLinkerSettings(t *testing.T) {
	const redisPassword, saslPassword = "redis-pw-4f1c9a", "sasl-pw-77d2e0"
	stdout, stderr, code := runLinker(t, []string{"-print-config", "-linker.buffer-max=77"},
		"THREADLINE_REDIS_PASSWORD="+redisPassword,
		"THREADLINE_KAFKA_SASL_MECHANISM=plain",
		"THREADLINE_KAFKA_SASL_USER=linker",
		"THREADLINE_KAFKA_SASL_PASSWORD="+saslPassword,
		"THREADLINE_KAFKA_BROKERS=127.0.0.1:1", // nothing listens there: printing must not connect
		"THREADLINE_REDIS_ADDRS=127.0.0.1:1",
		"THREADLINE_LINKER_BUFFER_WINDOW=45s",
		"THREADLINE_LINKER_BUFFER_MAX=50",
		"THREADLINE_LINKER_POLICY=all-open",
	)
	if code != 0 {
		t.Fatalf("-print-config exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, secret := range []string{redisPassword, saslPassword} {
		if strings.Contains(stdout, secret) || strings.Contains(stderr, secret) {
			t.Fatalf("the output reveals a password:\n%s%s", stdout, stderr)
		}
	}
	settings := printedSettings(t, stdout)
	for name, want := range map[string]string{
		"THREADLINE_REDIS_PASSWORD":      config.Mask,
		"THREADLINE_KAFKA_SASL_PASSWORD": config.Mask,
		"THREADLINE_KAFKA_SASL_USER":     "linker",
		"THREADLINE_REDIS_ADDRS":         "127.0.0.1:1",
		"THREADLINE_CONSUMER_GROUP":      "threadline-linker",
		"THREADLINE_ADMIN_ADDR":          "127.0.0.1:9102",
	} {
		if got, ok := settings[name]; !ok || got != want {
			t.Errorf("%s=%q (printed: %v), want %q", name, got, ok, want)
		}
	}
	linker := map[string]string{}
	for name, value := range settings {
		if strings.HasPrefix(name, "THREADLINE_LINKER_") {
			linker[name] = value
		}
	}
	want := map[string]string{
		"THREADLINE_LINKER_BUFFER_WINDOW": "45s", // environment
		"THREADLINE_LINKER_BUFFER_MAX":    "77",  // the flag wins over the environment
		"THREADLINE_LINKER_POLICY":        "all-open",
		"THREADLINE_LINKER_BUFFER_TTL":    "30m0s", // defaults
		"THREADLINE_LINKER_SESSION_TTL":   "24h0m0s",
		"THREADLINE_LINKER_PENDING_TTL":   "1h0m0s",
		"THREADLINE_LINKER_CLOSED_GRACE":  "2m0s",
	}
	if !maps.Equal(linker, want) {
		t.Errorf("linker settings:\n got  %v\n want %v", linker, want)
	}
}

// TestInvalidConfigIsRefusedWithoutRevealingSecrets gives the linker an unknown routing policy:
// -print-config still prints, with the problem noted; without it the linker refuses to start,
// exits 1 and names the setting, and the password stays masked either way.
func TestInvalidConfigIsRefusedWithoutRevealingSecrets(t *testing.T) {
	const redisPassword = "redis-pw-0b3e51"
	env := []string{"THREADLINE_REDIS_PASSWORD=" + redisPassword, "THREADLINE_LINKER_POLICY=loudest",
		"THREADLINE_KAFKA_BROKERS=127.0.0.1:1", "THREADLINE_REDIS_ADDRS=127.0.0.1:1"}

	stdout, stderr, code := runLinker(t, []string{"-print-config"}, env...)
	if code != 0 || !strings.Contains(stdout, "# invalid:") || !strings.Contains(stdout, "THREADLINE_LINKER_POLICY=loudest") {
		t.Fatalf("-print-config of an invalid configuration exited %d:\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "THREADLINE_REDIS_PASSWORD="+config.Mask) || strings.Contains(stdout+stderr, redisPassword) {
		t.Fatalf("password not masked:\n%s%s", stdout, stderr)
	}

	stdout, stderr, code = runLinker(t, nil, env...)
	if code != 1 || !strings.Contains(stderr, "loudest") {
		t.Fatalf("an invalid configuration exited %d, want 1 naming the policy\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, redisPassword) {
		t.Fatalf("the refusal reveals the password:\n%s%s", stdout, stderr)
	}
}
