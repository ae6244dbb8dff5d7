package capture

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/posthog"
)

// CapturedEvent is one accepted event, in the shape PostHog capture writes to events_plugin_ingestion:
// the event as the SDK sent it is the JSON string in Data.
type CapturedEvent struct {
	UUID       string `json:"uuid"`
	DistinctID string `json:"distinct_id"`
	IP         string `json:"ip"`
	Data       string `json:"data"`
	Now        string `json:"now"`               // server receive time, RFC 3339
	SentAt     string `json:"sent_at,omitempty"` // the client's send time, RFC 3339; absent when unknown
	Token      string `json:"token"`
	Event      string `json:"event"`
	Timestamp  string `json:"timestamp"` // the event time resolved by PostHog's rules, RFC 3339
	// HistoricalMigration marks backfill batches, which PostHog routes to its historical stream.
	HistoricalMigration bool `json:"historical_migration,omitempty"`
}

// Key is the Kafka key PostHog capture uses: "<token>:<distinct_id>".
func (e CapturedEvent) Key() string { return e.Token + ":" + e.DistinctID }

// ErrEventTooLarge is what a Publisher returns for an event larger than a record may be.
var ErrEventTooLarge = errors.New("capture: event too large to store")

// Publisher takes accepted events, in request order; an error makes the request fail with 503, which
// SDKs retry, except ErrEventTooLarge, which is answered 413: retrying cannot help.
type Publisher interface {
	Publish(ctx context.Context, events []CapturedEvent) error
}

// handler serves the capture endpoint.
type handler struct {
	cfg     Config
	pub     Publisher
	log     *zap.Logger
	now     func() time.Time
	tokens  map[string]struct{}
	metrics *metrics
}

type metrics struct {
	requests *prometheus.CounterVec // by route and status code
	events   prometheus.Counter
	rejected *prometheus.CounterVec // by reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_capture_requests_total",
			Help: "Capture endpoint requests, by route and HTTP status code.",
		}, []string{"route", "code"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_capture_events_total",
			Help: "Events accepted by the capture endpoint and published.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_capture_rejected_total",
			Help: "Capture requests refused, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.requests, m.events, m.rejected)
	return m
}

// NewHandler returns the capture endpoint. It registers its metrics on reg (once per registry) and
// takes the server time from now. It logs once when cfg accepts any token.
func NewHandler(cfg Config, pub Publisher, log *zap.Logger, reg prometheus.Registerer, now func() time.Time) http.Handler {
	h := &handler{cfg: cfg, pub: pub, log: log, now: now, metrics: newMetrics(reg)}
	if len(cfg.Tokens) > 0 {
		h.tokens = make(map[string]struct{}, len(cfg.Tokens))
		for _, t := range cfg.Tokens {
			h.tokens[t] = struct{}{}
		}
	} else {
		log.Warn("capture accepts events for any project token: set posthog.tokens (THREADLINE_POSTHOG_TOKENS) to restrict it")
	}
	mux := http.NewServeMux()
	// the event routes, each with and without a trailing slash
	for _, route := range []string{"/e", "/i/v0/e", "/batch", "/capture", "/track"} {
		mux.Handle(route, h.withCORS(route, http.HandlerFunc(h.capture)))
		mux.Handle(route+"/{$}", h.withCORS(route, http.HandlerFunc(h.capture)))
	}
	mux.Handle("/array/{token}/config", h.withCORS("/array/config", http.HandlerFunc(h.remoteConfig)))
	mux.Handle("/array/{token}/config.js", h.withCORS("/array/config.js", http.HandlerFunc(h.remoteConfigJS)))
	for _, route := range []string{"/flags", "/decide"} {
		mux.Handle(route, h.withCORS(route, http.HandlerFunc(h.flags)))
		mux.Handle(route+"/{$}", h.withCORS(route, http.HandlerFunc(h.flags)))
	}
	return mux
}

// statusRecorder remembers the status code written, for the request metric.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// withCORS answers preflight requests and mirrors the request's Origin, as PostHog capture does, and
// counts the request.
func (h *handler) withCORS(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			h.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		}()
		hdr := rec.Header()
		if origin := r.Header.Get("Origin"); origin != "" {
			hdr.Set("Access-Control-Allow-Origin", origin)
			hdr.Set("Access-Control-Allow-Credentials", "true")
			hdr.Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			hdr.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				hdr.Set("Access-Control-Allow-Headers", req)
				hdr.Add("Vary", "Access-Control-Request-Headers")
			}
			hdr.Set("Access-Control-Max-Age", "86400")
			rec.WriteHeader(http.StatusOK)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			hdr.Set("Allow", "GET, POST, OPTIONS")
			h.fail(rec, http.StatusMethodNotAllowed, "method", "method not allowed")
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// fail answers an error in PostHog's error shape and counts it.
func (h *handler) fail(w http.ResponseWriter, code int, reason, detail string) {
	h.metrics.rejected.WithLabelValues(reason).Inc()
	writeJSON(w, code, map[string]any{"type": "validation_error", "code": reason, "detail": detail})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// capture serves the event routes.
func (h *handler) capture(w http.ResponseWriter, r *http.Request) {
	limit := h.cfg.MaxBodyBytes
	if strings.HasPrefix(r.URL.Path, "/batch") {
		limit = h.cfg.MaxBatchBodyBytes
	}
	if r.ContentLength > limit {
		h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
			return
		}
		h.fail(w, http.StatusBadRequest, "read", "could not read the request body")
		return
	}

	query := r.URL.Query()
	hint := query.Get("compression")
	if hint == "" {
		if ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce != "" && ce != "identity" {
			hint = ce
		}
	}
	payload := body
	if len(strings.TrimSpace(string(body))) == 0 {
		// legacy GET (or empty POST) with ?data=
		data := query.Get("data")
		if data == "" {
			h.fail(w, http.StatusBadRequest, "empty", "no event data in the request")
			return
		}
		payload = []byte(restorePlus(data))
	}
	// form bodies (data=…), gzip, base64 and lz-string are recognised by their content
	decoded, err := posthog.UnwrapBody(payload, hint, h.cfg.MaxDecodedBytes)
	if err != nil {
		if errors.Is(err, posthog.ErrTooLarge) {
			h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "decoded payload too large")
			return
		}
		h.fail(w, http.StatusBadRequest, "decode", "undecodable payload")
		return
	}
	req, err := posthog.ParseCaptureRequest(decoded)
	if err != nil {
		if errors.Is(err, posthog.ErrMixedTokens) {
			h.fail(w, http.StatusUnauthorized, "token", "events carry different project tokens")
			return
		}
		h.fail(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if req.Token == "" {
		req.Token = firstNonEmpty(query.Get("token"), query.Get("api_key"))
	}
	now := h.now().UTC()
	sentAt := req.SentAt
	if sentAt.IsZero() {
		sentAt = querySentAt(query)
	}
	ip := h.clientIP(r)

	events := make([]CapturedEvent, 0, len(req.Events))
	for i := range req.Events {
		re := &req.Events[i]
		token := firstNonEmpty(re.Token, req.Token)
		if reason := h.refuseToken(token); reason != "" {
			h.fail(w, http.StatusUnauthorized, "token", reason)
			return
		}
		ev := CapturedEvent{
			UUID:                re.UUID,
			DistinctID:          re.DistinctID,
			IP:                  ip,
			Data:                string(re.CaptureJSON()),
			Now:                 now.Format(time.RFC3339Nano),
			Token:               token,
			Event:               re.Name,
			Timestamp:           re.ClientTime(sentAt).Resolve(now).Format(time.RFC3339Nano),
			HistoricalMigration: req.HistoricalMigration,
		}
		if ev.UUID == "" {
			ev.UUID = posthog.NewUUIDv7(now)
		}
		if !sentAt.IsZero() {
			ev.SentAt = sentAt.UTC().Format(time.RFC3339Nano)
		}
		events = append(events, ev)
	}
	if err := h.pub.Publish(r.Context(), events); err != nil {
		if errors.Is(err, ErrEventTooLarge) {
			h.fail(w, http.StatusRequestEntityTooLarge, "too_large", "an event is too large to store")
			return
		}
		h.log.Error("capture: publishing events failed", zap.Int("events", len(events)), zap.Error(err))
		h.fail(w, http.StatusServiceUnavailable, "publish", "events could not be stored; retry")
		return
	}
	h.metrics.events.Add(float64(len(events)))
	writeJSON(w, http.StatusOK, map[string]int{"status": 1})
}

// refuseToken returns why a project token is refused, or "".
func (h *handler) refuseToken(token string) string {
	switch {
	case token == "":
		return "no project token"
	case strings.HasPrefix(token, personalKeyPrefix):
		return "personal API keys cannot capture events"
	case h.tokens != nil:
		if _, ok := h.tokens[token]; !ok {
			return "unknown project token"
		}
	}
	return ""
}

// restorePlus puts back the '+' of base64 that query decoding turned into spaces.
func restorePlus(s string) string { return strings.ReplaceAll(s, " ", "+") }

// querySentAt reads the send time older posthog-js puts in the query: _ or sent_at, in milliseconds.
func querySentAt(q map[string][]string) time.Time {
	for _, key := range []string{"_", "sent_at"} {
		vs := q[key]
		if len(vs) == 0 {
			continue
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(vs[0]), 10, 64)
		if err == nil && ms >= 1e12 && ms < 1e14 { // milliseconds; seconds are ignored, as PostHog does
			return time.UnixMilli(ms).UTC()
		}
		if t, err := posthog.ParseTimestamp(vs[0]); err == nil && key == "sent_at" && t.Year() > 2000 {
			return t
		}
	}
	return time.Time{}
}

// clientIP is the first X-Forwarded-For address when trusted, else the peer address.
func (h *handler) clientIP(r *http.Request) string {
	if h.cfg.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := strings.TrimSpace(first); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
