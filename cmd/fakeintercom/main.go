// Command fakeintercom runs the fake Intercom (REST API, signed webhooks, and a page showing
// conversations and their notes) on an address, configured by fake.* flags or THREADLINE_FAKE_*
// variables: for docker-compose and manual use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/logging"
	"github.com/threadline/threadline/pkg/service"
)

func main() {
	service.ExitIfHealthcheck(os.Args[1:], service.Probe{AddrFlag: "fake.addr", DefaultAddr: fakeintercom.DefaultAddr, Path: "/"})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "fakeintercom:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var (
		cfg    fakeintercom.Config
		logCfg logging.Config
	)
	fs := flag.NewFlagSet("fakeintercom", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &cfg, &logCfg); err != nil {
		return err
	}
	log, err := logging.New(logCfg, "fakeintercom")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	srv := &http.Server{Addr: cfg.Addr, Handler: fakeintercom.New(cfg.Options()), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("fake Intercom listening", zap.String("addr", cfg.Addr), zap.String("page", pageURL(cfg.Addr)))
	select {
	case err := <-errc:
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// pageURL is the address of the page, with localhost for an address that names no host.
func pageURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
