package kafka

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/pkg/metrics"
)

// consumerMetrics are the metrics of one Consumer: threadline_consumer_*, with the const labels
// service and group.
type consumerMetrics struct {
	recordsConsumed *prometheus.CounterVec   // {topic}
	handlerErrors   *prometheus.CounterVec   // {class}
	dlqRecords      *prometheus.CounterVec   // {reason}
	retries         prometheus.Counter       // transient failures retried
	commits         *prometheus.CounterVec   // {result}
	lag             *prometheus.GaugeVec     // {topic, partition}
	assigned        prometheus.Gauge         // partitions assigned to this member
	paused          prometheus.Gauge         // 1 while Pause is in effect
	ready           prometheus.Gauge         // 1 once caught up
	handleSeconds   *prometheus.HistogramVec // {topic}
}

func newConsumerMetrics(reg prometheus.Registerer, service, group string) (*consumerMetrics, error) {
	labels := prometheus.Labels{"service": service, "group": group}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: MetricsNamespace, Subsystem: "consumer", Name: name, Help: help, ConstLabels: labels}
	}
	m := &consumerMetrics{
		recordsConsumed: prometheus.NewCounterVec(prometheus.CounterOpts(opts("records_consumed_total", "Records whose processing finished (handled or dead-lettered).")), []string{"topic"}),
		handlerErrors:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("handler_errors_total", "Handler errors by class: transient, permanent or fatal.")), []string{"class"}),
		dlqRecords:      prometheus.NewCounterVec(prometheus.CounterOpts(opts("dlq_records_total", "Records sent to the dead-letter topic, by reason.")), []string{"reason"}),
		retries:         prometheus.NewCounter(prometheus.CounterOpts(opts("retries_total", "Retries after transient failures."))),
		commits:         prometheus.NewCounterVec(prometheus.CounterOpts(opts("commits_total", "Offset commits, by result (ok or error).")), []string{"result"}),
		lag:             prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("lag", "Records not yet processed on an assigned partition.")), []string{"topic", "partition"}),
		assigned:        prometheus.NewGauge(prometheus.GaugeOpts(opts("assigned_partitions", "Partitions assigned to this member."))),
		paused:          prometheus.NewGauge(prometheus.GaugeOpts(opts("paused", "1 while fetching is paused by Pause or PauseWhile."))),
		ready:           prometheus.NewGauge(prometheus.GaugeOpts(opts("ready", "1 once the consumer has caught up with its partitions."))),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: MetricsNamespace, Subsystem: "consumer", Name: "handle_seconds",
			Help: "Duration of handler calls.", ConstLabels: labels, Buckets: prometheus.DefBuckets,
		}, []string{"topic"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	m.recordsConsumed = register(reg, m.recordsConsumed, &errs)
	m.handlerErrors = register(reg, m.handlerErrors, &errs)
	m.dlqRecords = register(reg, m.dlqRecords, &errs)
	m.retries = register(reg, m.retries, &errs)
	m.commits = register(reg, m.commits, &errs)
	m.lag = register(reg, m.lag, &errs)
	m.assigned = register(reg, m.assigned, &errs)
	m.paused = register(reg, m.paused, &errs)
	m.ready = register(reg, m.ready, &errs)
	m.handleSeconds = register(reg, m.handleSeconds, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kafka: register consumer metrics: %w", err)
	}
	return m, nil
}

// register registers c on reg (sharing an identical collector already there: two consumers of one
// service and group in one process share their metrics); other failures are appended to errs.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	c, err := metrics.Register(reg, c)
	if err != nil {
		*errs = append(*errs, err)
	}
	return c
}

func (m *consumerMetrics) setLag(topic string, partition int32, lag int64) {
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(lag))
}

func (m *consumerMetrics) dropLag(topic string, partition int32) {
	m.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}

func (m *consumerMetrics) commit(err error) {
	if err != nil {
		m.commits.WithLabelValues("error").Inc()
		return
	}
	m.commits.WithLabelValues("ok").Inc()
}
