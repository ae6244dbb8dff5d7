package linkstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	promreg "github.com/threadline/threadline/pkg/metrics"
)

// Drop causes of buffered actions.
const (
	dropWindow = "window"
	dropCap    = "cap"
)

// metrics are the link store's Prometheus collectors.
type metrics struct {
	buffered    prometheus.Counter
	dropped     *prometheus.CounterVec
	forwarded   prometheus.Counter
	flushed     prometheus.Counter
	linked      *prometheus.CounterVec
	pending     prometheus.Counter
	redisErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		buffered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "actions_buffered_total",
			Help: "Actions of unlinked sessions put in the pre-link buffer.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "actions_dropped_total",
			Help: "Buffered actions dropped before a link, oldest first, by cause (window or cap).",
		}, []string{"cause"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "actions_forwarded_total",
			Help: "Actions sent live to a linked conversation (one per receiving conversation).",
		}),
		flushed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "actions_flushed_total",
			Help: "Buffered actions sent to a conversation as a pre-conversation batch at link time.",
		}),
		linked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "links_total",
			Help: "Sessions linked to a conversation, by how the link was found (hint, external_id, email, identity).",
		}, []string{"via"}),
		pending: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "conversations_pending_total",
			Help: "Conversations kept pending because their user had no known session yet.",
		}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "linker", Name: "redis_errors_total",
			Help: "Redis round trips that failed, by operation.",
		}, []string{"op"}),
	}
	for _, cause := range []string{dropWindow, dropCap} {
		m.dropped.WithLabelValues(cause)
	}
	if reg == nil {
		return m
	}
	m.buffered = register(reg, log, m.buffered)
	m.dropped = register(reg, log, m.dropped)
	m.forwarded = register(reg, log, m.forwarded)
	m.flushed = register(reg, log, m.flushed)
	m.linked = register(reg, log, m.linked)
	m.pending = register(reg, log, m.pending)
	m.redisErrors = register(reg, log, m.redisErrors)
	return m
}

// register registers c, sharing the collector already registered under its name, so that two
// stores on one registry share their counters.
func register[C prometheus.Collector](reg prometheus.Registerer, log *zap.Logger, c C) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		log.Warn("linkstore: metric not registered", zap.Error(err))
	}
	return c
}
