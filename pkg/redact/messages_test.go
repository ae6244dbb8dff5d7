package redact

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// TestFindOnProducedMessages shows the detector working on whole topic messages, as the
// pipeline's property tests use it: a message built from redacted values has no findings in its
// JSON, and one that carries personal data is caught.
func TestFindOnProducedMessages(t *testing.T) {
	r := New(DefaultConfig())
	at := time.Date(2025, 3, 14, 10, 15, 2, 203_000_000, time.UTC)
	action := messages.Action{
		ActionID:  "01959426-e66f-770e-9a29-c4be040e1890",
		SessionID: "01959426-703f-7f3a-b1ec-ebbd1410ab41",
		EventTime: at,
		Event:     "$exception",
		Kind:      messages.KindException,
		Page:      "checkout",
		Path:      "/checkout",
		Detail:    r.Text("Stripe confirmCardPayment failed for jane.doe@example.com: incorrect_number"),
		Text:      "User hit an error on the checkout page: " + r.Text("card 4242 4242 4242 4242 declined"),
	}
	produced := []any{
		messages.ProductAction{
			Version: messages.Version,
			Action:  action,
			Identity: messages.Identity{
				DistinctID:     IdentityKey("jane.doe@example.com"),
				AnonDistinctID: "01959426-703e-763a-8dbe-41488fb87214",
				UserID:         IdentityKey("usr_2Qm8xK4p"),
				EmailHash:      EmailHash("jane.doe@example.com"),
				IntercomUserID: "usr_2Qm8xK4p",
			},
			Properties: map[string]string{
				"$current_url": r.URL("https://app.acme.dev/checkout?plan=pro&email=jane%40example.com"),
				"$ip":          r.Text("203.0.113.77"),
				"$lib_version": "1.418.10",
			},
		},
		messages.ConversationEvent{
			Version: messages.Version, EventID: "notif_0a1b2c3d", Type: messages.ConvCreated,
			WorkspaceID: "ecahpwf5", ConversationID: "215468321685437", ContactID: "5f7c1f4e8b1a2c3d4e5f6a7b",
			ExternalID: IdentityKey("jane.doe@example.com"), EmailHash: EmailHash("jane.doe@example.com"), Role: "user",
			StartURL: r.URL("https://app.acme.dev/settings/billing?tab=card&token=abc"), OccurredAt: at,
		},
		messages.NoteWritten{
			Version: messages.Version, ConversationID: "215468321685437", PartID: "21587913541",
			Ref: "tl-01959426-e66f-770e-9a29-c4be040e1890", Kind: messages.NoteActions,
			Lines: []messages.NoteLine{{Seq: 1, Action: action}}, WrittenAt: at,
		},
		messages.ConversationSummary{
			Version: messages.Version, SummaryID: "215468321685437:1-20", ConversationID: "215468321685437",
			Text: "The user navigated to the pricing page, selected the Pro plan, submitted the checkout form, " +
				"and hit a payment validation error. They later returned to billing settings.",
			FromSeq: 1, ToSeq: 20, ActionCount: 20, ReplacesParts: []string{"21587913541"}, Engine: "narrative", CreatedAt: at,
		},
	}
	for _, m := range produced {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if f := Find(string(b)); len(f) > 0 {
			t.Errorf("%T: findings in a redacted message: %s\n%s", m, describe(string(b), f), b)
		}
	}

	leaky := messages.ProductAction{Version: messages.Version, Action: messages.Action{
		ActionID: "01959426-e66f-770e-9a29-c4be040e1890", Kind: messages.KindError, EventTime: at,
		Text: "User hit an error: card 4242 4242 4242 4242 declined for jane.doe@example.com",
	}}
	b, _ := json.Marshal(leaky)
	kinds := map[string]bool{}
	for _, f := range Find(string(b)) {
		kinds[f.Kind] = true
	}
	if !kinds[KindCard] || !kinds[KindEmail] {
		t.Fatalf("Find missed personal data in %s: %v", b, Find(string(b)))
	}
}
