package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/metrics"
)

// Defaults of WebhookConfig.
const (
	DefaultWebhookMaxBody        = 1 << 20
	DefaultWebhookDedupTTL       = 48 * time.Hour
	DefaultWebhookProduceTimeout = 3 * time.Second // Intercom gives up on an answer after 5 s
)

// webhookDedupPrefix prefixes the Redis keys that remember delivered notifications.
const webhookDedupPrefix = "tl:webhook:"

// Errors returned by WebhookConfig.Validate.
var (
	ErrNoClientSecret        = errors.New("ingest: THREADLINE_INTERCOM_CLIENT_SECRET is required (or -insecure-dev for local development)")
	ErrInvalidWebhookMaxBody = errors.New("ingest: webhook.max-body must be positive")
	ErrInvalidWebhookTTL     = errors.New("ingest: webhook.dedup-ttl must be positive")
	ErrInvalidWebhookTimeout = errors.New("ingest: webhook.produce-timeout must be positive")
)

// WebhookConfig configures the Intercom webhook receiver.
type WebhookConfig struct {
	ClientSecret   config.Secret // the Intercom app's client secret: the key of X-Hub-Signature
	InsecureDev    bool          // accept unsigned deliveries when no secret is set
	MaxBody        int64         // largest body accepted, in bytes (413 above)
	DedupTTL       time.Duration // how long a delivered notification is remembered
	ProduceTimeout time.Duration // how long a delivery may wait for Kafka before it is answered 503
}

// DefaultWebhookConfig returns the defaults: the one place they are written.
func DefaultWebhookConfig() WebhookConfig {
	return WebhookConfig{
		MaxBody:        DefaultWebhookMaxBody,
		DedupTTL:       DefaultWebhookDedupTTL,
		ProduceTimeout: DefaultWebhookProduceTimeout,
	}
}

// RegisterFlags registers the webhook flags with their defaults.
func (c *WebhookConfig) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultWebhookConfig()
	config.SecretVar(fs, &c.ClientSecret, "intercom.client-secret", "the Intercom app's client secret: the key of X-Hub-Signature")
	fs.BoolVar(&c.InsecureDev, "insecure-dev", d.InsecureDev, "accept unsigned webhooks when no client secret is set (local development only)")
	fs.Int64Var(&c.MaxBody, "webhook.max-body", d.MaxBody, "largest webhook body accepted, in bytes")
	config.DurationVar(fs, &c.DedupTTL, "webhook.dedup-ttl", d.DedupTTL, "how long a delivered notification id is remembered")
	config.DurationVar(fs, &c.ProduceTimeout, "webhook.produce-timeout", d.ProduceTimeout,
		"how long a delivery waits for Kafka before it is answered 503, which Intercom retries")
}

// Validate checks the configuration.
func (c WebhookConfig) Validate() error {
	var errs []error
	if !c.ClientSecret.IsSet() && !c.InsecureDev {
		errs = append(errs, ErrNoClientSecret)
	}
	if c.MaxBody <= 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrInvalidWebhookMaxBody, c.MaxBody))
	}
	if c.DedupTTL <= 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidWebhookTTL, c.DedupTTL))
	}
	if c.ProduceTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidWebhookTimeout, c.ProduceTimeout))
	}
	return errors.Join(errs...)
}

// DeliveryMarks is the part of Redis the receiver remembers deliveries in.
type DeliveryMarks interface {
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	Expire(ctx context.Context, key string, expiration time.Duration) *redis.BoolCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// WebhookReceiver answers Intercom's webhook deliveries within milliseconds: it verifies the
// signature over the raw body before parsing anything, drops repeated deliveries, and hands the
// notification to intercom.webhooks.raw for the consumer to normalise. It never answers 410 (which
// unsubscribes the endpoint) nor 429.
type WebhookReceiver struct {
	cfg   WebhookConfig
	marks DeliveryMarks
	out   AsyncProducer
	topic string
	log   *zap.Logger

	deliveries *prometheus.CounterVec
}

// NewWebhookReceiver builds the receiver and registers its metric on reg.
func NewWebhookReceiver(cfg WebhookConfig, marks DeliveryMarks, out AsyncProducer, topic string, log *zap.Logger, reg prometheus.Registerer) (*WebhookReceiver, error) {
	deliveries, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threadline", Subsystem: "ingest", Name: "webhook_deliveries_total",
		Help: "Intercom webhook deliveries by outcome.",
	}, []string{"outcome"}))
	if err != nil {
		return nil, fmt.Errorf("ingest: register webhook metrics: %w", err)
	}
	return &WebhookReceiver{cfg: cfg, marks: marks, out: out, topic: topic, log: log, deliveries: deliveries}, nil
}

func (w *WebhookReceiver) reply(rw http.ResponseWriter, status int, outcome, msg string) {
	w.deliveries.WithLabelValues(outcome).Inc()
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_, _ = io.WriteString(rw, `{"status":"`+msg+`"}`)
}

// ServeHTTP implements http.Handler for POST and HEAD /webhooks/intercom.
func (w *WebhookReceiver) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodHead:
		// Intercom checks the URL with HEAD when it is saved.
		rw.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		rw.Header().Set("Allow", "HEAD, POST")
		w.reply(rw, http.StatusMethodNotAllowed, "method", "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.reply(rw, http.StatusRequestEntityTooLarge, "too_large", "body too large")
			return
		}
		w.reply(rw, http.StatusBadRequest, "unreadable", "unreadable body")
		return
	}
	if w.cfg.ClientSecret.IsSet() {
		if !intercom.VerifySignature([]byte(w.cfg.ClientSecret.Reveal()), body, r.Header.Get(intercom.SignatureHeader)) {
			w.reply(rw, http.StatusUnauthorized, "bad_signature", "invalid signature")
			return
		}
	}
	n, err := intercom.ParseNotification(body)
	if err != nil {
		w.log.Warn("malformed webhook", zap.Error(err))
		w.reply(rw, http.StatusBadRequest, "malformed", "malformed notification")
		return
	}
	if n.Topic == intercom.TopicPing {
		w.reply(rw, http.StatusOK, "ping", "ok")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.ProduceTimeout)
	defer cancel()
	key := webhookDedupPrefix + n.DedupKey()
	// The mark is short-lived until the notification is stored: if this process dies in between,
	// it lapses well before Intercom's retry (a minute later), which is then accepted.
	first, err := w.marks.SetNX(ctx, key, 1, w.pendingTTL()).Result()
	if err != nil {
		// Without Redis a repeat cannot be told apart; pass it on, downstream is idempotent.
		w.log.Warn("webhook dedup unavailable", zap.Error(err))
		first = true
	}
	if !first {
		w.reply(rw, http.StatusOK, "duplicate", "duplicate")
		return
	}
	rec := &kgo.Record{Topic: w.topic, Key: []byte(n.ItemID()), Value: body}
	if err := produceWithin(ctx, w.out, rec); err != nil {
		// Forget the delivery so Intercom's retry is accepted; 503 asks for that retry. (A record
		// that was in flight may still be stored, and then stored again: downstream deduplicates.)
		if derr := w.marks.Del(context.WithoutCancel(ctx), key).Err(); derr != nil {
			w.log.Error("webhook dedup mark not released: Intercom's retry will be taken for a duplicate",
				zap.String("notification", n.DedupKey()), zap.Error(derr))
		}
		w.log.Error("webhook not stored", zap.String("topic", n.Topic), zap.Error(err))
		w.reply(rw, http.StatusServiceUnavailable, "unavailable", "try again")
		return
	}
	if err := w.marks.Expire(context.WithoutCancel(ctx), key, w.cfg.DedupTTL).Err(); err != nil {
		// Stored all the same; a later repeat may pass the dedup, and downstream drops it.
		w.log.Warn("webhook dedup mark not kept", zap.String("notification", n.DedupKey()), zap.Error(err))
	}
	w.reply(rw, http.StatusOK, "accepted", "ok")
}

// pendingTTL is how long a delivery's mark lives before its notification is stored.
func (w *WebhookReceiver) pendingTTL() time.Duration {
	return min(w.cfg.DedupTTL, 2*w.cfg.ProduceTimeout+5*time.Second)
}
