package phrasing

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
	"github.com/threadline/threadline/pkg/redact"
)

// Personal data planted where a server SDK can put it unchecked.
const (
	plantEmail = "jane.doe@example.com"
	plantCard  = "4242 4242 4242 4242"
)

// newRedactingPhraser is a phraser with the real redactor and identity hashing.
func newRedactingPhraser() *Phraser {
	return New(DefaultConfig(), redact.New(redact.DefaultConfig()),
		IdentityFuncs{Key: redact.IdentityKey, Email: redact.EmailHash})
}

func decodeOne(t *testing.T, v map[string]any) posthog.Event {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := posthog.Decode(b, posthogtest.ProcessingTime())
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

// findings describes what the detector finds in s ("" when nothing).
func findings(s string) string {
	var out string
	for _, f := range redact.Find(s) {
		out += fmt.Sprintf(" %s %q", f.Kind, s[f.Start:f.End])
	}
	return out
}

// A custom property named by an email address is not carried: its name would reach product.actions.
func TestPropertyNamesHoldingPersonalDataAreNotCarried(t *testing.T) {
	ev := decodeOne(t, map[string]any{"uuid": "0195aaaa-0000-7000-8000-000000000001", "event": "Order placed",
		"distinct_id": "usr_1", "timestamp": "2025-03-14T10:15:00Z",
		"properties": map[string]any{"$session_id": "s1", plantEmail: "true", "plan": "pro"}})
	pa, ok := newRedactingPhraser().Action(ev)
	if !ok {
		t.Fatal("dropped as noise")
	}
	for k := range pa.Properties {
		if f := findings(k); f != "" {
			t.Errorf("property name %q carried unredacted:%s", k, f)
		}
	}
	if pa.Properties["plan"] != "pro" {
		t.Errorf("properties %v: the clean one is not carried", pa.Properties)
	}
}

// The event uuid, the $session_id and identity values that are personal data of any kind (not only
// an email or a phone number) travel as their identity hash, as the conversation side hashes them.
func TestIDsHoldingPersonalDataAreHashed(t *testing.T) {
	ev := decodeOne(t, map[string]any{"uuid": "evt-" + plantEmail, "event": "$pageview",
		"distinct_id": "536-22-8841", "timestamp": "2025-03-14T10:15:00Z",
		"properties": map[string]any{"$session_id": plantEmail, "$user_id": plantCard, "$pathname": "/pricing"}})
	pa, ok := newRedactingPhraser().Action(ev)
	if !ok {
		t.Fatal("dropped as noise")
	}
	for name, v := range map[string]string{"action id": pa.Action.ActionID, "session id": pa.Action.SessionID,
		"user id": pa.Identity.UserID, "distinct id": pa.Identity.DistinctID} {
		if f := findings(v); f != "" {
			t.Errorf("%s %q unredacted:%s", name, v, f)
		}
	}
	for name, c := range map[string]struct{ got, want string }{
		"action id":   {pa.Action.ActionID, redact.EmailHash("evt-" + plantEmail)},
		"session id":  {pa.Action.SessionID, redact.IdentityKey(plantEmail)},
		"user id":     {pa.Identity.UserID, redact.EmailHash(plantCard)},
		"distinct id": {pa.Identity.DistinctID, redact.EmailHash("536-22-8841")},
	} {
		if c.got != c.want {
			t.Errorf("%s %q, want the identity hash %q", name, c.got, c.want)
		}
	}
	// ids that are not personal data travel as they are
	clean := decodeOne(t, map[string]any{"uuid": "0195aaaa-0000-7000-8000-000000000001", "event": "$pageview",
		"distinct_id": posthogtest.AnonID, "properties": map[string]any{"$session_id": posthogtest.Session, "$user_id": posthogtest.UserID}})
	pa, _ = newRedactingPhraser().Action(clean)
	if pa.Action.ActionID != clean.UUID || pa.Action.SessionID != posthogtest.Session ||
		pa.Identity.DistinctID != posthogtest.AnonID || pa.Identity.UserID != posthogtest.UserID {
		t.Errorf("clean ids changed: %+v %+v", pa.Action, pa.Identity)
	}
}
