package triggers

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	promreg "github.com/threadline/threadline/pkg/metrics"
)

// Sources of an emitted event (label "source").
const (
	sourceAction     = "action"     // the matching action itself
	sourceDwell      = "dwell"      // a tick found the user still on the page past the dwell
	sourceRedelivery = "redelivery" // emitted again because it was not confirmed in time
)

// Reasons a matching action emitted nothing (label "reason").
const (
	skipAnonymous = "anonymous" // no known Intercom user: never guessed
	skipLimited   = "every"     // the rule's every allowed no more for this user yet
	skipDuplicate = "duplicate" // decided before (a replay or a retry)
	skipLeft      = "left"      // dwell: the user left the page before the threshold
	skipInvalid   = "invalid"   // the action has no id or no event time
)

// Reasons a metadata key was left out (label "reason").
const (
	dropMissing      = "missing"       // the action has no such property
	dropPersonalData = "personal_data" // the value holds personal data (redaction missed it)
)

// metrics are the trigger engine's Prometheus collectors.
type metrics struct {
	actions           prometheus.Counter
	invalidProperties prometheus.Counter
	matched           *prometheus.CounterVec
	emitted           *prometheus.CounterVec
	skipped           *prometheus.CounterVec
	metadataDrops     *prometheus.CounterVec
	gaveUp            *prometheus.CounterVec
	redisErrors       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, log *zap.Logger) *metrics {
	m := &metrics{
		actions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "actions_total",
			Help: "Product actions evaluated against the trigger rules.",
		}),
		invalidProperties: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "invalid_properties_total",
			Help: "Actions whose raw properties were not a JSON object of strings, evaluated as having none.",
		}),
		matched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "matched_total",
			Help: "Actions that met a rule's conditions, by rule (dwell rules count the pageview).",
		}, []string{"rule"}),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "emitted_total",
			Help: "Intercom data events emitted, by rule and source (action, dwell, redelivery).",
		}, []string{"rule", "source"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "skipped_total",
			Help: "Matches that emitted nothing, by rule and reason (anonymous, every, duplicate, left, invalid).",
		}, []string{"rule", "reason"}),
		metadataDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "metadata_dropped_total",
			Help: "Metadata keys left out of an event, by rule and reason (missing, personal_data).",
		}, []string{"rule", "reason"}),
		gaveUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "gave_up_total",
			Help: "Events never confirmed after every redelivery, by rule.",
		}, []string{"rule"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "triggers", Name: "redis_errors_total",
			Help: "Redis round trips that failed, by operation.",
		}, []string{"op"}),
	}
	if reg == nil {
		return m
	}
	m.actions = register(reg, log, m.actions)
	m.invalidProperties = register(reg, log, m.invalidProperties)
	m.matched = register(reg, log, m.matched)
	m.emitted = register(reg, log, m.emitted)
	m.skipped = register(reg, log, m.skipped)
	m.metadataDrops = register(reg, log, m.metadataDrops)
	m.gaveUp = register(reg, log, m.gaveUp)
	m.redisErrors = register(reg, log, m.redisErrors)
	return m
}

// ruleCounters are one rule's series, resolved once.
type ruleCounters struct {
	matched                  prometheus.Counter
	emitted                  map[string]prometheus.Counter // by source
	skipped                  map[string]prometheus.Counter // by reason
	missingKey, personalData prometheus.Counter
	gaveUp                   prometheus.Counter
}

// forRule resolves (and so creates, at zero) every series of one rule.
func (m *metrics) forRule(rule string) ruleCounters {
	c := ruleCounters{
		matched:      m.matched.WithLabelValues(rule),
		emitted:      map[string]prometheus.Counter{},
		skipped:      map[string]prometheus.Counter{},
		missingKey:   m.metadataDrops.WithLabelValues(rule, dropMissing),
		personalData: m.metadataDrops.WithLabelValues(rule, dropPersonalData),
		gaveUp:       m.gaveUp.WithLabelValues(rule),
	}
	for _, s := range []string{sourceAction, sourceDwell, sourceRedelivery} {
		c.emitted[s] = m.emitted.WithLabelValues(rule, s)
	}
	for _, r := range []string{skipAnonymous, skipLimited, skipDuplicate, skipLeft, skipInvalid} {
		c.skipped[r] = m.skipped.WithLabelValues(rule, r)
	}
	return c
}

// register registers c, sharing the collector already registered under its name, so that two
// engines on one registry share their counters.
func register[C prometheus.Collector](reg prometheus.Registerer, log *zap.Logger, c C) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		log.Warn("triggers: metric not registered", zap.Error(err))
	}
	return c
}
