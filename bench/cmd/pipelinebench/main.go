// Command pipelinebench is `make bench`: it runs the package benchmarks and the pipeline
// benchmark of package bench, prints the results table and writes the full report (by default
// bench/RESULTS.md). Configure it with bench.* flags or THREADLINE_BENCH_* variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/threadline/threadline/bench"
	"github.com/threadline/threadline/pkg/logging"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "pipelinebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		cfg    bench.Config
		logCfg logging.Config
	)
	fs := flag.NewFlagSet("pipelinebench", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, stdout, &cfg, &logCfg); err != nil {
		return err
	}
	log, err := logging.New(logCfg, "pipelinebench")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	res, err := bench.Run(ctx, cfg, stdout, log)
	if err != nil {
		return err
	}
	res.WriteSummary(stdout)
	if cfg.Results == "" {
		return nil
	}
	path := cfg.Results
	if !filepath.IsAbs(path) {
		root, err := stack.ModuleRoot(ctx)
		if err != nil {
			return err
		}
		path = filepath.Join(root, path)
	}
	var sb strings.Builder
	res.WriteMarkdown(&sb)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", cfg.Results, err)
	}
	fmt.Fprintf(stdout, "\nresults written to %s\n", cfg.Results)
	return nil
}
