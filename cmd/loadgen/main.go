// Command loadgen plays realistic PostHog traffic into a running Threadline: many users playing
// the shared journey with fresh ids, at a configured rate, into the raw PostHog topic; a share of
// them open a conversation on a fake Intercom running as its own process (make run's, or
// cmd/fakeintercom), which delivers the signed webhook to ingest. Configure it with loadgen.*,
// kafka.* and topic.* flags or their THREADLINE_* variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/loadgen"
	"github.com/threadline/threadline/pkg/logging"
	"github.com/threadline/threadline/pkg/service"
)

// Defaults of OpenerConfig: the dev stack's fake Intercom and ingest.
const (
	DefaultFakeURL    = "http://127.0.0.1:8090"
	DefaultWebhookURL = "http://127.0.0.1:8080/webhooks/intercom"
)

// Errors of the opener configuration.
var (
	ErrNoFakeURL = errors.New("loadgen: loadgen.fake-url is required when loadgen.conversation-share is above 0")
	ErrBadURL    = errors.New("loadgen: URLs must be absolute http(s) URLs")
)

// OpenerConfig says where conversations are opened and where their webhooks go.
type OpenerConfig struct {
	FakeURL    string
	WebhookURL string
}

// RegisterFlags registers loadgen.fake-url and loadgen.webhook-url.
func (c *OpenerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FakeURL, "loadgen.fake-url", DefaultFakeURL, "base URL of the fake Intercom that opens conversations (its /_fake/ endpoints)")
	fs.StringVar(&c.WebhookURL, "loadgen.webhook-url", DefaultWebhookURL, "ingest's webhook URL the fake delivers conversation webhooks to")
}

// Validate checks that the URLs given are absolute http(s) URLs.
func (c OpenerConfig) Validate() error {
	for _, raw := range []string{c.FakeURL, c.WebhookURL} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: %q", ErrBadURL, raw)
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, service.ErrPrinted) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		load   loadgen.Config
		opener OpenerConfig
		kc     kafka.Config
		topics = kafka.DefaultTopics()
		logCfg logging.Config
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	load.RegisterFlags(fs)
	opener.RegisterFlags(fs)
	kc.RegisterFlags(fs)
	topics.RegisterFlags(fs)
	logCfg.RegisterFlags(fs)
	if err := service.Parse(fs, args, stdout, &load, &opener, &kc, &topics, &logCfg); err != nil {
		return err
	}
	if load.ConversationShare > 0 && opener.FakeURL == "" {
		return ErrNoFakeURL
	}
	log, err := logging.New(logCfg, "loadgen")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	client, err := kafka.NewClient(kc, log, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	var open loadgen.ConversationOpener
	if load.ConversationShare > 0 {
		open = loadgen.NewHTTPOpener(opener.FakeURL, opener.WebhookURL, nil)
	}
	gen, err := loadgen.New(load, topics.PosthogRaw, client, open, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loadgen: %d sessions at %.0f events/s (a pass every %s each), %.0f%% open a conversation, into %s\n",
		load.Sessions, load.EventsPerSecond, gen.Cycle().Round(1e6), 100*load.ConversationShare, topics.PosthogRaw)
	stats, err := gen.Run(ctx)
	fmt.Fprintf(stdout, "loadgen: %d events (%d bytes) in %d passes over %s (%.0f events/s); %d conversations opened, %d failed\n",
		stats.Events, stats.Bytes, stats.Passes, stats.Finished.Sub(stats.Started).Round(1e6), stats.EventsPerSecond(),
		len(stats.Conversations), stats.OpenErrors)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
