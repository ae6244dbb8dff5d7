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
	root, err := stack.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	if cfg.Results != "" {
		var sb strings.Builder
		res.WriteMarkdown(&sb)
		if err := os.WriteFile(inRoot(root, cfg.Results), []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.Results, err)
		}
		fmt.Fprintf(stdout, "\nresults written to %s\n", cfg.Results)
	}
	if cfg.Readme != "" {
		if err := updateReadme(inRoot(root, cfg.Readme), res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "results table written to %s\n", cfg.Readme)
	}
	return nil
}

// inRoot resolves a path relative to the module root.
func inRoot(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}

// updateReadme replaces the table between the bench markers of the README at path.
func updateReadme(path string, res *bench.Results) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var sb strings.Builder
	res.WriteReadmeSection(&sb)
	out, err := bench.ReplaceReadmeTable(string(doc), sb.String())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
