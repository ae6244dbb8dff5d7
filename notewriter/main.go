// Command notewriter is the only writer to Intercom: it coalesces conversation.actions into
// numbered internal notes, posts the summaries of conversation.summaries and redacts the notes they
// replace, and reports every note on notes.written.
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

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/notes"
	"github.com/threadline/threadline/pkg/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "notewriter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var (
		base     service.Base
		ic       intercom.Config
		notesCfg notes.Config
	)
	fs := flag.NewFlagSet("notewriter", flag.ContinueOnError)
	base.RegisterFlags(fs, "127.0.0.1:9103", "threadline-notewriter")
	ic.RegisterFlags(fs)
	notesCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &base, &ic, &notesCfg); err != nil {
		return err
	}
	t := base.Topics
	deps, err := base.Open(ctx, "notewriter", t.ConversationActions, t.ConversationSummaries, t.NotesWritten)
	if err != nil {
		return err
	}
	defer deps.Close()
	client := intercom.NewClient(ic, &http.Client{}, deps.Log)
	api := NewIntercomNotes(client, ic.AdminID)
	writer, err := notes.New(deps.Redis, api, NewNotesSink(deps.Producer, t), notesCfg, deps.Log, deps.Admin.Registry)
	if err != nil {
		return err
	}
	api.ObserveRateLimits(writer.ObserveRateLimit)
	consumer, err := base.Consume(deps, "notewriter", []string{t.ConversationActions, t.ConversationSummaries}, NewHandler(writer, t))
	if err != nil {
		return err
	}
	// While Intercom is failing, fetch nothing: the breaker's half-open probe decides when to resume.
	consumer.PauseWhile(writer.BreakerOpen)
	return service.Run(ctx, deps.Admin.Run, consumer.Run, writer.Run)
}
