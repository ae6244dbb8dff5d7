// Command linker joins product sessions to Intercom conversations through Redis: it reads
// product.actions and conversation.events and writes conversation.actions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/linkstore"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/triggers"
)

func main() {
	service.ExitIfHealthcheck(os.Args[1:], service.ReadyProbe("127.0.0.1:9102"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "linker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var (
		base    service.Base
		links   linkstore.Config
		trigCfg = triggers.DefaultConfig()
	)
	fs := flag.NewFlagSet("linker", flag.ContinueOnError)
	base.RegisterFlags(fs, "127.0.0.1:9102", "threadline-linker")
	links.RegisterFlags(fs)
	trigCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &base, &links, &trigCfg); err != nil {
		return err
	}
	t := base.Topics
	deps, err := base.Open(ctx, "linker", t.ProductActions, t.ConversationEvents, t.ConversationActions, t.IntercomEvents)
	if err != nil {
		return err
	}
	defer deps.Close()
	store := linkstore.New(deps.Redis, links, deps.Log, deps.Admin.Registry, time.Now)
	var trig Triggers
	if trigCfg.Enabled() {
		rules, err := triggers.Load(trigCfg.File)
		if err != nil {
			return err
		}
		trig = triggers.NewEngine(rules, deps.Redis, deps.Log, deps.Admin.Registry, triggers.WithConfig(trigCfg))
		deps.Log.Info("trigger rules loaded", zap.String("file", trigCfg.File), zap.Strings("rules", rules.Names()))
	}
	l := NewLinker(store, trig, deps.Producer, t)
	consumer, err := base.Consume(deps, "linker", []string{t.ProductActions, t.ConversationEvents}, l)
	if err != nil {
		return err
	}
	runTriggers := func(ctx context.Context) error { return l.RunTriggers(ctx, consumer.Ready, deps.Log) }
	return service.Run(ctx, deps.Admin.Run, consumer.Run, runTriggers)
}
