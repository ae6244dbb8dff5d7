// Package stack runs Threadline's four binaries as separate processes against a given broker,
// Redis and Intercom: the dev stack (make run), the end-to-end tests, the pipeline benchmark and the
// chaos run all start the system through it, so they exercise the real binaries the same way.
package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Services are the four binaries, in pipeline order.
var Services = []string{"ingest", "linker", "notewriter", "summarizer"}

// Build compiles the four binaries, and the extra packages named like "./cmd/fakeintercom", into
// dir from the module that contains this package.
func Build(ctx context.Context, dir string, extra ...string) error {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, s := range Services {
		args = append(args, "./"+s)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, extra...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("stack: go build: %w\n%s", err, out)
	}
	return nil
}

// Binaries builds the binaries once for a test process, however many tests ask for them; Remove
// (from TestMain, after m.Run) deletes them.
type Binaries struct {
	Extra []string // packages to build beside the four services

	once sync.Once
	dir  string
	err  error
}

// Dir returns the directory of the built binaries, building them on first use; a failed build
// fails t.
func (b *Binaries) Dir(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "threadline-bin-"); b.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.err = Build(ctx, b.dir, b.Extra...)
	})
	if b.err != nil {
		t.Fatalf("build binaries: %v", b.err)
	}
	return b.dir
}

// Remove deletes the built binaries.
func (b *Binaries) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// ModuleRoot finds the directory of the module's go.mod.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("stack: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("stack: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// Stack is a set of running service processes sharing one environment.
type Stack struct {
	BinDir string
	Env    []string  // THREADLINE_* settings shared by every service
	Logs   io.Writer // where prefixed process output goes

	mu    sync.Mutex
	procs map[string]*Process
}

// Process is one running binary.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// New returns a stack of the binaries in binDir.
func New(binDir string, env []string, logs io.Writer) *Stack {
	return &Stack{BinDir: binDir, Env: env, Logs: logs, procs: map[string]*Process{}}
}

// Start starts service with the shared environment plus extra variables; a running process of the
// same name must have been stopped first.
func (s *Stack) Start(service string, extraEnv ...string) (*Process, error) {
	cmd := exec.Command(filepath.Join(s.BinDir, service))
	cmd.Env = append(append(append([]string{}, os.Environ()...), s.Env...), extraEnv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stack: start %s: %w", service, err)
	}
	p := &Process{Name: service, cmd: cmd, done: make(chan struct{})}
	var copied sync.WaitGroup
	copied.Add(1)
	go func() {
		defer copied.Done()
		s.prefix(service, stdout)
	}()
	go func() {
		copied.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs[service] = p
	s.mu.Unlock()
	return p, nil
}

func (s *Stack) prefix(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if s.Logs != nil {
			s.mu.Lock()
			fmt.Fprintf(s.Logs, "%-10s | %s\n", name, sc.Text())
			s.mu.Unlock()
		}
	}
}

// Process returns the running process of service, or nil.
func (s *Stack) Process(service string) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[service]
}

// Kill sends SIGKILL to service and waits for it to exit: a crash, with no chance to commit.
func (s *Stack) Kill(service string) error {
	p := s.Process(service)
	if p == nil {
		return fmt.Errorf("stack: %s is not running", service)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return nil
}

// Stop sends SIGTERM to service and waits up to timeout for a clean exit, then kills it.
func (s *Stack) Stop(service string, timeout time.Duration) error {
	p := s.Process(service)
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("stack: %s did not stop within %s", service, timeout)
	}
}

// StopAll stops every service, last stage first.
func (s *Stack) StopAll(timeout time.Duration) error {
	var errs []error
	for i := len(Services) - 1; i >= 0; i-- {
		if err := s.Stop(Services[i], timeout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", Services[i], err))
		}
	}
	return errors.Join(errs...)
}

// Done is closed when the process exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

func (p *Process) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.ExitCode() == -1 {
		return nil // killed by our own signal
	}
	return p.err
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// AdminAddrs picks a free admin address for every service, as THREADLINE_ADMIN_ADDR values.
func AdminAddrs() (map[string]string, error) {
	out := map[string]string{}
	for _, s := range Services {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		out[s] = a
	}
	return out, nil
}

// WaitReady polls http://addr/readyz until it answers 200 or ctx ends.
func WaitReady(ctx context.Context, addr string) error {
	for {
		if err := probe(ctx, addr); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack: %s not ready: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("readyz %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
