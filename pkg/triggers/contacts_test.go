package triggers

import (
	"context"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// emailOnly is a user known by an email hash only, as ingest identifies someone who typed their
// email before logging in.
var emailOnly = User{EmailHash: "h:5b2f0c6e1a3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b", WorkspaceID: "ab12cd34"}

// TestContactResolution: an email hash with no known contact is skipped and counted, never
// guessed; once a conversation event named its contact (on any replica), its actions emit for
// that contact, from evaluation, redelivery and dwell alike, and the remembered contact expires.
func TestContactResolution(t *testing.T) { testContactResolution(t, newRig) }

func testContactResolution(t *testing.T, newRig backend) {
	r := newRig(t)
	rules := mustParse(t, `triggers:
  - name: rage-clicked
    when: { event: $rageclick }
    every: 1h
  - name: lingered-on-pricing
    when: { event: $pageview, url_contains: /pricing }
    dwell: 60s
`)
	a, b := r.engine(rules), r.engine(rules) // two replicas

	// Unknown: skipped and counted, for a claim and for a dwell wait alike.
	if got := r.evaluate(a, in(rageClick("rc-1", 0), emailOnly)); len(got) != 0 {
		t.Fatalf("an email hash with no contact emitted %v", got)
	}
	r.evaluate(a, in(inSession(pageview("pv-1", "/pricing", time.Second), "s-unknown"), emailOnly))
	if got := r.tick(a, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("a dwell of an email hash with no contact emitted %v", got)
	}
	for _, rule := range []string{"rage-clicked", "lingered-on-pricing"} {
		if n := r.counter("threadline_triggers_skipped_total", map[string]string{"rule": rule, "reason": "anonymous"}); n != 1 {
			t.Errorf("%s: skipped anonymous = %v, want 1", rule, n)
		}
	}

	// A conversation event seen by replica a names the contact: replica b resolves it.
	ev := messages.ConversationEvent{ContactID: "66f1c0d2e4b0a91f3c2d7e10", ExternalID: "usr_2Qm8xK4p", EmailHash: emailOnly.EmailHash}
	if err := a.RememberContact(r.ctx, ContactFromEvent(ev)); err != nil {
		t.Fatal(err)
	}
	ttl := r.rdb.PTTL(r.ctx, contactKey(emailUserPrefix+emailOnly.EmailHash)).Val()
	if ttl <= DefaultConfig().ContactTTL-time.Minute || ttl > DefaultConfig().ContactTTL {
		t.Errorf("contact TTL = %v, want %v", ttl, DefaultConfig().ContactTTL)
	}
	got, err := b.Evaluate(r.ctx, rageClick("rc-2", 2*time.Hour), emailOnly)
	if err != nil || len(got) != 1 {
		t.Fatalf("Evaluate after RememberContact = %v, %v", got, err)
	}
	want := messages.IntercomEvent{
		Version: messages.Version, EventName: "rage-clicked", CreatedAt: t0.Add(2 * time.Hour).Unix(),
		UserID: "usr_2Qm8xK4p", IntercomUserID: "66f1c0d2e4b0a91f3c2d7e10", EmailHash: emailOnly.EmailHash,
		WorkspaceID: emailOnly.WorkspaceID, Rule: "rage-clicked", ActionID: "rc-2",
	}
	if got[0].UserID != want.UserID || got[0].IntercomUserID != want.IntercomUserID || got[0].EmailHash != want.EmailHash {
		t.Fatalf("event %+v, want %+v", got[0], want)
	}
	if k := EventKey(&got[0]); k != "usr_2Qm8xK4p" {
		t.Errorf("EventKey = %q", k)
	}
	validateEvents(t, got)

	// Not confirmed: the other replica emits it again after the lease, for the same contact.
	r.clock.Set(t0.Add(DefaultConfig().ClaimLease + time.Second))
	again := r.tick(a, t0)
	if len(again) != 1 || again[0].UserID != want.UserID || again[0].IntercomUserID != want.IntercomUserID {
		t.Fatalf("redelivered %+v, want the resolved event", again)
	}
	// Confirmed (a's tick confirmed it): never again, and every holds for the hash.
	r.clock.Set(t0.Add(10 * DefaultConfig().ClaimLease))
	if got := r.tick(b, t0); len(got) != 0 {
		t.Fatalf("emitted after Confirm: %v", got)
	}
	if got := r.evaluate(b, in(rageClick("rc-3", 2*time.Hour+time.Minute), emailOnly)); len(got) != 0 {
		t.Fatalf("every did not hold for the resolved user: %v", got)
	}

	// Dwell: the wait started by a pageview is resolved when it fires.
	r.evaluate(b, in(inSession(pageview("pv-2", "/pricing", 3*time.Hour), "s-known"), emailOnly))
	dwelled := r.tick(a, t0.Add(4*time.Hour))
	if len(dwelled) != 1 || dwelled[0].IntercomUserID != want.IntercomUserID || dwelled[0].UserID != want.UserID {
		t.Fatalf("dwell emitted %+v, want one resolved event", dwelled)
	}

	// A replay emits nothing twice.
	if got := r.evaluate(a, in(rageClick("rc-2", 2*time.Hour), emailOnly)); len(got) != 0 {
		t.Fatalf("a replay emitted %v", got)
	}
}

// TestContactsExpire: a remembered contact lasts ContactTTL; afterwards the hash is unknown again.
func TestContactsExpire(t *testing.T) {
	r := newRig(t)
	cfg := DefaultConfig()
	cfg.ContactTTL = 300 * time.Millisecond
	e := r.engine(issueRules(t), WithConfig(cfg))
	if err := e.RememberContact(r.ctx, Contact{EmailHash: emailOnly.EmailHash, ContactID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if ttl := r.rdb.PTTL(r.ctx, contactKey(emailUserPrefix+emailOnly.EmailHash)).Val(); ttl <= 0 || ttl > cfg.ContactTTL {
		t.Fatalf("TTL = %v, want at most %v", ttl, cfg.ContactTTL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.rdb.Exists(r.ctx, contactKey(emailUserPrefix+emailOnly.EmailHash)).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("the contact never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := r.evaluate(e, in(rageClick("rc-1", 0), emailOnly)); len(got) != 0 {
		t.Fatalf("an expired contact still resolved: %v", got)
	}
}

// TestContactFromEvent: hashed or email-like external ids are left out; nothing is remembered
// without an email hash or without ids.
func TestContactFromEvent(t *testing.T) {
	c := ContactFromEvent(messages.ConversationEvent{ContactID: "c1", ExternalID: "h:abc", EmailHash: "h:def"})
	if c != (Contact{EmailHash: "h:def", ContactID: "c1"}) {
		t.Errorf("hashed external id: %+v", c)
	}
	if c := ContactFromEvent(messages.ConversationEvent{ExternalID: "jane@example.com", EmailHash: "h:def"}); c.ExternalID != "" {
		t.Errorf("email as external id kept: %+v", c)
	}
	r := newRig(t)
	e := r.engine(issueRules(t))
	if err := e.RememberContact(context.Background(), Contact{ContactID: "c1"}, Contact{EmailHash: "h:def"}); err != nil {
		t.Fatal(err)
	}
	if keys := r.rdb.Keys(r.ctx, "*").Val(); len(keys) != 0 {
		t.Errorf("stored %v", keys)
	}
}
