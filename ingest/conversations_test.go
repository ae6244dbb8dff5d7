package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
)

// TestNotificationsBecomeConversationEvents follows Intercom's webhooks from the fake through the
// running ingest (receiver, intercom.webhooks.raw, the consumer) to conversation.events.
func TestNotificationsBecomeConversationEvents(t *testing.T) {
	fake, apiURL := newFakeIntercom(t)
	ing := startIngest(t,
		"-intercom.api-base="+apiURL, "-intercom.token="+fakeToken,
		"-intercom.max-retries=0", "-intercom.retry-backoff-min=1ms", "-intercom.retry-backoff-max=5ms")
	topics := ing.topics()
	webhook := ing.url + WebhookPath
	ctx := context.Background()
	deliver := func(topic, conversationID string, opts ...fakeintercom.DeliveryOption) {
		t.Helper()
		if err := fake.DeliverWebhook(ctx, webhook, topic, conversationID, opts...); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// a user's conversation, started on a page whose URL carries the session and an email
	user := fakeintercom.ContactSpec{ExternalID: "usr_2Qm8xK4p", Email: "jane.doe@example.com", Name: "Jane Doe"}
	conv := fake.CreateConversation(user, "<p>I can't change my plan</p>",
		"https://app.acme.dev/settings/billing?threadline_session_id=sess-1&email=jane.doe%40example.com#card", nil)
	userID := conv.ContactIDs[0]
	deliver(intercom.TopicUserCreated, conv.ID, fakeintercom.WithDuplicate())
	_, err := fake.UserReply(conv.ID, "<p>still stuck</p>")
	must(err)
	deliver(intercom.TopicUserReplied, conv.ID, fakeintercom.WithRedelivery())
	deliver(intercom.TopicAdminNoted, conv.ID) // notes, ours included, are no conversation event
	must(fake.Close(conv.ID))
	deliver(intercom.TopicAdminClosed, conv.ID)
	must(fake.Open(conv.ID))
	deliver(intercom.TopicAdminOpened, conv.ID)

	// a teammate of hers is attached: the notification names the contact by id only, so ingest
	// looks it up, through Intercom's outage
	mate, err := fake.AttachContact(conv.ID, fakeintercom.ContactSpec{Email: "sam@example.com"})
	must(err)
	fake.SetFault(fakeintercom.Fault{ServerErrors: 3})
	deliver(intercom.TopicContactAttached, conv.ID)
	must(fake.DetachContact(conv.ID, mate.ID))
	deliver(intercom.TopicContactDetached, conv.ID)

	// an anonymous lead whose session id is on the contact only
	lead := fake.CreateConversation(fakeintercom.ContactSpec{Role: "lead",
		CustomAttributes: map[string]any{intercom.DefaultSessionAttribute: "sess-lead"}}, "<p>pricing?</p>", "", nil)
	leadID := lead.ContactIDs[0]
	deliver(intercom.TopicUserCreated, lead.ID)
	// (once merged away, the lead is no longer found: the merge waits until its event is out)
	ing.consume(t, topics.ConversationEvents, 7)
	must(fake.MergeContacts(leadID, userID))
	if err := fake.DeliverContactWebhook(ctx, webhook, intercom.TopicContactMerged, userID); err != nil {
		t.Fatal(err)
	}
	must(fake.DeleteConversation(lead.ID))
	deliver(intercom.TopicConversationDel, lead.ID)

	for _, d := range fake.Deliveries() {
		if d.Status != http.StatusOK {
			t.Errorf("%s delivery answered %d", d.Topic, d.Status)
		}
	}

	const want = 9
	recs := ing.consume(t, topics.ConversationEvents, want)
	events := conversationEvents(t, recs)
	byType := map[string][]messages.ConversationEvent{}
	for i, ev := range events {
		key := string(recs[i].Key)
		if ev.Type == messages.ConvContactMerged {
			if key != "contact:"+ev.ContactID {
				t.Errorf("merge keyed %q, want contact:%s", key, ev.ContactID)
			}
		} else if key != ev.ConversationID {
			t.Errorf("%s event of %s keyed %q", ev.Type, ev.ConversationID, key)
		}
		if ev.WorkspaceID != fakeintercom.DefaultWorkspaceID || ev.EventID == "" || ev.OccurredAt.IsZero() {
			t.Errorf("%s event: workspace %q id %q time %s", ev.Type, ev.WorkspaceID, ev.EventID, ev.OccurredAt)
		}
		byType[ev.Type] = append(byType[ev.Type], ev)
	}
	one := func(typ string) messages.ConversationEvent {
		t.Helper()
		if len(byType[typ]) == 0 {
			t.Fatalf("no %s event; got %v", typ, events)
		}
		return byType[typ][0]
	}

	janeHash := redact.EmailHash("jane.doe@example.com")
	if got := byType[messages.ConvCreated]; len(got) != 2 {
		t.Fatalf("%d created events, want 2 (one per conversation, the duplicate delivery dropped)", len(got))
	}
	for _, ev := range byType[messages.ConvCreated] {
		switch ev.ConversationID {
		case conv.ID:
			if ev.ContactID != userID || ev.ExternalID != "usr_2Qm8xK4p" || ev.EmailHash != janeHash || ev.Role != "user" ||
				ev.SessionHint != "sess-1" || ev.StartURL != "https://app.acme.dev/settings/billing" {
				t.Errorf("created: %+v", ev)
			}
		case lead.ID:
			if ev.ContactID != leadID || ev.Role != "lead" || ev.SessionHint != "sess-lead" || ev.ExternalID != "" || ev.EmailHash != "" {
				t.Errorf("the lead's created event (session from the contact lookup): %+v", ev)
			}
		}
	}
	if ev := one(messages.ConvReplied); ev.ConversationID != conv.ID || ev.ContactID != userID || ev.EmailHash != janeHash {
		t.Errorf("replied: %+v", ev)
	}
	if len(byType[messages.ConvReplied]) != 1 {
		t.Errorf("the redelivered reply made %d events", len(byType[messages.ConvReplied]))
	}
	if ev := one(messages.ConvClosed); ev.ConversationID != conv.ID {
		t.Errorf("closed: %+v", ev)
	}
	if ev := one(messages.ConvOpened); ev.ConversationID != conv.ID {
		t.Errorf("opened: %+v", ev)
	}
	samHash := redact.EmailHash("sam@example.com")
	if ev := one(messages.ConvContactAttached); ev.ContactID != mate.ID || ev.EmailHash != samHash || ev.Role != "user" {
		t.Errorf("attached (identity from the contact lookup): %+v", ev)
	}
	if ev := one(messages.ConvContactDetached); ev.ContactID != mate.ID || ev.EmailHash != samHash {
		t.Errorf("detached (identity from the cache): %+v", ev)
	}
	if ev := one(messages.ConvContactMerged); ev.ContactID != userID || ev.MergedFromID != leadID || ev.ConversationID != "" ||
		ev.ExternalID != "usr_2Qm8xK4p" || ev.EmailHash != janeHash {
		t.Errorf("merged: %+v", ev)
	}
	if ev := one(messages.ConvDeleted); ev.ConversationID != lead.ID {
		t.Errorf("deleted: %+v", ev)
	}
	if got := ing.count(t, topics.ConversationEvents); got != want {
		t.Errorf("%d conversation events, want %d", got, want)
	}
	if got := ing.count(t, topics.DLQ); got != 0 {
		t.Errorf("%d dead letters", got)
	}

	// the lookups: the teammate's three failures were retried by the consumer and then answered,
	// the detach came from the cache, and the lead was asked for once
	if got := fake.Requests(fakeintercom.EndpointGetContact); got != 3+1+1 {
		t.Errorf("GET /contacts/{id} called %d times, want 5", got)
	}
	if got := ing.metric(t, "threadline_ingest_contact_lookups_total", `outcome="cached"`); got != 1 {
		t.Errorf("cached lookups %v, want 1", got)
	}
	if got := ing.metric(t, "threadline_consumer_retries_total", `service="ingest"`); got < 3 {
		t.Errorf("consumer retries %v, want at least 3", got)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Value), "example.com") {
			t.Errorf("an email left ingest: %s", r.Value)
		}
	}
}
