package triggers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/schemas"
)

// t0 is when every scenario starts, in event time and on the wall clock.
var t0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

// clock is a settable wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// mustParse parses rules from YAML or fails the test.
func mustParse(t testing.TB, src string) *Rules {
	t.Helper()
	r, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

// testdataRules loads a rules file from testdata.
func testdataRules(t testing.TB, name string) *Rules {
	t.Helper()
	r, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
	return r
}

// issueRules are the rules of the issue, as the example file ships them.
func issueRules(t testing.TB) *Rules {
	t.Helper()
	examples, err := schemas.TriggersExamples()
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		if ex.Name == "issue.yaml" {
			r, err := Parse(ex.Data, ex.Name)
			if err != nil {
				t.Fatalf("issue.yaml: %v", err)
			}
			return r
		}
	}
	t.Fatal("no example issue.yaml")
	return nil
}

// rig is one Redis and what tests build on it.
type rig struct {
	t     *testing.T
	srv   *redistest.Server
	rdb   redis.UniversalClient
	clock *clock
	reg   *prometheus.Registry
	ctx   context.Context
}

// backend makes the rig of a test: a redis-server of its own (newRig), or an emptied Redis
// Cluster (clusterBackend).
type backend func(t *testing.T) *rig

func newRig(t *testing.T) *rig {
	srv := redistest.Start(t)
	return &rig{t: t, srv: srv, rdb: srv.Client(t), clock: newClock(), reg: prometheus.NewRegistry(), ctx: context.Background()}
}

// engine builds an engine on the rig's Redis, clock and registry (a second one is another replica).
func (r *rig) engine(rules *Rules, opts ...Option) *Engine {
	opts = append([]Option{WithClock(r.clock.Now)}, opts...)
	return NewEngine(rules, r.rdb, zaptest.NewLogger(r.t), r.reg, opts...)
}

// evaluate evaluates and confirms, as a caller that produced the events would.
func (r *rig) evaluate(e *Engine, inputs ...Input) []messages.IntercomEvent {
	r.t.Helper()
	out, err := e.EvaluateBatch(r.ctx, inputs)
	if err != nil {
		r.t.Fatalf("EvaluateBatch: %v", err)
	}
	if err := e.Confirm(r.ctx, out); err != nil {
		r.t.Fatalf("Confirm: %v", err)
	}
	return out
}

// tick ticks and confirms.
func (r *rig) tick(e *Engine, now time.Time) []messages.IntercomEvent {
	r.t.Helper()
	out, err := e.Tick(r.ctx, now)
	if err != nil {
		r.t.Fatalf("Tick: %v", err)
	}
	if err := e.Confirm(r.ctx, out); err != nil {
		r.t.Fatalf("Confirm: %v", err)
	}
	return out
}

// counter reads one series of a counter vector from the rig's registry (0 when absent).
func (r *rig) counter(name string, labels map[string]string) float64 {
	r.t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// user is the identified user of the scenarios.
var user = User{UserID: "usr_2Qm8xK4p", WorkspaceID: "ab12cd34"}

// act builds a product action of session "sess-1" at t0 + at.
func act(id, event, kind, path string, at time.Duration, props map[string]string) messages.ProductAction {
	return messages.ProductAction{
		Version: messages.Version,
		Action: messages.Action{
			ActionID: id, SessionID: "sess-1", EventTime: t0.Add(at), Event: event, Kind: kind,
			Path: path, Page: pageName(path), Text: "User did " + event,
		},
		Identity:   messages.Identity{DistinctID: user.UserID, UserID: user.UserID},
		Properties: props,
	}
}

func pageName(path string) string {
	if len(path) > 1 {
		return path[1:]
	}
	return path
}

func pageview(id, path string, at time.Duration) messages.ProductAction {
	return act(id, "$pageview", messages.KindPageview, path, at, nil)
}

func pageleave(id, path string, at time.Duration) messages.ProductAction {
	return act(id, "$pageleave", messages.KindPageleave, path, at, nil)
}

func in(pa messages.ProductAction, u User) Input { return Input{Action: &pa, User: u} }

// names lists the events' rule names, in order.
func names(events []messages.IntercomEvent) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.EventName
	}
	return out
}

// validateEvents checks every event against the intercom.events schema.
func validateEvents(t testing.TB, events []messages.IntercomEvent) {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(schemas.IntercomEvents, b); err != nil {
			t.Errorf("event %s: %v", b, err)
		}
	}
}

// writeFile writes a rules file into a temporary directory and returns its path.
func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "triggers.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
