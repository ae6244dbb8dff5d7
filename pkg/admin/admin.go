// Package admin owns the operator-facing HTTP server every binary runs: /metrics (Prometheus),
// /healthz (the process is alive), /readyz (the service does useful work: dependencies up,
// consumer caught up) and, unless turned off, the Go profiler under /debug/pprof/.
package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ErrNoAddr is returned when the admin address is empty.
var ErrNoAddr = errors.New("admin: address is required")

// Config configures the admin server.
type Config struct {
	Addr  string
	Pprof bool
}

// RegisterFlags registers admin.addr with the service's default port, bound to localhost.
func (c *Config) RegisterFlags(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&c.Addr, "admin.addr", defaultAddr, "listen address of /metrics, /healthz and /readyz")
	fs.BoolVar(&c.Pprof, "admin.pprof", true, "serve the Go profiler under /debug/pprof/ on the admin address")
}

// Validate checks the address.
func (c Config) Validate() error {
	if c.Addr == "" {
		return ErrNoAddr
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("admin: address %q: %w", c.Addr, err)
	}
	return nil
}

// Check reports nil when a part of the service is ready.
type Check func(ctx context.Context) error

// Server is the admin HTTP server with a Prometheus registry of its own.
type Server struct {
	Registry *prometheus.Registry

	cfg    Config
	log    *zap.Logger
	mu     sync.Mutex
	checks map[string]Check
	ln     net.Listener
	srv    *http.Server
}

// New creates the server and its registry (with Go and process collectors).
func New(cfg Config, log *zap.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Registry: reg, cfg: cfg, log: log, checks: map[string]Check{}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	// No WriteTimeout: a CPU profile or trace streams for as long as its ?seconds= asks.
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// AddReadiness adds a named readiness check.
func (s *Server) AddReadiness(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	status, body := http.StatusOK, ""
	for name, c := range checks {
		if err := c(ctx); err != nil {
			status = http.StatusServiceUnavailable
			body += fmt.Sprintf("%s: %v\n", name, err)
		}
	}
	if body == "" {
		body = "ready\n"
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Listen binds the address; Addr is valid afterwards.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.Info("admin server listening", zap.String("addr", s.Addr()))
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(shutdownCtx)
}
