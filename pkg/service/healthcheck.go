package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// HealthcheckArg is the argument that turns a binary into its own health check: instead of
// running, it asks the running instance beside it (same container, same configuration) whether it
// is ready and exits 0 or 1. Distroless images have no curl; docker-compose health checks run
// `<binary> -healthcheck`.
const HealthcheckArg = "healthcheck"

// HealthcheckTimeout bounds one health-check request.
const HealthcheckTimeout = 3 * time.Second

// ErrUnhealthy is returned by Probe.Check when the endpoint answers anything but 200.
var ErrUnhealthy = errors.New("service: unhealthy")

// Probe says where a binary's health check looks: GET http://<address><Path>, the address read the
// way the binary reads it: the flag AddrFlag on the command line, else its THREADLINE_* variable,
// else DefaultAddr. A wildcard listen host (":9100", "0.0.0.0:9100") is probed on loopback.
type Probe struct {
	AddrFlag    string // e.g. "admin.addr"
	DefaultAddr string // the binary's default for that flag
	Path        string // e.g. "/readyz"
}

// ReadyProbe is the probe of a service binary: its admin server's /readyz, which answers 200 once
// Redis answers and the consumer has caught up.
func ReadyProbe(defaultAdminAddr string) Probe {
	return Probe{AddrFlag: "admin.addr", DefaultAddr: defaultAdminAddr, Path: "/readyz"}
}

// Requested reports whether args ask for the health check (-healthcheck, --healthcheck or
// -healthcheck=true).
func Requested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != HealthcheckArg {
			continue
		}
		return !hasValue || value == "true" || value == "1"
	}
	return false
}

// URL is the address the probe checks, resolved from args and lookupEnv (os.LookupEnv when nil).
func (p Probe) URL(args []string, lookupEnv func(string) (string, bool)) string {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	addr := p.DefaultAddr
	if v, ok := lookupEnv(config.EnvName(p.AddrFlag)); ok && v != "" {
		addr = v
	}
	if v, ok := flagValue(args, p.AddrFlag); ok {
		addr = v
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		switch host {
		case "", "0.0.0.0", "::":
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	return "http://" + addr + p.Path
}

// flagValue finds -name=value, --name=value, -name value or --name value in args.
func flagValue(args []string, name string) (string, bool) {
	var (
		value string
		found bool
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name {
			continue
		}
		if hasValue {
			value, found = v, true
		} else if i+1 < len(args) {
			value, found = args[i+1], true
			i++
		}
	}
	return value, found
}

// Check GETs the probe URL once and returns nil when it answers 200.
func (p Probe) Check(ctx context.Context, client *http.Client, args []string, lookupEnv func(string) (string, bool)) error {
	url := p.URL(args, lookupEnv)
	ctx, cancel := context.WithTimeout(ctx, HealthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %d %s", ErrUnhealthy, url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// ExitIfHealthcheck is the first line of a binary's main: when args ask for the health check it
// runs it and exits (0 healthy, 1 not, with the reason on stderr); otherwise it returns and the
// binary starts as usual.
func ExitIfHealthcheck(args []string, p Probe) {
	if !Requested(args) {
		return
	}
	if err := p.Check(context.Background(), &http.Client{}, args, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
