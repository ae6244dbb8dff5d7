package fakeintercom_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/messages"
)

const (
	token   = "tok"
	adminID = "7310045"
	secret  = "client-secret"
)

func newFake(t *testing.T, edit ...func(*fakeintercom.Options)) (*fakeintercom.Server, string) {
	t.Helper()
	opts := fakeintercom.Options{Token: token, AdminID: adminID, ClientSecret: secret}
	for _, e := range edit {
		e(&opts)
	}
	fake := fakeintercom.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// delivery is one webhook POST a receiver got.
type delivery struct {
	body      []byte
	header    http.Header
	verified  bool
	note      *intercom.Notification
	envelope  map[string]any
	respondAt time.Time
}

// receiver is a webhook endpoint that verifies and records what it gets; answer picks the status
// of the nth delivery (0-based).
type receiver struct {
	mu     sync.Mutex
	got    []delivery
	answer func(n int) int
	delay  time.Duration
	url    string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{answer: func(int) int { return http.StatusOK }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{body: body, header: r.Header.Clone()}
		d.verified = intercom.VerifySignature([]byte(secret), body, r.Header.Get("X-Hub-Signature"))
		d.note, _ = intercom.ParseNotification(body)
		_ = json.Unmarshal(body, &d.envelope)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, d)
		status, delay := rc.answer(n), rc.delay
		rc.mu.Unlock()
		time.Sleep(delay)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL + "/webhooks/intercom"
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func startConversation(fake *fakeintercom.Server) fakeintercom.Conversation {
	return fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "cust_4821", Email: "ana@example.com", Name: "Ana Ruiz"},
		"<p>I can't change my plan</p>", "https://app.example.com/checkout?step=2#pay",
		map[string]any{"threadline_session_id": "sess-1"})
}

func TestDeliverSignedEnvelope(t *testing.T) {
	fake, _ := newFake(t)
	rc := newReceiver(t)
	conv := startConversation(fake)
	if err := fake.DeliverWebhook(context.Background(), rc.url, "conversation.user.created", conv.ID); err != nil {
		t.Fatal(err)
	}
	got := rc.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	d := got[0]
	if !d.verified || d.note == nil {
		t.Fatalf("signature verified %v, parsed %v", d.verified, d.note)
	}
	if d.header.Get("User-Agent") != "intercom-parrot-service-client/1.0" || d.header.Get("Content-Type") != "application/json" ||
		d.header.Get("Accept") != "application/json" {
		t.Errorf("headers = %v", d.header)
	}
	e := d.envelope
	data, _ := e["data"].(map[string]any)
	if e["type"] != "notification_event" || e["app_id"] != fakeintercom.DefaultWorkspaceID || data["type"] != "notification_event_data" ||
		e["delivery_status"] != "pending" || e["delivery_attempts"] != float64(1) || e["delivered_at"] != float64(0) ||
		e["self"] != nil || e["first_sent_at"] == nil || e["created_at"] == nil || e["links"] == nil {
		t.Errorf("envelope = %v", e)
	}
	if len(d.note.ID) != len("notif_")+36 || d.note.ID[:6] != "notif_" {
		t.Errorf("id = %q", d.note.ID)
	}
	ev, ok, err := intercom.Normalize(d.note, intercom.DefaultNormalizeConfig())
	if err != nil || !ok {
		t.Fatalf("Normalize: %v %v", ok, err)
	}
	if ev.Type != messages.ConvCreated || ev.ConversationID != conv.ID || ev.ContactID != conv.ContactIDs[0] || ev.ExternalID != "cust_4821" ||
		ev.Role != "user" || ev.EmailHash == "" || ev.SessionHint != "sess-1" || ev.StartURL != "https://app.example.com/checkout" ||
		ev.WorkspaceID != fakeintercom.DefaultWorkspaceID || ev.EventID != d.note.ID {
		t.Errorf("event = %+v", ev)
	}
}

// Every lifecycle topic the fake sends normalises to the event the linker expects.
func TestDeliverEveryTopic(t *testing.T) {
	fake, base := newFake(t)
	rc := newReceiver(t)
	ctx := context.Background()
	conv := startConversation(fake)
	send := func(topic string, wantType string, wantContact string) {
		t.Helper()
		if err := fake.DeliverWebhook(ctx, rc.url, topic, conv.ID); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		all := rc.deliveries()
		d := all[len(all)-1]
		ev, ok, err := intercom.Normalize(d.note, intercom.DefaultNormalizeConfig())
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if wantType == "" {
			if ok {
				t.Errorf("%s: normalised to %+v, want ignored", topic, ev)
			}
			return
		}
		if !ok || ev.Type != wantType || ev.ConversationID != conv.ID || ev.ContactID != wantContact {
			t.Errorf("%s: event %+v (ok %v), want %s for contact %s", topic, ev, ok, wantType, wantContact)
		}
	}
	ana := conv.ContactIDs[0]
	if _, err := fake.UserReply(conv.ID, "<p>hello?</p>"); err != nil {
		t.Fatal(err)
	}
	send("conversation.user.replied", messages.ConvReplied, ana)
	if err := fake.Close(conv.ID); err != nil {
		t.Fatal(err)
	}
	send("conversation.admin.closed", messages.ConvClosed, ana)
	if err := fake.Open(conv.ID); err != nil {
		t.Fatal(err)
	}
	send("conversation.admin.opened", messages.ConvOpened, ana)
	ben, err := fake.AttachContact(conv.ID, fakeintercom.ContactSpec{ExternalID: "cust_9"})
	if err != nil {
		t.Fatal(err)
	}
	send("conversation.contact.attached", messages.ConvContactAttached, ben.ID)
	if err := fake.DetachContact(conv.ID, ben.ID); err != nil {
		t.Fatal(err)
	}
	send("conversation.contact.detached", messages.ConvContactDetached, ben.ID)
	// Our own note comes back as conversation.admin.noted and is ignored.
	req, _ := http.NewRequest(http.MethodPost, base+"/conversations/"+conv.ID+"/reply",
		jsonBody(map[string]any{"message_type": "note", "type": "admin", "admin_id": adminID, "body": "<p>ref: n_1</p>"}))
	setAPIHeaders(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	send("conversation.admin.noted", "", "")
	noted := rc.deliveries()[len(rc.deliveries())-1]
	parts := noted.note.Data.Item
	var item intercom.Conversation
	if err := json.Unmarshal(parts, &item); err != nil || len(item.ConversationParts.ConversationParts) != 1 ||
		item.ConversationParts.ConversationParts[0].AppPackageCode != fakeintercom.DefaultAppPackageCode {
		t.Errorf("noted item carries parts %+v (%v), want only the newest, marked as ours", item.ConversationParts, err)
	}

	if err := fake.DeleteConversation(conv.ID); err != nil {
		t.Fatal(err)
	}
	send("conversation.deleted", messages.ConvDeleted, "")
	if string(rc.deliveries()[len(rc.deliveries())-1].note.Data.Item) != `{"conversation_id":"`+conv.ID+`","type":"conversation"}` {
		t.Errorf("deleted item = %s", rc.deliveries()[len(rc.deliveries())-1].note.Data.Item)
	}

	lead := fake.CreateConversation(fakeintercom.ContactSpec{Name: "Visitor"}, "<p>hi</p>", "", nil)
	if err := fake.MergeContacts(lead.ContactIDs[0], ana); err != nil {
		t.Fatal(err)
	}
	if err := fake.DeliverContactWebhook(ctx, rc.url, "contact.merged", ana); err != nil {
		t.Fatal(err)
	}
	d := rc.deliveries()[len(rc.deliveries())-1]
	ev, ok, err := intercom.Normalize(d.note, intercom.DefaultNormalizeConfig())
	if err != nil || !ok || ev.Type != messages.ConvContactMerged || ev.ContactID != ana || ev.MergedFromID != lead.ContactIDs[0] {
		t.Errorf("merged: %+v %v %v", ev, ok, err)
	}
	if merged, _ := fake.Conversation(lead.ID); len(merged.ContactIDs) != 1 || merged.ContactIDs[0] != ana {
		t.Errorf("the merged lead's conversation has contacts %v", merged.ContactIDs)
	}

	if err := fake.Ping(ctx, rc.url); err != nil {
		t.Fatal(err)
	}
	ping := rc.deliveries()[len(rc.deliveries())-1]
	if ping.note.ID != "" || ping.note.Topic != "ping" || !ping.verified || ping.envelope["id"] != nil {
		t.Errorf("ping = %+v", ping.envelope)
	}
	for _, d := range rc.deliveries() {
		if !d.verified {
			t.Errorf("%s arrived unsigned", d.note.Topic)
		}
	}
	if err := fake.DeliverWebhook(ctx, rc.url, "conversation.user.created", "nope"); !errors.Is(err, fakeintercom.ErrNoConversation) {
		t.Errorf("unknown conversation: %v", err)
	}
	if err := fake.DeliverWebhook(ctx, rc.url, "company.created", conv.ID); !errors.Is(err, fakeintercom.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
}

func TestDeliverDuplicateAndRedelivery(t *testing.T) {
	fake, _ := newFake(t)
	rc := newReceiver(t)
	conv := startConversation(fake)
	ctx := context.Background()
	if err := fake.DeliverWebhook(ctx, rc.url, "conversation.user.created", conv.ID, fakeintercom.WithDuplicate()); err != nil {
		t.Fatal(err)
	}
	if err := fake.DeliverWebhook(ctx, rc.url, "conversation.user.created", conv.ID, fakeintercom.WithRedelivery()); err != nil {
		t.Fatal(err)
	}
	got := rc.deliveries()
	if len(got) != 4 {
		t.Fatalf("%d deliveries, want 4", len(got))
	}
	if string(got[0].body) != string(got[1].body) || got[0].note.DedupKey() != got[1].note.DedupKey() {
		t.Error("a duplicate is not the identical body")
	}
	if got[2].note.DedupKey() != got[3].note.DedupKey() || got[2].note.DedupKey() == got[0].note.DedupKey() {
		t.Error("a redelivery has another id, or two notifications share one")
	}
	if got[3].note.DeliveryAttempts != 2 || got[3].note.DeliveryStatus != "retry" || !got[3].note.Redelivery() || !got[3].verified {
		t.Errorf("redelivery envelope = %v", got[3].envelope)
	}
}

func TestDeliverRetriesAndFailures(t *testing.T) {
	fake, _ := newFake(t)
	conv := startConversation(fake)
	ctx := context.Background()

	flaky := newReceiver(t)
	flaky.answer = func(n int) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	err := fake.DeliverWebhook(ctx, flaky.url, "conversation.user.created", conv.ID,
		fakeintercom.WithAttempts(2), fakeintercom.WithRetryInterval(10*time.Millisecond))
	if err != nil {
		t.Fatalf("retry after a 500: %v", err)
	}
	got := flaky.deliveries()
	if len(got) != 2 || got[1].note.DeliveryAttempts != 2 || got[1].note.ID != got[0].note.ID ||
		got[1].envelope["first_sent_at"] != got[0].envelope["first_sent_at"] || !got[1].verified {
		t.Errorf("deliveries = %+v", got)
	}

	down := newReceiver(t)
	down.answer = func(int) int { return http.StatusServiceUnavailable }
	if err := fake.DeliverWebhook(ctx, down.url, "conversation.user.created", conv.ID); !errors.Is(err, fakeintercom.ErrDeliveryFailed) {
		t.Errorf("failing endpoint: %v", err)
	}

	slow := newReceiver(t)
	slow.delay = 300 * time.Millisecond
	err = fake.DeliverWebhook(ctx, slow.url, "conversation.user.created", conv.ID, fakeintercom.WithResponseTimeout(50*time.Millisecond))
	if !errors.Is(err, fakeintercom.ErrDeliveryFailed) {
		t.Errorf("slow endpoint: %v", err)
	}
	recs := fake.Deliveries()
	if last := recs[len(recs)-1]; last.URL != slow.url || last.Err == "" || last.Status != 0 {
		t.Errorf("slow delivery recorded as %+v", last)
	}

	gone := newReceiver(t)
	gone.answer = func(int) int { return http.StatusGone }
	if err := fake.DeliverWebhook(ctx, gone.url, "conversation.user.created", conv.ID); !errors.Is(err, fakeintercom.ErrUnsubscribed) {
		t.Errorf("410: %v", err)
	}
	if err := fake.DeliverWebhook(ctx, gone.url, "conversation.user.created", conv.ID); !errors.Is(err, fakeintercom.ErrUnsubscribed) {
		t.Errorf("after 410: %v", err)
	}
	if n := len(gone.deliveries()); n != 1 {
		t.Errorf("an unsubscribed endpoint got %d deliveries, want 1", n)
	}
}

func TestDeliverOutOfOrder(t *testing.T) {
	now := time.Unix(1795000000, 0)
	var mu sync.Mutex
	fake, _ := newFake(t, func(o *fakeintercom.Options) {
		o.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	rc := newReceiver(t)
	conv := startConversation(fake)
	created, err := fake.NewNotification("conversation.user.created", conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := fake.UserReply(conv.ID, "<p>more</p>"); err != nil {
		t.Fatal(err)
	}
	replied, err := fake.NewNotification("conversation.user.replied", conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := fake.Send(ctx, rc.url, replied); err != nil {
		t.Fatal(err)
	}
	if err := fake.Send(ctx, rc.url, created); err != nil {
		t.Fatal(err)
	}
	got := rc.deliveries()
	if len(got) != 2 || got[0].note.Topic != "conversation.user.replied" || got[1].note.Topic != "conversation.user.created" ||
		got[0].note.CreatedAt != 1795000060 || got[1].note.CreatedAt != 1795000000 {
		t.Errorf("order: %s@%d, %s@%d", got[0].note.Topic, got[0].note.CreatedAt, got[1].note.Topic, got[1].note.CreatedAt)
	}
}

func TestDeliverNullIDAndDelay(t *testing.T) {
	fake, _ := newFake(t)
	rc := newReceiver(t)
	conv := startConversation(fake)
	start := time.Now()
	err := fake.DeliverWebhook(context.Background(), rc.url, "conversation.admin.closed", conv.ID,
		fakeintercom.WithNullID(), fakeintercom.WithDelay(30*time.Millisecond), fakeintercom.WithDuplicate())
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Error("delivered before the delay")
	}
	got := rc.deliveries()
	if len(got) != 2 || got[0].note.ID != "" || got[0].note.DedupKey() != got[1].note.DedupKey() || len(got[0].note.DedupKey()) != 64 {
		t.Errorf("null-id deliveries: %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := fake.DeliverWebhook(ctx, rc.url, "conversation.admin.closed", conv.ID, fakeintercom.WithDelay(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled delay: %v", err)
	}
}
