// Command ingest is Threadline's front door: a PostHog-compatible capture endpoint and the Intercom
// webhook receiver over HTTP, and the consumer that turns both raw topics into readable, redacted
// product.actions and conversation.events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/threadline/threadline/pkg/service"
)

func main() {
	service.ExitIfHealthcheck(os.Args[1:], service.ReadyProbe(DefaultAdminAddr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// run reads the configuration from args and the THREADLINE_* environment, refuses an invalid one,
// and runs ingest until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, stdout, &cfg); err != nil {
		return err
	}
	ing, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	return ing.Run(ctx)
}
