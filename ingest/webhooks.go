package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/intercom"
)

// ErrNoClientSecret is returned when webhooks would be accepted unsigned without the dev switch.
var ErrNoClientSecret = errors.New("ingest: THREADLINE_INTERCOM_CLIENT_SECRET is required (or -insecure-dev for local development)")

// WebhookConfig configures the Intercom webhook receiver.
type WebhookConfig struct {
	ClientSecret config.Secret
	InsecureDev  bool
	MaxBody      int64
	DedupTTL     time.Duration
}

// RegisterFlags registers the webhook flags.
func (c *WebhookConfig) RegisterFlags(fs *flag.FlagSet) {
	config.SecretVar(fs, &c.ClientSecret, "intercom.client-secret", "the Intercom app's client secret: the key of X-Hub-Signature")
	fs.BoolVar(&c.InsecureDev, "insecure-dev", false, "accept unsigned webhooks when no client secret is set (local development only)")
	fs.Int64Var(&c.MaxBody, "webhook.max-body", 1<<20, "largest webhook body accepted, in bytes")
	fs.DurationVar(&c.DedupTTL, "webhook.dedup-ttl", 48*time.Hour, "how long a delivered notification id is remembered")
}

// Validate checks the configuration.
func (c WebhookConfig) Validate() error {
	if !c.ClientSecret.IsSet() && !c.InsecureDev {
		return ErrNoClientSecret
	}
	return nil
}

// WebhookReceiver answers Intercom's webhook deliveries within milliseconds: it verifies the
// signature over the raw body before parsing anything, drops repeated deliveries, and hands the
// notification to intercom.webhooks.raw for the consumer to normalise.
type WebhookReceiver struct {
	cfg   WebhookConfig
	rdb   redis.UniversalClient
	out   Producer
	topic string
	log   *zap.Logger

	deliveries *prometheus.CounterVec
}

// NewWebhookReceiver builds the receiver.
func NewWebhookReceiver(cfg WebhookConfig, rdb redis.UniversalClient, out Producer, topic string, log *zap.Logger, reg prometheus.Registerer) *WebhookReceiver {
	w := &WebhookReceiver{cfg: cfg, rdb: rdb, out: out, topic: topic, log: log,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "ingest", Name: "webhook_deliveries_total",
			Help: "Intercom webhook deliveries by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(w.deliveries)
	return w
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
		if !intercom.VerifySignature([]byte(w.cfg.ClientSecret.Reveal()), body, r.Header.Get("X-Hub-Signature")) {
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
	if n.Topic == "ping" {
		w.reply(rw, http.StatusOK, "ping", "ok")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	key := "tl:webhook:" + n.DedupKey()
	first, err := w.rdb.SetNX(ctx, key, 1, w.cfg.DedupTTL).Result()
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
	if err := w.out.ProduceSync(ctx, rec).FirstErr(); err != nil {
		// Forget the delivery so Intercom's retry is accepted; 503 asks for that retry.
		_ = w.rdb.Del(context.WithoutCancel(ctx), key).Err()
		w.log.Error("webhook not stored", zap.String("topic", n.Topic), zap.Error(err))
		w.reply(rw, http.StatusServiceUnavailable, "unavailable", "try again")
		return
	}
	w.reply(rw, http.StatusOK, "accepted", "ok")
}
