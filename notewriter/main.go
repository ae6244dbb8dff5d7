// Command notewriter is the only writer to Intercom: it coalesces conversation.actions into
// numbered internal notes, posts the summaries of conversation.summaries and redacts the notes they
// replace, and reports every note on notes.written.
//
// # Restoring the delivery record
//
// What keeps a replay from posting a note twice lives in Redis: the action ids each conversation
// has, its line counter and the summaries done. notes.written is the durable account of the same
// facts, so before the notewriter consumes or writes anything it restores that record from
// notes.written (every partition, start to end, outside any consumer group) when
//
//   - it is started with -replay-from (THREADLINE_REPLAY_FROM): a replay is always preceded by a
//     restore, whatever state Redis is in; or
//   - Redis does not hold the record: the restore markers, set after each completed restore, are
//     missing because Redis is new, was flushed or restarted empty (in Redis Cluster, also when one
//     node lost its slots).
//
// Otherwise start-up goes straight to work. /readyz stays unready during a restore. While running,
// the notewriter checks the markers every restore.check-interval and exits (ErrStateLost) when
// Redis lost them, so that its restart restores the record before it writes again.
//
// Rebuilding after losing Redis therefore needs one setting: restart the linker, the notewriter
// and the summarizer with THREADLINE_REPLAY_FROM=earliest. The notewriter restores, then replays
// conversation.actions and conversation.summaries; every action already in a note and every
// summary already posted is recognised, and new actions are numbered on from the last line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/notes"
	"github.com/threadline/threadline/pkg/service"
)

func main() {
	service.ExitIfHealthcheck(os.Args[1:], service.ReadyProbe("127.0.0.1:9103"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "notewriter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var (
		base       service.Base
		ic         intercom.Config
		notesCfg   notes.Config
		restoreCfg RestoreConfig
	)
	fs := flag.NewFlagSet("notewriter", flag.ContinueOnError)
	base.RegisterFlags(fs, "127.0.0.1:9103", "threadline-notewriter")
	ic.RegisterFlags(fs)
	notesCfg.RegisterFlags(fs)
	restoreCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &base, &ic, &notesCfg, &restoreCfg); err != nil {
		return err
	}
	t := base.Topics
	deps, err := base.Open(ctx, "notewriter", t.ConversationActions, t.ConversationSummaries, t.NotesWritten, t.IntercomEvents)
	if err != nil {
		return err
	}
	defer deps.Close()
	apiMetrics, err := intercom.NewMetrics(deps.Admin.Registry)
	if err != nil {
		return err
	}
	client := intercom.NewClient(ic, &http.Client{}, deps.Log, intercom.WithMetrics(apiMetrics))
	api := NewIntercomNotes(client, ic.AdminID)
	writer, err := notes.New(deps.Redis, api, NewNotesSink(deps.Producer, t), notesCfg, deps.Log, deps.Admin.Registry)
	if err != nil {
		return err
	}
	api.ObserveRateLimits(writer.ObserveRateLimit)
	restorer, err := NewRestorer(restoreCfg, base.Kafka, t.NotesWritten, writer, deps.Log, deps.Admin.Registry)
	if err != nil {
		return err
	}
	deps.Admin.AddReadiness("restore", restorer.Ready)
	// Replaced by the consumer's own check once it exists, after the restore.
	deps.Admin.AddReadiness("consumer", func(context.Context) error { return errors.New("consumer not started yet") })
	replay := strings.TrimSpace(base.Consumer.ReplayFrom) != ""
	return service.Run(ctx, deps.Admin.Run, func(ctx context.Context) error {
		// Nothing is consumed or written before Redis holds the record of what Intercom has.
		if err := restorer.RestoreIfNeeded(ctx, replay); err != nil {
			return err
		}
		consumer, err := base.Consume(deps, "notewriter", []string{t.ConversationActions, t.ConversationSummaries, t.IntercomEvents}, NewHandler(writer, api, t))
		if err != nil {
			return err
		}
		// While Intercom is failing, fetch nothing: the breaker's half-open probe decides when to resume.
		consumer.PauseWhile(writer.BreakerOpen)
		return service.Run(ctx, consumer.Run, writer.Run, restorer.Watch)
	})
}
