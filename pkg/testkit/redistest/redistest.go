// Package redistest gives tests a real Redis: a redis-server process of their own on a free port.
//
// When no redis-server is on PATH it falls back to an embedded Redis (miniredis), unless
// THREADLINE_TEST_REQUIRE_REDIS=1, in which case the test fails: CI always tests against real Redis.
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

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	dir  string
	port int
	mini *miniredis.Miniredis
}

// Start starts a Redis for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redistest: redis-server is not on PATH and %s=1 forbids the embedded fallback", RequireEnv)
		}
		m := miniredis.RunT(t)
		return &Server{Addr: m.Addr(), Embedded: true, mini: m}
	}
	s := &Server{dir: t.TempDir()}
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
	s := &Server{dir: dir}
	return s, s.start(bin, 0, extra...)
}

func (s *Server) start(bin string, port int, extra ...string) error {
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
		}, extra...)
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

// Restart stops the server and starts it again on the same port, empty (tests of Redis outages).
func (s *Server) Restart() error {
	if s.mini != nil {
		s.mini.Restart()
		return nil
	}
	s.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
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
