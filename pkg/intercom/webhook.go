package intercom

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Webhook request headers.
const (
	SignatureHeader = "X-Hub-Signature"
	signaturePrefix = "sha1="
)

// ErrMalformedNotification is returned for a webhook body that is not a notification.
var ErrMalformedNotification = errors.New("intercom: malformed webhook notification")

// Sign returns the X-Hub-Signature value of body: "sha1=" and the lowercase hex HMAC-SHA1 of the
// raw body, keyed with the app's client secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports, in constant time, whether header is the signature of the raw body
// under secret. An empty secret verifies nothing.
func VerifySignature(secret, body []byte, header string) bool {
	if len(secret) == 0 {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Topics Threadline reads or deliberately ignores.
const (
	TopicPing              = "ping"
	TopicUserCreated       = "conversation.user.created"
	TopicUserReplied       = "conversation.user.replied"
	TopicAdminNoted        = "conversation.admin.noted"
	TopicAdminReplied      = "conversation.admin.replied"
	TopicAdminClosed       = "conversation.admin.closed"
	TopicAdminOpened       = "conversation.admin.opened"
	TopicContactAttached   = "conversation.contact.attached"
	TopicContactDetached   = "conversation.contact.detached"
	TopicConversationDel   = "conversation.deleted"
	TopicContactMerged     = "contact.merged"
	TopicPartRedacted      = "conversation_part.redacted"
	TopicOperatorReplied   = "conversation.operator.replied"
	TopicAdminSnoozed      = "conversation.admin.snoozed"
	TopicAdminAssigned     = "conversation.admin.assigned"
	TopicContactUserCreate = "contact.user.created"
	TopicContactLeadCreate = "contact.lead.created"
)

// Notification is the envelope of a webhook delivery (type "notification_event"). Item is the raw
// data.item, decoded per topic by Normalize.
type Notification struct {
	Type             string  `json:"type"`
	AppID            string  `json:"app_id"`
	ID               string  `json:"id"` // notif_<uuid>; empty when Intercom sent null
	Topic            string  `json:"topic"`
	DeliveryStatus   string  `json:"delivery_status"`
	DeliveryAttempts int     `json:"delivery_attempts"`
	DeliveredAt      int64   `json:"delivered_at"`
	FirstSentAt      int64   `json:"first_sent_at"`
	CreatedAt        int64   `json:"created_at"`
	Self             *string `json:"self"`
	Data             struct {
		Type string          `json:"type"`
		Item json.RawMessage `json:"item"`
	} `json:"data"`

	itemHead itemHead
}

// itemHead is what every item has in common.
type itemHead struct {
	Type           string     `json:"type"`
	ID             flexString `json:"id"`
	ConversationID flexString `json:"conversation_id"` // on minimal *.deleted payloads
}

// flexString decodes an id sent as a JSON string or number (Intercom's examples send both).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id: want string or number, got %s", b)
	}
	*f = flexString(n.String())
	return nil
}

// ParseNotification decodes a webhook body (after its signature was verified).
func ParseNotification(body []byte) (*Notification, error) {
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedNotification, err)
	}
	if n.Type != "" && n.Type != "notification_event" {
		return nil, fmt.Errorf("%w: type %q", ErrMalformedNotification, n.Type)
	}
	if n.Topic == "" {
		return nil, fmt.Errorf("%w: no topic", ErrMalformedNotification)
	}
	if len(n.Data.Item) == 0 || string(n.Data.Item) == "null" {
		return nil, fmt.Errorf("%w: topic %s: no data.item", ErrMalformedNotification, n.Topic)
	}
	if err := json.Unmarshal(n.Data.Item, &n.itemHead); err != nil {
		return nil, fmt.Errorf("%w: topic %s: data.item: %w", ErrMalformedNotification, n.Topic, err)
	}
	return &n, nil
}

// ItemType returns data.item.type.
func (n *Notification) ItemType() string { return n.itemHead.Type }

// ItemID returns data.item.id, or its conversation_id on minimal payloads such as conversation.deleted.
func (n *Notification) ItemID() string {
	if n.itemHead.ID != "" {
		return string(n.itemHead.ID)
	}
	return string(n.itemHead.ConversationID)
}

// Redelivery reports whether Intercom says this is not the first delivery attempt.
func (n *Notification) Redelivery() bool { return n.DeliveryAttempts > 1 }

// DedupKey identifies the notification across redeliveries: its id, or when Intercom sent none, the
// hex SHA-256 of "topic|item id|created_at".
func (n *Notification) DedupKey() string {
	if n.ID != "" {
		return n.ID
	}
	sum := sha256.Sum256([]byte(n.Topic + "|" + n.ItemID() + "|" + strconv.FormatInt(n.CreatedAt, 10)))
	return hex.EncodeToString(sum[:])
}
