// Package ops checks what operators rely on, against the real binaries: the configuration reference
// in the README and the docker-compose file stay in step with the flags each binary registers, the
// metrics the README lists are served, the Grafana dashboard only queries those, the -healthcheck
// mode and readiness behave as the compose health checks expect, and a second Kafka client (kcat,
// librdkafka) interoperates with the pipeline.
package ops

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// The four services and the fake Intercom: every binary an operator runs from the image.
var binaryNames = append(append([]string{}, stack.Services...), "fakeintercom")

// repoRoot is the module root, where the README, docker-compose.yml, Dockerfile and deploy/ live.
var repoRoot = filepath.Join("..", "..")

// bins are the binaries under test, built once for the package.
var bins = stack.Binaries{Extra: []string{"./cmd/fakeintercom"}}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// binaries returns the directory of the four services and the fake Intercom.
func binaries(t *testing.T) string { return bins.Dir(t) }

// printConfig runs binary -print-config with exactly env (plus PATH) and returns the printed
// variables, by name, and the "# invalid:" line when the configuration does not validate.
func printConfig(t *testing.T, binary string, env ...string) (vars map[string]string, invalid string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), binary), "-print-config")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -print-config: %v\n%s", binary, err, out)
	}
	vars = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# invalid: "); ok {
			invalid = rest
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, "THREADLINE_") {
			t.Fatalf("%s -print-config printed %q, want NAME=value lines", binary, line)
		}
		vars[name] = value
	}
	if len(vars) == 0 {
		t.Fatalf("%s -print-config printed no variables", binary)
	}
	return vars, invalid
}

// system is a set of service processes against a broker, a real Redis and the fake Intercom.
type system struct {
	Brokers []string
	Redis   *redistest.Server
	Topics  kafka.Topics
	Stack   *stack.Stack
	Admins  map[string]string // admin address of every started service
	Logs    *lockedBuffer
}

// newSystem prepares a broker and a Redis; env is shared by every service it starts.
func newSystem(t *testing.T, env ...string) *system {
	t.Helper()
	return newSystemOn(t, redistest.Start(t), env...)
}

// newSystemOn is newSystem with a Redis of the caller's.
func newSystemOn(t *testing.T, rdb *redistest.Server, env ...string) *system {
	t.Helper()
	s := &system{Brokers: kafkatest.Brokers(t), Redis: rdb, Topics: kafka.DefaultTopics(),
		Admins: map[string]string{}, Logs: &lockedBuffer{}}
	base := []string{
		"THREADLINE_KAFKA_BROKERS=" + strings.Join(s.Brokers, ","),
		"THREADLINE_KAFKA_TOPIC_PARTITIONS=3",
		"THREADLINE_REDIS_ADDRS=" + s.Redis.Addr,
		"THREADLINE_LOG_LEVEL=info",
	}
	s.Stack = stack.New(binaries(t), append(base, env...), s.Logs)
	t.Cleanup(func() {
		if err := s.Stack.StopAll(15 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", s.Logs.String())
		}
	})
	return s
}

// start starts services on free admin ports, without waiting for them.
func (s *system) start(t *testing.T, services ...string) {
	t.Helper()
	for _, name := range services {
		addr, err := stack.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		s.Admins[name] = addr
		if _, err := s.Stack.Start(name, "THREADLINE_ADMIN_ADDR="+addr); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits until every started service answers /readyz with 200.
func (s *system) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := make([]string, 0, len(s.Admins))
	for name := range s.Admins {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := stack.WaitReady(ctx, s.Admins[name]); err != nil {
			t.Fatalf("%s: %v\nlogs:\n%s", name, err, s.Logs.String())
		}
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// readRepoFile reads a file of the repository (README.md, docker-compose.yml, ...).
func readRepoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
