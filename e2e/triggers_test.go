package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// With trigger rules, the journey's rage click and failed payment reach Intercom as data events of
// the identified user, once each, timed by the actions themselves, with metadata from the (redacted)
// event properties, through the linker and the notewriter.
func TestTriggerRulesPostDataEventsForTheUser(t *testing.T) {
	rules, err := filepath.Abs(filepath.Join("testdata", "triggers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, "THREADLINE_TRIGGERS_FILE="+rules)
	j, err := demo.Fresh(time.Now().Add(-time.Minute), 1)
	if err != nil {
		t.Fatal(err)
	}
	before, after := j.Events[:demo.IdentifyIndex+1], j.Events[demo.IdentifyIndex+1:]
	for _, ev := range before {
		p.produceRaw(t, j.AnonID, ev.Value)
	}
	// Intercom knows the user once they wrote to support.
	conv := p.Fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: j.UserID, Email: j.Email, Role: "user"},
		"<p>Payment keeps failing</p>", "https://app.acme.dev/checkout", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.Fake.DeliverWebhook(ctx, p.IngestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
		t.Fatal(err)
	}
	for _, ev := range after {
		p.produceRaw(t, j.UserID, ev.Value)
	}
	kafkatest.Eventually(t, 60*time.Second, func() bool { return len(p.Fake.Events()) >= 2 },
		"two data events in Intercom, have %d", len(p.Fake.Events()))
	// Let a late duplicate show itself.
	time.Sleep(2 * time.Second)

	byName := map[string][]fakeintercom.Event{}
	for _, ev := range p.Fake.Events() {
		byName[ev.EventName] = append(byName[ev.EventName], ev)
	}
	times := map[string]time.Time{}
	for _, ev := range j.Events {
		times[ev.Name] = ev.Time
	}
	for name, event := range map[string]string{"rage-clicked": "$rageclick", "failed-payment-validation": "payment_validation_failed"} {
		got := byName[name]
		if len(got) != 1 {
			t.Fatalf("%s: %d data events, want exactly 1: %+v", name, len(got), p.Fake.Events())
		}
		if got[0].UserID != j.UserID || got[0].CreatedAt != times[event].Unix() {
			t.Fatalf("%s: user %q at %d, want %q at %d", name, got[0].UserID, got[0].CreatedAt, j.UserID, times[event].Unix())
		}
	}
	meta := byName["failed-payment-validation"][0].Metadata
	if meta["error_code"] != "incorrect_number" || meta["plan"] != "pro" {
		t.Fatalf("metadata = %v", meta)
	}
	for k, v := range meta {
		if s, ok := v.(string); ok && len(redact.Find(s)) > 0 {
			t.Fatalf("metadata %s carries personal data: %q", k, s)
		}
	}
	if len(p.Fake.Events()) != 2 {
		t.Fatalf("data events = %+v, want only the two rules' events", p.Fake.Events())
	}
}

// A user the product knows only by email (no user id, an anonymous distinct id) reaches Intercom's
// data events as the contact their conversation named, never by the address itself.
func TestTriggerRulesReachAUserKnownOnlyByEmail(t *testing.T) {
	rules, err := filepath.Abs(filepath.Join("testdata", "triggers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, "THREADLINE_TRIGGERS_FILE="+rules)
	const email = "lena.marsh@example.org"
	conv := p.Fake.CreateConversation(fakeintercom.ContactSpec{Email: email, Role: "lead"},
		"<p>The pay button does nothing</p>", "https://app.acme.dev/checkout", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.Fake.DeliverWebhook(ctx, p.IngestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
		t.Fatal(err)
	}
	// The linker has handled the conversation (and learned its contact) once every stage caught up.
	p.waitSettled(t)

	at := time.Now().Add(-5 * time.Second).UTC()
	ev, err := json.Marshal(map[string]any{
		"event": "$rageclick", "distinct_id": "anon-7f3c", "uuid": posthog.NewUUIDv7(at),
		"timestamp": at.Format(time.RFC3339Nano),
		"properties": map[string]any{
			"$session_id": "sess-email-only", "$current_url": "https://app.acme.dev/checkout",
			"$set": map[string]any{"email": email},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.produceRaw(t, "anon-7f3c", ev)
	waitUntil(t, 60*time.Second, "a data event in Intercom", p, func() bool { return len(p.Fake.Events()) >= 1 })
	p.waitSettled(t)

	got := p.Fake.Events()
	if len(got) != 1 || got[0].EventName != "rage-clicked" {
		t.Fatalf("data events = %+v, want one rage-clicked", got)
	}
	if got[0].ContactID != conv.ContactIDs[0] {
		t.Fatalf("event for contact %q, want the conversation's contact %q", got[0].ContactID, conv.ContactIDs[0])
	}
	if got[0].CreatedAt != at.Unix() {
		t.Fatalf("created_at %d, want the action's time %d", got[0].CreatedAt, at.Unix())
	}
}
