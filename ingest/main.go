// Command ingest is Threadline's front door: a PostHog-compatible capture endpoint and the Intercom
// webhook receiver over HTTP, and the consumer that turns both raw topics into product.actions and
// conversation.events.
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

	"github.com/threadline/threadline/pkg/capture"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/phrasing"
	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/pkg/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

// ErrNoHTTPAddr is returned when the HTTP listener address is empty.
var ErrNoHTTPAddr = errors.New("ingest: http.addr is required")

type httpConfig struct{ Addr string }

func (c *httpConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http.addr", ":8080", "listen address of the capture endpoint and the webhook receiver")
}

func (c httpConfig) Validate() error {
	if c.Addr == "" {
		return ErrNoHTTPAddr
	}
	return nil
}

func run(ctx context.Context, args []string) error {
	var (
		base      service.Base
		httpCfg   httpConfig
		webhooks  WebhookConfig
		captureC  capture.Config
		phraseC   phrasing.Config
		redactC   redact.Config
		normalise intercom.NormalizeConfig
	)
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	base.RegisterFlags(fs, "127.0.0.1:9101", "threadline-ingest")
	httpCfg.RegisterFlags(fs)
	webhooks.RegisterFlags(fs)
	captureC.RegisterFlags(fs)
	phraseC.RegisterFlags(fs)
	redactC.RegisterFlags(fs)
	normalise.RegisterFlags(fs)
	if err := service.Parse(fs, args, os.Stdout, &base, &httpCfg, &webhooks, &captureC, &phraseC, &redactC, &normalise); err != nil {
		return err
	}
	t := base.Topics
	deps, err := base.Open(ctx, "ingest", t.PosthogRaw, t.IntercomRaw, t.ProductActions, t.ConversationEvents)
	if err != nil {
		return err
	}
	defer deps.Close()
	if !webhooks.ClientSecret.IsSet() {
		deps.Log.Warn("accepting UNSIGNED Intercom webhooks: -insecure-dev is set and no client secret is configured")
	}

	phraser := phrasing.New(phraseC, redact.New(redactC), phrasing.IdentityFuncs{Key: redact.IdentityKey, Email: redact.EmailHash})
	normalizer := NewNormalizer(phraser, normalise, deps.Producer, t, deps.Log, deps.Admin.Registry)
	consumer, err := base.Consume(deps, "ingest", []string{t.PosthogRaw, t.IntercomRaw}, normalizer)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/webhooks/intercom", NewWebhookReceiver(webhooks, deps.Redis, deps.Producer, t.IntercomRaw, deps.Log, deps.Admin.Registry))
	mux.Handle("/", capture.NewHandler(captureC, NewCapturePublisher(deps.Producer, t.PosthogRaw), deps.Log, deps.Admin.Registry, time.Now))
	ln, err := net.Listen("tcp", httpCfg.Addr)
	if err != nil {
		return fmt.Errorf("ingest: listen %s: %w", httpCfg.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	serveHTTP := func(ctx context.Context) error {
		deps.Log.Info("capture and webhook listener", zap.String("addr", ln.Addr().String()))
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("ingest: serve: %w", err)
		case <-ctx.Done():
		}
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
	return service.Run(ctx, deps.Admin.Run, consumer.Run, serveHTTP)
}
