package intercom

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the client's Prometheus metrics: one set per registry, shared by the clients that use it.
type Metrics struct {
	requests  *prometheus.CounterVec   // by endpoint and status ("error" when no answer came)
	retries   *prometheus.CounterVec   // by endpoint
	duration  *prometheus.HistogramVec // by endpoint
	remaining prometheus.Gauge         // X-RateLimit-Remaining last seen
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_intercom_requests_total", Help: "Intercom API requests by endpoint and HTTP status (error: no answer).",
		}, []string{"endpoint", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_intercom_retries_total", Help: "Intercom API requests repeated after a 408, 429, 5xx or transport error.",
		}, []string{"endpoint"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "threadline_intercom_request_duration_seconds", Help: "Duration of one Intercom API request attempt.",
			Buckets: prometheus.ExponentialBuckets(0.025, 2, 10),
		}, []string{"endpoint"}),
		remaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_intercom_rate_limit_remaining", Help: "X-RateLimit-Remaining of the last Intercom answer that carried it.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.duration, m.remaining} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("intercom: register metrics: %w", err)
		}
	}
	return m, nil
}

// Option changes a Client.
type Option func(*Client)

// WithMetrics makes the client record m.
func WithMetrics(m *Metrics) Option { return func(c *Client) { c.metrics = m } }

func (m *Metrics) observe(endpoint string, status int, took time.Duration) {
	if m == nil {
		return
	}
	s := "error"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(endpoint, s).Inc()
	m.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}

func (m *Metrics) retry(endpoint string) {
	if m != nil {
		m.retries.WithLabelValues(endpoint).Inc()
	}
}

func (m *Metrics) rateLimit(rl RateLimit) {
	if m != nil {
		m.remaining.Set(float64(rl.Remaining))
	}
}
