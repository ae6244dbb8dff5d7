//go:build pkgbugs

// These tests show defects of shared packages that ingest works around at its boundary (scrub.go),
// so that the default test run stays green while the packages are not fixed. They fail until the
// packages are fixed:
//
//	go test -tags pkgbugs -run PackageBug ./ingest/

package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/phrasing"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/redact"
)

func newPhraser() *phrasing.Phraser {
	return phrasing.New(phrasing.DefaultConfig(), redact.New(redact.DefaultConfig()),
		phrasing.IdentityFuncs{Key: redact.IdentityKey, Email: redact.EmailHash})
}

func decodeOne(t *testing.T, v map[string]any) posthog.Event {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := posthog.Decode(b, time.Date(2025, 3, 14, 10, 20, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

func findings(s string) string {
	var out string
	for _, f := range redact.Find(s) {
		out += fmt.Sprintf(" %s %q", f.Kind, s[f.Start:f.End])
	}
	return out
}

// pkg/phrasing (Phraser.properties) carries custom property names as they are: a property named
// by an email address reaches product.actions with the address in its name.
func TestPackageBugPhrasingCarriesPropertyNamesUnredacted(t *testing.T) {
	ev := decodeOne(t, map[string]any{"uuid": "0195aaaa-0000-7000-8000-000000000001", "event": "Order placed",
		"distinct_id": "usr_1", "timestamp": "2025-03-14T10:15:00Z",
		"properties": map[string]any{"$session_id": "s1", plantEmail: "true"}})
	pa, ok := newPhraser().Action(ev)
	if !ok {
		t.Fatal("dropped as noise")
	}
	for k := range pa.Properties {
		if f := findings(k); f != "" {
			t.Errorf("property name %q carried unredacted:%s", k, f)
		}
	}
}

// pkg/phrasing (Phraser.Action and identity) copies the event uuid and $session_id into the action
// as they are, and hashes identity values only when they are an email or a phone number (through
// redact.IdentityKey): a session id that is an email, or a user id that is a card number, leaves
// unredacted.
func TestPackageBugPhrasingCopiesIDsUnredacted(t *testing.T) {
	ev := decodeOne(t, map[string]any{"uuid": "evt-" + plantEmail, "event": "$pageview",
		"distinct_id": "usr_1", "timestamp": "2025-03-14T10:15:00Z",
		"properties": map[string]any{"$session_id": plantEmail, "$user_id": plantCard, "$pathname": "/pricing"}})
	pa, ok := newPhraser().Action(ev)
	if !ok {
		t.Fatal("dropped as noise")
	}
	for name, v := range map[string]string{"action id": pa.Action.ActionID, "session id": pa.Action.SessionID, "user id": pa.Identity.UserID} {
		if f := findings(v); f != "" {
			t.Errorf("%s %q unredacted:%s", name, v, f)
		}
	}
}

// pkg/intercom (Normalize, startURL) drops the query, fragment and user info of the start URL but
// keeps its path as it is, and copies the session custom attribute as it is: an email in either
// reaches conversation.events.
func TestPackageBugIntercomStartURLPathAndSessionHintUnredacted(t *testing.T) {
	body := `{"type":"notification_event","app_id":"ab12cd34","id":"notif_1","topic":"conversation.user.created",
	"created_at":1741947302,"data":{"type":"notification_event_data","item":{"type":"conversation","id":"215468321685437",
	"custom_attributes":{"threadline_session_id":"` + plantEmail + `"},
	"source":{"type":"conversation","author":{"type":"user","id":"c1"},"url":"https://app.acme.dev/users/` + plantEmail + `/billing?x=1"},
	"contacts":{"type":"contact.list","contacts":[{"type":"contact","id":"c1","external_id":"usr_1"}]}}}}`
	n, err := intercom.ParseNotification([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ev, ok, err := intercom.Normalize(n, intercom.DefaultNormalizeConfig())
	if err != nil || !ok {
		t.Fatalf("normalize: %v %v", ok, err)
	}
	for name, v := range map[string]string{"start url": ev.StartURL, "session hint": ev.SessionHint} {
		if f := findings(v); f != "" {
			t.Errorf("%s %q unredacted:%s", name, v, f)
		}
	}
}
