// Command summarizer reads notes.written and, after a threshold of raw actions in a conversation,
// writes one summary of the session so far to conversation.summaries for the notewriter to post.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/summary"
)

func main() {
	service.ExitIfHealthcheck(os.Args[1:], service.ReadyProbe("127.0.0.1:9104"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "summarizer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var (
		base   service.Base
		cfg    Config
		engine summary.Config
	)
	fs := flag.NewFlagSet("summarizer", flag.ContinueOnError)
	base.RegisterFlags(fs, "127.0.0.1:9104", "threadline-summarizer")
	cfg.RegisterFlags(fs)
	engine.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &base, &cfg, &engine); err != nil {
		return err
	}
	deps, err := base.Open(ctx, "summarizer", base.Topics.NotesWritten, base.Topics.ConversationSummaries)
	if err != nil {
		return err
	}
	defer deps.Close()
	eng, err := summary.New(engine, &http.Client{}, deps.Log, deps.Admin.Registry)
	if err != nil {
		return err
	}
	s := NewSummarizer(cfg, deps.Redis, eng, deps.Producer, base.Topics.ConversationSummaries, deps.Log, deps.Admin.Registry)
	consumer, err := base.Consume(deps, "summarizer", []string{base.Topics.NotesWritten}, kafka.PerRecord(s.Handle))
	if err != nil {
		return err
	}
	return service.Run(ctx, deps.Admin.Run, consumer.Run, s.Run)
}
