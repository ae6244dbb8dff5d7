// Package redistest gives tests a real Redis: a redis-server process of their own on a free port.
//
// When no redis-server is on PATH it falls back to an embedded Redis (miniredis), unless
// THREADLINE_TEST_REQUIRE_REDIS=1, in which case the test fails: CI always tests against real Redis.
//
// A server keeps the extra arguments it was started with across Restart and StartAgain, so one
// started with PersistentArgs comes back with its data: tests of Redis outages stop it, keep
// working against the dead port, and start it again.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RequireEnv is the switch that forbids the embedded fallback.
const RequireEnv = "THREADLINE_TEST_REQUIRE_REDIS"

// Server is a Redis server started for a test.
type Server struct {
	Addr     string
	Embedded bool // true when this is the in-process fallback, not a redis-server process

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	dir   string
	port  int
	extra []string // the arguments after the defaults, kept for StartAgain
	mini  *miniredis.Miniredis
}

// PersistentArgs are redis-server arguments that make every acknowledged write survive a kill:
// an append-only file synced on every write. Pass them to StartWith or StartProcess.
func PersistentArgs() []string {
	return []string{"--appendonly", "yes", "--appendfsync", "always"}
}

// Start starts a Redis for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with extra redis-server arguments (such as PersistentArgs), which come after
// the defaults and so override them. The embedded fallback ignores them; it keeps its data across
// Stop and StartAgain anyway.
func StartWith(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redistest: redis-server is not on PATH and %s=1 forbids the embedded fallback", RequireEnv)
		}
		m := miniredis.RunT(t)
		return &Server{Addr: m.Addr(), Embedded: true, mini: m}
	}
	s := &Server{dir: t.TempDir(), extra: append([]string(nil), extra...)}
	if err := s.start(bin, 0); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartProcess starts a redis-server process (never the fallback) with extra arguments, for tests
// that need real server behaviour such as cluster mode. The caller must call Stop.
func StartProcess(dir string, extra ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not on PATH: %w", err)
	}
	s := &Server{dir: dir, extra: append([]string(nil), extra...)}
	return s, s.start(bin, 0)
}

// start starts redis-server on port (a free one when 0) in s.dir with the defaults and s.extra.
func (s *Server) start(bin string, port int) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = FreePort(); err != nil {
				return err
			}
		}
		args := append([]string{
			"--port", strconv.Itoa(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning",
		}, s.extra...)
		cmd := exec.Command(bin, args...)
		logf, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", p)))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start redis-server: %w", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if err := waitPing(addr, 5*time.Second); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
			lastErr = fmt.Errorf("redis-server on %s: %w (log: %s)", addr, err, tail(logf.Name()))
			if port != 0 {
				break
			}
			continue
		}
		done := make(chan struct{})
		s.mu.Lock()
		s.cmd, s.done, s.port, s.Addr = cmd, done, p, addr
		s.mu.Unlock()
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		return nil
	}
	return lastErr
}

// Pid is the redis-server process's id, 0 when the server is embedded or stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server. It is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mini != nil {
		s.mini.Close()
		return
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
}

// Restart stops the server and starts it again on the same port (tests of Redis outages). It
// comes back empty unless it was started with PersistentArgs.
func (s *Server) Restart() error {
	if s.mini != nil {
		s.mini.Restart()
		return nil
	}
	s.Stop()
	return s.StartAgain()
}

// StartAgain starts a stopped server again on the same port, in the same directory and with the
// same arguments, and waits until it answers. Between Stop and StartAgain clients see a Redis
// outage (connections refused). It fails when the server is running.
func (s *Server) StartAgain() error {
	if s.mini != nil {
		return s.mini.Restart()
	}
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return fmt.Errorf("redistest: redis-server on %s is running", s.Addr)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redistest: redis-server not on PATH: %w", err)
	}
	return s.start(bin, s.port)
}

// Client returns a client for the server, closed when t ends.
func (s *Server) Client(t testing.TB) redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{s.Addr}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitPing(addr string, within time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}
