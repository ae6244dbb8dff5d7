package intercom_test

import (
	"testing"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/redact"
)

// TestNormalizeRedactsStartURLPathAndSessionHint: an email in the start URL's path is masked, and
// a session attribute that holds one reaches conversation.events as its identity hash, the hash
// ingest gives a product session id that holds personal data.
func TestNormalizeRedactsStartURLPathAndSessionHint(t *testing.T) {
	const email = "jane.doe@example.com"
	body := `{"type":"notification_event","app_id":"ab12cd34","id":"notif_1","topic":"conversation.user.created",
	"created_at":1741947302,"data":{"type":"notification_event_data","item":{"type":"conversation","id":"215468321685437",
	"custom_attributes":{"threadline_session_id":"` + email + `"},
	"source":{"type":"conversation","author":{"type":"user","id":"c1"},"url":"https://app.acme.dev/users/` + email + `/billing?x=1"},
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
		if f := redact.Find(v); len(f) > 0 {
			t.Errorf("%s %q unredacted: %+v", name, v, f)
		}
	}
	if want := "https://app.acme.dev/users/[email]/billing"; ev.StartURL != want {
		t.Errorf("start URL = %q, want %q", ev.StartURL, want)
	}
	if want := hashOf(email); ev.SessionHint != want {
		t.Errorf("session hint = %q, want the identity hash %q", ev.SessionHint, want)
	}
}

// TestNormalizeHashesIDsHoldingPersonalData: an external id or session hint holding a card
// number or a phone number is hashed like an email; ordinary ids are kept.
func TestNormalizeHashesIDsHoldingPersonalData(t *testing.T) {
	for _, tc := range []struct{ external, hint string }{
		{"4242 4242 4242 4242", "+1 415 555 0132"},
		{"+44 20 7946 0958", "4242424242424242"},
	} {
		body := `{"type":"notification_event","app_id":"ab12cd34","id":"notif_2","topic":"conversation.user.created",
		"created_at":1741947302,"data":{"type":"notification_event_data","item":{"type":"conversation","id":"215468321685438",
		"custom_attributes":{"threadline_session_id":"` + tc.hint + `"},
		"source":{"type":"conversation","author":{"type":"user","id":"c1"},"url":"https://app.acme.dev/billing"},
		"contacts":{"type":"contact.list","contacts":[{"type":"contact","id":"c1","external_id":"` + tc.external + `"}]}}}}`
		n, err := intercom.ParseNotification([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		ev, ok, err := intercom.Normalize(n, intercom.DefaultNormalizeConfig())
		if err != nil || !ok {
			t.Fatalf("normalize: %v %v", ok, err)
		}
		if ev.ExternalID != hashOf(tc.external) || ev.SessionHint != hashOf(tc.hint) {
			t.Errorf("external id %q → %q, hint %q → %q: want their identity hashes", tc.external, ev.ExternalID, tc.hint, ev.SessionHint)
		}
		if ev.ContactID != "c1" || ev.StartURL != "https://app.acme.dev/billing" {
			t.Errorf("contact %q, start URL %q changed", ev.ContactID, ev.StartURL)
		}
	}
}
