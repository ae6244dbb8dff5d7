package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAnIdenticalCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "threadline_test_total", Help: "test"}
	first, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	second.Inc()
	first.Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := mfs[0].GetMetric()[0].GetCounter().GetValue(); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
}

func TestRegisterReportsAConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_x", Help: "a"})); err != nil {
		t.Fatal(err)
	}
	// Same name, different kind: not shareable.
	if _, err := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "threadline_x", Help: "a"})); err == nil {
		t.Fatal("want a registration error")
	}
}

func TestRegisterWithoutRegistry(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_y", Help: "y"})
	got, err := Register(nil, c)
	if err != nil || got != c {
		t.Fatalf("got %v, %v", got, err)
	}
}
