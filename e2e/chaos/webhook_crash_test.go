package chaos

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/stack"
)

// A webhook delivery that ingest received but had not stored when it was killed must be stored
// when Intercom retries it: the retry may not be taken for a duplicate of a delivery that never
// reached intercom.webhooks.raw, or the conversation is never linked and every note of it is lost.
func TestWebhookRetryAfterIngestDiedMidDeliveryIsStored(t *testing.T) {
	t.Parallel() // after TestChaos, which runs alone
	sys := startSystem(t, systemOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conv := sys.Fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "usr_mid_delivery", Email: "mid.delivery@example.com"}, "<p>Hi</p>", "https://app.acme.dev/", nil)
	delivery := captureDelivery(ctx, t, sys.Fake, "conversation.user.created", conv.ID)

	// The broker is away, so ingest holds the delivery while it waits to store it; then it dies.
	sys.Broker.Stop()
	answered := make(chan int, 1)
	go func() {
		// The connection dies with ingest: no answer is what a crash looks like.
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.WebhookURL, bytes.NewReader(delivery.body))
		if err != nil {
			answered <- 0
			return
		}
		req.Header = delivery.header.Clone()
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(time.Second)
	if err := sys.Stack.Kill("ingest"); err != nil {
		t.Fatal(err)
	}
	if status := <-answered; status == http.StatusOK {
		t.Fatalf("ingest answered 200 without a broker to store the delivery in")
	}
	if err := sys.Broker.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if err := sys.Restart("ingest"); err != nil {
		t.Fatal(err)
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, 60*time.Second)
	defer readyCancel()
	if err := stack.WaitReady(readyCtx, sys.Admins["ingest"]); err != nil {
		t.Fatal(err)
	}

	// Intercom retries the delivery it got no 200 for a minute later; by then the mark ingest set
	// while it held the delivery (twice the produce timeout plus 5 s, 11 s by default) has lapsed.
	time.Sleep(12 * time.Second)
	status, answer := post(ctx, t, http.DefaultClient, sys.WebhookURL, delivery.body, delivery.header)
	if status != http.StatusOK {
		t.Fatalf("the retry: %d %s", status, answer)
	}
	cl := sys.Client(t, kgo.ConsumeTopics(sys.Topics.ConversationEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond))
	waitCtx, waitCancel := context.WithTimeout(ctx, 20*time.Second)
	defer waitCancel()
	for waitCtx.Err() == nil {
		found := false
		cl.PollFetches(waitCtx).EachRecord(func(r *kgo.Record) {
			var ev messages.ConversationEvent
			if messages.Decode(r.Value, &ev) == nil && ev.ConversationID == conv.ID {
				found = true
			}
		})
		if found {
			return
		}
	}
	t.Fatalf("the conversation never reached %s: the retry was answered %q, so Intercom will not send it again and the conversation is never linked",
		sys.Topics.ConversationEvents, strings.TrimSpace(answer))
}
