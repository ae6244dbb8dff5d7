package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/threadline/threadline/pkg/fakeintercom"
)

// ConversationTopic is the webhook topic of a conversation a user starts.
const ConversationTopic = "conversation.user.created"

// firstMessage is what every generated user writes when they open the Messenger.
const firstMessage = "<p>I can't change my plan, the payment keeps failing.</p>"

// ErrNotDelivered is returned when the fake Intercom could not deliver the webhook.
var ErrNotDelivered = errors.New("loadgen: conversation webhook not delivered")

func contactOf(u User) fakeintercom.ContactSpec {
	return fakeintercom.ContactSpec{ExternalID: u.UserID, Email: u.Email, Name: "Load " + u.UserID, Role: "user"}
}

// FakeOpener opens conversations on an in-process fake Intercom and delivers their signed
// webhooks to ingest.
type FakeOpener struct {
	fake       *fakeintercom.Server
	webhookURL string
}

// NewFakeOpener returns an opener using fake, delivering webhooks to webhookURL (ingest's
// /webhooks/intercom).
func NewFakeOpener(fake *fakeintercom.Server, webhookURL string) *FakeOpener {
	return &FakeOpener{fake: fake, webhookURL: webhookURL}
}

// OpenConversation implements ConversationOpener.
func (o *FakeOpener) OpenConversation(ctx context.Context, u User) (string, error) {
	conv := o.fake.CreateConversation(contactOf(u), firstMessage, u.URL, nil)
	if err := o.fake.DeliverWebhook(ctx, o.webhookURL, ConversationTopic, conv.ID); err != nil {
		return conv.ID, fmt.Errorf("loadgen: conversation %s: %w", conv.ID, err)
	}
	return conv.ID, nil
}

// HTTPOpener opens conversations on a fake Intercom running as its own process, through its
// /_fake/conversations endpoint, which delivers the signed webhook to ingest.
type HTTPOpener struct {
	baseURL    string
	webhookURL string
	client     *http.Client
}

// NewHTTPOpener returns an opener for the fake at baseURL (e.g. http://127.0.0.1:8090),
// delivering webhooks to webhookURL ("" uses the fake's configured default).
func NewHTTPOpener(baseURL, webhookURL string, client *http.Client) *HTTPOpener {
	if client == nil {
		client = &http.Client{}
	}
	return &HTTPOpener{baseURL: strings.TrimRight(baseURL, "/"), webhookURL: webhookURL, client: client}
}

// OpenConversation implements ConversationOpener.
func (o *HTTPOpener) OpenConversation(ctx context.Context, u User) (string, error) {
	body, err := json.Marshal(map[string]any{
		"contact":     contactOf(u),
		"body":        firstMessage,
		"url":         u.URL,
		"webhook_url": o.webhookURL,
	})
	if err != nil {
		return "", fmt.Errorf("loadgen: encode conversation: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.baseURL+"/_fake/conversations", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("loadgen: open conversation: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadgen: open conversation: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("loadgen: open conversation: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("loadgen: open conversation: status %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	var out struct {
		Delivered     bool   `json:"delivered"`
		DeliveryError string `json:"delivery_error"`
		Conversation  struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("loadgen: open conversation: decode answer: %w", err)
	}
	if !out.Delivered {
		return out.Conversation.ID, fmt.Errorf("%w: conversation %s: %s", ErrNotDelivered, out.Conversation.ID, out.DeliveryError)
	}
	return out.Conversation.ID, nil
}
