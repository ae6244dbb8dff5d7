package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/capture"
	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/phrasing"
	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/pkg/service"
)

// Defaults of the service-wide settings.
const (
	DefaultAdminAddr = "127.0.0.1:9101"
	DefaultGroup     = "threadline-ingest"
	DefaultHTTPAddr  = ":8080"
	// DefaultPublishTimeout bounds how long a capture request waits for Kafka before it is
	// answered 503, which SDKs retry.
	DefaultPublishTimeout = 5 * time.Second
	// serviceName names ingest in logs, metrics and dead letters.
	serviceName = "ingest"
	// WebhookPath is where Intercom delivers webhooks (POST, and HEAD when the URL is saved).
	WebhookPath = "/webhooks/intercom"
)

// HTTP server timeouts.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// Errors returned by HTTPConfig.Validate.
var (
	ErrNoHTTPAddr            = errors.New("ingest: http.addr is required")
	ErrInvalidPublishTimeout = errors.New("ingest: http.publish-timeout must be positive")
)

// HTTPConfig configures the listener shared by the capture endpoint and the webhook receiver.
type HTTPConfig struct {
	Addr           string
	PublishTimeout time.Duration // how long a capture request waits for Kafka
}

// RegisterFlags registers the http.* flags.
func (c *HTTPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http.addr", DefaultHTTPAddr, "listen address of the capture endpoint and the webhook receiver")
	config.DurationVar(fs, &c.PublishTimeout, "http.publish-timeout", DefaultPublishTimeout,
		"how long a capture request waits for Kafka before it is answered 503 (SDKs retry)")
}

// Validate checks the configuration.
func (c HTTPConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, ErrNoHTTPAddr)
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidPublishTimeout, c.PublishTimeout))
	}
	return errors.Join(errs...)
}

// Config is the whole configuration of ingest: the shared service settings and one section per
// component.
type Config struct {
	Base      service.Base
	HTTP      HTTPConfig
	Webhooks  WebhookConfig
	Capture   capture.Config
	Phrasing  phrasing.Config
	Redact    redact.Config
	Normalize intercom.NormalizeConfig
	Contacts  ContactLookupConfig
}

// RegisterFlags registers the flags of every component with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Base.RegisterFlags(fs, DefaultAdminAddr, DefaultGroup)
	c.HTTP.RegisterFlags(fs)
	c.Webhooks.RegisterFlags(fs)
	c.Capture.RegisterFlags(fs)
	c.Phrasing.RegisterFlags(fs)
	c.Redact.RegisterFlags(fs)
	c.Normalize.RegisterFlags(fs)
	c.Contacts.RegisterFlags(fs)
}

// Validate checks every component and reports all that are wrong.
func (c Config) Validate() error {
	return errors.Join(c.Base.Validate(), c.HTTP.Validate(), c.Webhooks.Validate(), c.Capture.Validate(),
		c.Phrasing.Validate(), c.Redact.Validate(), c.Normalize.Validate(), c.Contacts.Validate())
}

// Ingest is the running service: the HTTP listener (capture endpoint and webhook receiver) and the
// consumer of the raw topics.
type Ingest struct {
	deps     *service.Deps
	consumer *kafka.Consumer
	server   *http.Server
	listener net.Listener
}

// Open connects to Kafka and Redis, creates the topics ingest touches, builds the consumer and
// binds the HTTP listener. cfg should have passed Validate. Run serves; it releases everything.
func Open(ctx context.Context, cfg Config) (*Ingest, error) {
	t := cfg.Base.Topics
	deps, err := cfg.Base.Open(ctx, serviceName, t.PosthogRaw, t.IntercomRaw, t.ProductActions, t.ConversationEvents)
	if err != nil {
		return nil, err
	}
	ing, err := build(cfg, deps)
	if err != nil {
		deps.Close()
		return nil, err
	}
	return ing, nil
}

func build(cfg Config, deps *service.Deps) (*Ingest, error) {
	t := cfg.Base.Topics
	log, reg := deps.Log, deps.Admin.Registry
	if !cfg.Webhooks.ClientSecret.IsSet() {
		log.Warn("accepting UNSIGNED Intercom webhooks: -insecure-dev is set and no client secret is configured")
	}

	var contacts ContactEnricher
	if cfg.Contacts.Enabled() {
		apiMetrics, err := intercom.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		api := intercom.NewClient(cfg.Contacts.API, nil, log.Named("intercom"), intercom.WithMetrics(apiMetrics))
		lookup, err := NewContactLookup(api, deps.Redis, cfg.Contacts.CacheTTL, cfg.Normalize.SessionAttribute, log, reg)
		if err != nil {
			return nil, err
		}
		contacts = lookup
	} else {
		log.Info("contact lookup is off: no intercom.token (THREADLINE_INTERCOM_TOKEN); conversation events " +
			"whose contact has neither external_id nor email are linked by session hint only")
	}

	redactor := redact.New(cfg.Redact)
	phraser := phrasing.New(cfg.Phrasing, redactor, phrasing.IdentityFuncs{Key: redact.IdentityKey, Email: redact.EmailHash})
	normalizer, err := NewNormalizer(phraser, cfg.Normalize, contacts, deps.Producer, t, reg)
	if err != nil {
		return nil, err
	}
	consumer, err := cfg.Base.Consume(deps, serviceName, []string{t.PosthogRaw, t.IntercomRaw}, normalizer)
	if err != nil {
		return nil, err
	}

	webhooks, err := NewWebhookReceiver(cfg.Webhooks, deps.Redis, deps.Producer, t.IntercomRaw, log, reg)
	if err != nil {
		consumer.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, webhooks)
	mux.Handle("/", capture.NewHandler(cfg.Capture, NewCapturePublisher(deps.Producer, t.PosthogRaw, cfg.HTTP.PublishTimeout), log, reg, time.Now))
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		consumer.Close()
		return nil, fmt.Errorf("ingest: listen %s: %w", cfg.HTTP.Addr, err)
	}
	return &Ingest{
		deps:     deps,
		consumer: consumer,
		server:   &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout},
		listener: ln,
	}, nil
}

// HTTPAddr is the bound address of the capture endpoint and the webhook receiver.
func (i *Ingest) HTTPAddr() net.Addr { return i.listener.Addr() }

// AdminAddr is the bound address of /metrics, /healthz and /readyz.
func (i *Ingest) AdminAddr() string { return i.deps.Admin.Addr() }

// Run serves HTTP, runs the consumer and the admin server until ctx ends or one of them fails,
// shuts down gracefully (in-flight requests answered, finished records committed), and releases
// the connections.
func (i *Ingest) Run(ctx context.Context) error {
	defer i.deps.Close()
	return service.Run(ctx, i.deps.Admin.Run, i.consumer.Run, i.serveHTTP)
}

func (i *Ingest) serveHTTP(ctx context.Context) error {
	i.deps.Log.Info("capture and webhook listener", zap.String("addr", i.listener.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- i.server.Serve(i.listener) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ingest: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := i.server.Shutdown(shutdown); err != nil {
		return fmt.Errorf("ingest: shut down the listener: %w", err)
	}
	return nil
}
