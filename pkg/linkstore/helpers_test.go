package linkstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
)

// t0 is the start of every scenario's clock.
var t0 = time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the stores of a scenario.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

// clientFactory returns a new client to the Redis (or Redis Cluster) a suite runs against.
type clientFactory func(t testing.TB) redis.UniversalClient

// harness is one scenario: its own id namespace, clock and client factory.
type harness struct {
	t         *testing.T
	newClient clientFactory
	clock     *clock
	ns        string
	ctx       context.Context
}

func newHarness(t *testing.T, newClient clientFactory) *harness {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, newClient: newClient, clock: &clock{t: t0}, ns: hex.EncodeToString(b) + "-", ctx: context.Background()}
}

// id namespaces a name so scenarios sharing a Redis never meet.
func (h *harness) id(name string) string { return h.ns + name }

// store returns a Store with its own client and registry.
func (h *harness) store(cfg Config) (*Store, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return New(h.newClient(h.t), cfg, zaptest.NewLogger(h.t), reg, h.clock.Now), reg
}

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// who builds an identity from namespaced names: distinct id, then optional key=value pairs
// (anon, user, email, intercom).
func (h *harness) who(distinct string, kv ...string) messages.Identity {
	id := messages.Identity{DistinctID: h.id(distinct)}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "anon":
			id.AnonDistinctID = h.id(v)
		case "user":
			id.UserID = h.id(v)
		case "email":
			id.EmailHash = "h:" + h.id(v)
		case "intercom":
			id.IntercomUserID = h.id(v)
		}
	}
	return id
}

func (h *harness) action(session, id string, when time.Time, who messages.Identity) messages.ProductAction {
	return messages.ProductAction{
		Version: messages.Version,
		Action: messages.Action{
			ActionID:  h.id(id),
			SessionID: h.id(session),
			EventTime: when,
			Event:     "$pageview",
			Kind:      messages.KindPageview,
			Path:      "/" + id,
			Text:      "User opened the " + id + " page",
		},
		Identity: who,
	}
}

func (h *harness) identify(session, id string, when time.Time, anon, user string) messages.ProductAction {
	a := h.action(session, id, when, h.who(user, "anon="+anon))
	a.Action.Event = "$identify"
	a.Action.Kind = messages.KindIdentify
	a.Action.Text = "User identified"
	return a
}

// event builds a conversation event; kv sets ext, email, hint, contact, merged_from, workspace.
func (h *harness) event(eventID, typ, conv string, when time.Time, kv ...string) messages.ConversationEvent {
	ev := messages.ConversationEvent{
		Version:    messages.Version,
		EventID:    h.id(eventID),
		Type:       typ,
		OccurredAt: when,
		Role:       "user",
	}
	if conv != "" {
		ev.ConversationID = h.id(conv)
	}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "ext":
			ev.ExternalID = h.id(v)
		case "email":
			ev.EmailHash = "h:" + h.id(v)
		case "hint":
			ev.SessionHint = h.id(v)
		case "contact":
			ev.ContactID = h.id(v)
		case "merged_from":
			ev.MergedFromID = h.id(v)
		case "workspace":
			ev.WorkspaceID = v
		}
	}
	return ev
}

func (h *harness) route(s *Store, actions ...messages.ProductAction) []messages.ConversationActions {
	h.t.Helper()
	out, err := s.RouteBatch(h.ctx, actions)
	if err != nil {
		h.t.Fatalf("RouteBatch: %v", err)
	}
	return out
}

func (h *harness) apply(s *Store, ev messages.ConversationEvent) []messages.ConversationActions {
	h.t.Helper()
	out, err := s.Apply(h.ctx, ev)
	if err != nil {
		h.t.Fatalf("Apply %s: %v", ev.Type, err)
	}
	return out
}

// describe renders output without the namespace: "conv pre a1 a2" or "conv live a3", and checks
// the invariants every message keeps.
func (h *harness) describe(out []messages.ConversationActions) []string {
	h.t.Helper()
	lines := make([]string, 0, len(out))
	for _, m := range out {
		if m.Version != messages.Version {
			h.t.Errorf("message version %d", m.Version)
		}
		if len(m.Actions) == 0 {
			h.t.Errorf("empty message for %s", m.ConversationID)
		}
		mode := "live"
		if m.PreConversation {
			mode = "pre"
		} else if len(m.Actions) != 1 {
			h.t.Errorf("live message with %d actions", len(m.Actions))
		}
		parts := []string{strings.TrimPrefix(m.ConversationID, h.ns), mode}
		for _, a := range m.Actions {
			if a.SessionID != m.SessionID {
				h.t.Errorf("action %s of session %s in a message of session %s", a.ActionID, a.SessionID, m.SessionID)
			}
			parts = append(parts, strings.TrimPrefix(a.ActionID, h.ns))
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return lines
}

// expect fails unless out renders as want.
func (h *harness) expect(what string, out []messages.ConversationActions, want ...string) {
	h.t.Helper()
	got := h.describe(out)
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// counter reads a counter of reg; labels are name=value pairs.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = v
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func matches(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (h *harness) expectCounter(reg *prometheus.Registry, want float64, name string, labels ...string) {
	h.t.Helper()
	if got := counter(h.t, reg, name, labels...); got != want {
		h.t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}
