package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
	"github.com/threadline/threadline/pkg/redact"
)

// Personal data and secrets planted in the adversarial events.
const (
	plantEmail = "jane.doe@example.com"
	plantPhone = "+1 415 555 0132"
	plantCard  = "4242 4242 4242 4242"
	plantSSN   = "536-22-8841"
	plantIBAN  = "DE89 3704 0044 0532 0130 00"
	plantIP    = "198.51.100.23"
	plantJWT   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfMlFtOHhLNHAiLCJpYXQiOjE3NDE5NDczMDJ9.Vg6m1QqfB4n1sQeYl3JQm0pXo2dG5wZkq0r8c7hJx2E"
	plantKey   = "sk_live_51H8xY2eZvKYlo2C0aBcDeFgHiJkLmNoPqRsTuV"
	plantQuery = "https://app.acme.dev/checkout?email=jane.doe%40example.com&token=tok_9f8e7d6c5b4a&plan=pro#card=4242424242424242"
)

// plants are every planted value; each must be something the detector finds, or a leak of it
// would go unnoticed.
var plants = []string{plantEmail, plantPhone, plantCard, plantSSN, plantIBAN, plantIP, plantJWT, plantKey, plantQuery}

// adversarialEvent is one posthog-js style event carrying personal data wherever a product can put it.
type adversarialEvent struct {
	UUID       string         `json:"uuid"`
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	Timestamp  string         `json:"timestamp"`
	Properties map[string]any `json:"properties"`
	Set        map[string]any `json:"$set,omitempty"`
}

func adversarialEvents() []adversarialEvent {
	common := func(extra map[string]any) map[string]any {
		p := map[string]any{
			"$session_id": "01959426-aaaa-7000-8000-000000000001", "token": posthogtest.Token,
			"$current_url": plantQuery, "$pathname": "/users/" + plantEmail + "/billing",
			"$host": "app.acme.dev", "$referrer": "https://mail.example.org/inbox?to=" + plantEmail,
			"$title": "Invoice for " + plantEmail, "$ip": plantIP, "$lib": "web",
			"$prev_pageview_pathname": "/reset?token=" + plantKey,
			"plan_note":               "call me on " + plantPhone + " or mail " + plantEmail,
			"payment":                 "card " + plantCard + " iban " + plantIBAN,
			"tax_id":                  "ssn " + plantSSN,
			"session_jwt":             plantJWT,
			"return_url":              plantQuery,
			"customer":                plantEmail,
		}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	chain := func(tag, text, attrs string) string {
		return tag + `:` + attrs + `nth-child="1"nth-of-type="1"text="` + text + `";form.checkout:attr__class="checkout"nth-child="2"nth-of-type="1"`
	}
	ts := "2025-03-14T10:15:09.959Z"
	return []adversarialEvent{
		{UUID: "01959426-aaaa-7000-8000-000000000101", Event: "$pageview", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$user_id": plantEmail, "intercom_user_id": plantEmail})},
		{UUID: "01959426-aaaa-7000-8000-000000000102", Event: "$autocapture", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$event_type": "click", "$el_text": "Email " + plantEmail,
				"$elements_chain": chain("button.pay", "Pay with "+plantCard+" for "+plantEmail,
					`attr__href="`+plantQuery+`"attr__data-user="`+plantEmail+`"attr__aria-label="Call `+plantPhone+`"`)})},
		{UUID: "01959426-aaaa-7000-8000-000000000103", Event: "$autocapture", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$event_type": "change",
				"$elements_chain": chain("input", "", `attr__name="`+plantEmail+`"attr__placeholder="`+plantPhone+`"attr__value="`+plantCard+`"`)})},
		{UUID: "01959426-aaaa-7000-8000-000000000104", Event: "$autocapture", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$event_type": "submit",
				"$elements_chain": `form.signup:attr__id="signup-` + plantEmail + `"attr__action="` + plantQuery + `"nth-child="1"nth-of-type="1"`})},
		{UUID: "01959426-aaaa-7000-8000-000000000105", Event: "$rageclick", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$elements_chain": chain("a.link", "Mail "+plantEmail, `attr__href="mailto:`+plantEmail+`"`)})},
		{UUID: "01959426-aaaa-7000-8000-000000000106", Event: "$dead_click", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$elements_chain": chain("span", "Token "+plantKey, ``)})},
		{UUID: "01959426-aaaa-7000-8000-000000000107", Event: "$exception", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{
				"$exception_list": []any{map[string]any{"type": "CardError " + plantEmail,
					"value": "card " + plantCard + " declined for " + plantEmail + " at " + plantIP + " with " + plantJWT}},
				"$exception_message": "Bearer " + plantKey + " rejected",
				"$exception_type":    "AuthError " + plantEmail,
			})},
		{UUID: "01959426-aaaa-7000-8000-000000000108", Event: "payment_failed_for_" + plantEmail, DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"error_message": "card " + plantCard + " of " + plantEmail + " declined",
				"reason": plantSSN, "error": plantIBAN})},
		{UUID: "01959426-aaaa-7000-8000-000000000109", Event: "$identify", DistinctID: plantEmail, Timestamp: ts,
			Properties: common(map[string]any{"$anon_distinct_id": "anon-" + plantEmail}),
			Set:        map[string]any{"email": plantEmail, "phone": plantPhone, "name": "Jane Doe", "intercom_user_id": plantEmail}},
		{UUID: "01959426-aaaa-7000-8000-00000000010a", Event: "$screen", DistinctID: plantPhone, Timestamp: ts,
			Properties: common(map[string]any{"$screen_name": "Profile of " + plantEmail})},
		{UUID: "01959426-aaaa-7000-8000-00000000010b", Event: "Order placed", DistinctID: "usr_2Qm8xK4p", Timestamp: ts,
			Properties: common(map[string]any{"$session_id": nil, plantEmail: "a key that is an email",
				"shipping_address": "1 Main St", "notes": "deliver to " + plantEmail})},
		// ids a server SDK let through unchecked: an event id, a session and a user that are personal data
		{UUID: "evt-" + plantEmail, Event: "Ids planted", DistinctID: plantSSN, Timestamp: ts,
			Properties: common(map[string]any{"$session_id": plantEmail, "$user_id": plantCard})},
	}
}

// inShapes renders e as every raw shape the topic carries: a capture event as the SDK sends it,
// PostHog capture's output, a ClickHouse row and a CDP destination body.
func inShapes(t *testing.T, e adversarialEvent) [][]byte {
	t.Helper()
	must := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	props := map[string]any{}
	for k, v := range e.Properties {
		props[k] = v
	}
	if e.Set != nil {
		props["$set"] = e.Set
	}
	event := map[string]any{"uuid": e.UUID, "event": e.Event, "distinct_id": e.DistinctID, "timestamp": e.Timestamp, "properties": props}
	chain, _ := props["$elements_chain"].(string)
	person := map[string]any{}
	for k, v := range e.Set {
		person[k] = v
	}
	return [][]byte{
		must(event),
		must(map[string]any{"uuid": e.UUID, "distinct_id": e.DistinctID, "ip": plantIP, "data": string(must(event)),
			"now": "2025-03-14T10:15:10.100Z", "sent_at": "2025-03-14T10:15:10.000Z", "token": posthogtest.Token,
			"event": e.Event, "timestamp": e.Timestamp}),
		must(map[string]any{"uuid": e.UUID, "event": e.Event, "properties": string(must(props)),
			"timestamp": "2025-03-14 10:15:09.959000", "team_id": 2, "project_id": 2, "distinct_id": e.DistinctID,
			"elements_chain": chain, "created_at": "2025-03-14 10:15:13.100000", "person_id": "0a2b6e67-ba21-5c5f-b25d-06462154fad6",
			"person_properties": string(must(person)), "person_mode": "full"}),
		must(map[string]any{
			"event": map[string]any{"uuid": e.UUID, "event": e.Event, "distinct_id": e.DistinctID, "properties": props,
				"elements_chain": chain, "timestamp": e.Timestamp, "url": "https://posthog.acme.dev/project/2/events/" + e.UUID},
			"person": map[string]any{"id": "0a2b6e67-ba21-5c5f-b25d-06462154fad6", "properties": person, "name": e.DistinctID,
				"url": "https://posthog.acme.dev/project/2/person/" + e.DistinctID},
		}),
	}
}

// leaks describes what the detector finds in a produced record: its key, value and headers.
func leaks(rec *kgo.Record) string {
	var out []string
	check := func(where, s string) {
		for _, f := range redact.Find(s) {
			out = append(out, fmt.Sprintf("%s: %s %q", where, f.Kind, s[f.Start:f.End]))
		}
	}
	check("key", string(rec.Key))
	check("value", string(rec.Value))
	for _, h := range rec.Headers {
		check("header "+h.Key, string(h.Value))
	}
	return strings.Join(out, "; ")
}

// TestNothingPersonalLeavesIngest plays the journey and adversarial product events in every raw
// shape, and adversarial conversations through the webhook receiver, and checks every message
// ingest produced: the detector finds nothing, and identities are hashed.
func TestNothingPersonalLeavesIngest(t *testing.T) {
	for _, p := range plants {
		if len(redact.Find(p)) == 0 {
			t.Fatalf("the detector does not find the planted %q: the test could not see it leak", p)
		}
	}
	fake, apiURL := newFakeIntercom(t)
	ing := startIngest(t, "-intercom.api-base="+apiURL, "-intercom.token="+fakeToken)
	topics := ing.topics()

	var raw []*kgo.Record
	for _, s := range append(posthogtest.Journey(t, journeyDir), posthogtest.Encoded(t, journeyDir)...) {
		for _, m := range s.Messages {
			raw = append(raw, &kgo.Record{Topic: topics.PosthogRaw, Key: []byte("journey"), Value: m.Value, Timestamp: m.Now})
		}
	}
	journeyOut := journeyActions * (len(posthogtest.Journey(t, journeyDir)) + len(posthogtest.Encoded(t, journeyDir)))
	events := adversarialEvents()
	for _, e := range events {
		for _, v := range inShapes(t, e) {
			raw = append(raw, &kgo.Record{Topic: topics.PosthogRaw, Key: []byte(posthogtest.Token + ":" + e.DistinctID), Value: v})
		}
	}
	ing.produce(t, raw...)
	adversarialOut := len(events) * 4

	// conversations whose every field carries personal data, with and without a contact lookup
	ctx := context.Background()
	webhook := ing.url + WebhookPath
	conv := fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: plantEmail, Email: plantEmail, Name: "Jane Doe"},
		"<p>my card is "+plantCard+", call "+plantPhone+"</p>", "https://app.acme.dev/users/"+plantEmail+"/billing?email="+plantEmail+"&ssn="+plantSSN+"#"+plantJWT,
		map[string]any{"note": "IBAN " + plantIBAN})
	deliver := func(topic, id string) {
		t.Helper()
		if err := fake.DeliverWebhook(ctx, webhook, topic, id); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	deliver(intercom.TopicUserCreated, conv.ID)
	if _, err := fake.UserReply(conv.ID, "<p>my email is "+plantEmail+"</p>"); err != nil {
		t.Fatal(err)
	}
	deliver(intercom.TopicUserReplied, conv.ID)
	mate, err := fake.AttachContact(conv.ID, fakeintercom.ContactSpec{Email: "sam." + plantEmail})
	if err != nil {
		t.Fatal(err)
	}
	deliver(intercom.TopicContactAttached, conv.ID)
	lead := fake.CreateConversation(fakeintercom.ContactSpec{Role: "lead", Email: "lead." + plantEmail}, "<p>hi</p>", plantQuery, nil)
	deliver(intercom.TopicUserCreated, lead.ID)
	if err := fake.MergeContacts(lead.ContactIDs[0], conv.ContactIDs[0]); err != nil {
		t.Fatal(err)
	}
	if err := fake.DeliverContactWebhook(ctx, webhook, intercom.TopicContactMerged, conv.ContactIDs[0]); err != nil {
		t.Fatal(err)
	}
	const conversationOut = 5

	actions := ing.consume(t, topics.ProductActions, journeyOut+adversarialOut)
	convEvents := ing.consume(t, topics.ConversationEvents, conversationOut)
	for _, rec := range append(append([]*kgo.Record(nil), actions...), convEvents...) {
		if l := leaks(rec); l != "" {
			t.Errorf("%s record leaks %s\n%s", rec.Topic, l, rec.Value)
		}
	}

	// identities are hashed: an id that is an email or a phone number, and every email
	emailKey := redact.IdentityKey(plantEmail)
	if !strings.HasPrefix(emailKey, "h:") || emailKey != redact.EmailHash(plantEmail) {
		t.Fatalf("identity key of an email: %q", emailKey)
	}
	journeyIDs := posthogtest.ResolvedTimes(t, journeyDir)
	adversarial := 0
	for _, pa := range productActions(t, actions) {
		id, a := pa.Identity, pa.Action
		if _, ok := journeyIDs[a.ActionID]; ok {
			continue
		}
		adversarial++
		switch a.Event {
		case "$screen":
			if id.DistinctID != redact.IdentityKey(plantPhone) || !strings.HasPrefix(id.DistinctID, "h:") {
				t.Errorf("a phone number as distinct id: %q", id.DistinctID)
			}
		case "Order placed":
			if id.DistinctID != "usr_2Qm8xK4p" || a.SessionID != "user:usr_2Qm8xK4p" {
				t.Errorf("an event without a session: identity %+v session %q", id, a.SessionID)
			}
		case "Ids planted":
			// hashed alike on both sides, so that a conversation naming them still links
			for name, got := range map[string]string{"action id": a.ActionID, "session id": a.SessionID,
				"distinct id": id.DistinctID, "user id": id.UserID} {
				if !strings.HasPrefix(got, "h:") {
					t.Errorf("%s %q is not hashed", name, got)
				}
			}
			if a.SessionID != redact.IdentityKey(plantEmail) || a.ActionID != redact.EmailHash("evt-"+plantEmail) {
				t.Errorf("session %q action %q: not the identity hashes", a.SessionID, a.ActionID)
			}
		default:
			if id.DistinctID != emailKey || id.EmailHash != emailKey {
				t.Errorf("%s: distinct id %q email hash %q, want %q", a.Event, id.DistinctID, id.EmailHash, emailKey)
			}
		}
		for name, v := range map[string]string{"anon_distinct_id": id.AnonDistinctID, "user_id": id.UserID, "intercom_user_id": id.IntercomUserID} {
			if strings.Contains(v, "@") {
				t.Errorf("%s: %s %q is not hashed", a.Event, name, v)
			}
		}
		if a.Event == "$identify" && (id.AnonDistinctID != redact.IdentityKey("anon-"+plantEmail) || id.IntercomUserID != emailKey) {
			t.Errorf("$identify identity %+v", id)
		}
	}
	if adversarial != adversarialOut {
		t.Errorf("%d adversarial actions, want %d", adversarial, adversarialOut)
	}
	for _, ev := range conversationEvents(t, convEvents) {
		if ev.EmailHash != "" && !strings.HasPrefix(ev.EmailHash, "h:") {
			t.Errorf("%s: email hash %q", ev.Type, ev.EmailHash)
		}
		switch ev.ContactID {
		case conv.ContactIDs[0]:
			if ev.ExternalID != emailKey || ev.EmailHash != emailKey {
				t.Errorf("%s: external id %q email hash %q, want %q", ev.Type, ev.ExternalID, ev.EmailHash, emailKey)
			}
		case mate.ID:
			if ev.EmailHash != redact.EmailHash("sam."+plantEmail) {
				t.Errorf("%s: the attached contact's email hash %q", ev.Type, ev.EmailHash)
			}
		}
	}
	if got := ing.count(t, topics.DLQ); got != 0 {
		t.Errorf("%d dead letters", got)
	}
}
