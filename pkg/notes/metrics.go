package notes

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the writer's Prometheus series.
type metrics struct {
	notesPosted        *prometheus.CounterVec // kind
	actionsPerNote     prometheus.Histogram   // lines in each actions note
	actionLatency      prometheus.Histogram   // event time → note stored, per line
	calls              *prometheus.CounterVec // op, outcome
	redactions         *prometheus.CounterVec // outcome
	breakerState       *prometheus.GaugeVec   // workspace
	rateWaits          prometheus.Counter     // times a call waited for budget
	rateWaitSeconds    prometheus.Counter     // total time waited for budget
	unknownResolutions *prometheus.CounterVec // result: found | not_found
	duplicatesDropped  prometheus.Counter     // actions Enqueue already knew
	actionsAccepted    prometheus.Counter     // actions Enqueue stored
	deadLettered       prometheus.Counter     // actions sent to the dead-letter sink
	flushErrors        *prometheus.CounterVec // reason
	events             *prometheus.CounterVec // outcome of data events
	collectors         []prometheus.Collector // everything above, for registration
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notesPosted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_notes_posted_total", Help: "Notes written to Intercom, by kind (actions, summary).",
		}, []string{"kind"}),
		actionsPerNote: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "threadline_notes_actions_per_note",
			Help:    "Actions coalesced into each actions note.",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 20, 30, 50, 100},
		}),
		events: newEventsMetric(),
		actionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "threadline_notes_action_latency_seconds",
			Help:    "End-to-end latency of each action: from its event time to its note stored in Intercom.",
			Buckets: []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300},
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_notes_intercom_calls_total", Help: "Intercom calls, by operation and outcome.",
		}, []string{"op", "outcome"}),
		redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_notes_redactions_total", Help: "Raw notes redacted after a summary, by outcome (redacted, already, gone, rejected).",
		}, []string{"outcome"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "threadline_notes_breaker_state", Help: "Circuit breaker state per workspace: 0 closed, 1 half-open, 2 open.",
		}, []string{"workspace"}),
		rateWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_notes_rate_budget_waits_total", Help: "Times an Intercom call waited for the shared rate budget.",
		}),
		rateWaitSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_notes_rate_budget_wait_seconds_total", Help: "Time Intercom calls spent waiting for the shared rate budget.",
		}),
		unknownResolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_notes_unknown_outcome_resolutions_total", Help: "Posts of unknown outcome resolved by looking for the note's reference, by result (found, not_found).",
		}, []string{"result"}),
		duplicatesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_notes_duplicate_actions_dropped_total", Help: "Actions dropped because the conversation already had them.",
		}),
		actionsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_notes_actions_accepted_total", Help: "Actions accepted for a note.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_notes_dead_lettered_actions_total", Help: "Actions sent to the dead-letter topic: their conversation is gone or Intercom rejected their note.",
		}),
		flushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_notes_flush_errors_total", Help: "Failed flushes of a conversation, by reason.",
		}, []string{"reason"}),
	}
	m.collectors = []prometheus.Collector{
		m.notesPosted, m.actionsPerNote, m.actionLatency, m.events, m.calls, m.redactions, m.breakerState, m.rateWaits,
		m.rateWaitSeconds, m.unknownResolutions, m.duplicatesDropped, m.actionsAccepted, m.deadLettered,
		m.flushErrors,
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("notes: register metrics: %w", err)
		}
	}
	return m, nil
}
