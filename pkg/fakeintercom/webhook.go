package fakeintercom

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Errors of webhook delivery.
var (
	ErrUnsubscribed   = errors.New("fakeintercom: the endpoint answered 410, which unsubscribes it")
	ErrDeliveryFailed = errors.New("fakeintercom: webhook delivery failed")
	ErrUnknownTopic   = errors.New("fakeintercom: topic has no item the fake can build")
)

// Delivery defaults, as Intercom documents them.
const (
	DefaultResponseTimeout = 5 * time.Second // a slower answer counts as failed
	DefaultRetryInterval   = time.Minute     // the one retry comes a minute later
	webhookUserAgent       = "intercom-parrot-service-client/1.0"
)

// Notification is a webhook notification ready to send: build one, several, then Send them in
// any order to deliver out of order.
type Notification struct {
	ID        string // notif_<uuid>; "" sends id null, as Intercom does for ping
	Topic     string
	CreatedAt time.Time
	Item      json.RawMessage
}

// DeliveryRecord is one POST the fake made to a webhook endpoint.
type DeliveryRecord struct {
	URL            string
	Topic          string
	NotificationID string
	Attempt        int // delivery_attempts of the body sent
	Status         int // 0 when no answer came
	Err            string
}

// DeliveryOption changes how a notification is built or delivered.
type DeliveryOption func(*deliveryOptions)

type deliveryOptions struct {
	duplicate       bool
	redeliver       bool
	delay           time.Duration
	attempts        int
	retryInterval   time.Duration
	responseTimeout time.Duration
	nullID          bool
	contactID       string
	mergedFrom      string
}

// WithDuplicate delivers the identical signed body a second time after a success.
func WithDuplicate() DeliveryOption { return func(o *deliveryOptions) { o.duplicate = true } }

// WithRedelivery delivers again after a success, as a retry (delivery_attempts 2, delivery_status
// "retry"), as Intercom does when it took a 200 for too slow.
func WithRedelivery() DeliveryOption { return func(o *deliveryOptions) { o.redeliver = true } }

// WithDelay waits d before the first attempt.
func WithDelay(d time.Duration) DeliveryOption { return func(o *deliveryOptions) { o.delay = d } }

// WithAttempts makes up to n attempts while the endpoint fails (Intercom makes 2; the default is 1).
func WithAttempts(n int) DeliveryOption { return func(o *deliveryOptions) { o.attempts = max(n, 1) } }

// WithRetryInterval sets the wait between attempts (Intercom: a minute).
func WithRetryInterval(d time.Duration) DeliveryOption {
	return func(o *deliveryOptions) { o.retryInterval = d }
}

// WithResponseTimeout sets how long an attempt may take before it counts as failed (Intercom: 5 s).
func WithResponseTimeout(d time.Duration) DeliveryOption {
	return func(o *deliveryOptions) { o.responseTimeout = d }
}

// WithNullID sends "id": null, as Intercom did for some notifications.
func WithNullID() DeliveryOption { return func(o *deliveryOptions) { o.nullID = true } }

// WithContact names the contact a conversation.contact.attached/detached notification is about
// (default: the one last attached or detached).
func WithContact(id string) DeliveryOption { return func(o *deliveryOptions) { o.contactID = id } }

// WithMergedFrom names the contact a contact.merged notification says was merged (default: the
// one last merged into the contact).
func WithMergedFrom(id string) DeliveryOption { return func(o *deliveryOptions) { o.mergedFrom = id } }

func newDeliveryOptions(opts []DeliveryOption) deliveryOptions {
	o := deliveryOptions{attempts: 1, retryInterval: DefaultRetryInterval, responseTimeout: DefaultResponseTimeout}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// partialTopics carry only the newest part, as webhook objects may.
var partialTopics = map[string]bool{
	"conversation.user.replied": true, "conversation.admin.replied": true,
	"conversation.admin.noted": true, "conversation.operator.replied": true,
}

// NewNotification builds a notification about a conversation: "ping", "conversation.deleted"
// (minimal payload), or any conversation.* topic (the conversation as it is now; reply and note
// topics carry only its newest part).
func (s *Server) NewNotification(topic, conversationID string, opts ...DeliveryOption) (*Notification, error) {
	o := newDeliveryOptions(opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	var item any
	switch {
	case topic == "ping":
		item = map[string]any{"type": "ping", "message": "something something"}
		o.nullID = true
	case topic == "conversation.deleted":
		item = map[string]any{"type": "conversation", "conversation_id": conversationID}
	case strings.HasPrefix(topic, "conversation."):
		c, ok := s.convs[conversationID]
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoConversation, conversationID)
		}
		parts := c.Parts
		if partialTopics[topic] && len(parts) > 0 {
			parts = parts[len(parts)-1:]
		}
		w := s.conversationWire(c, parts, false)
		if topic == "conversation.contact.attached" || topic == "conversation.contact.detached" {
			id := o.contactID
			if id == "" && topic == "conversation.contact.attached" {
				id = c.lastAttached
			} else if id == "" {
				id = c.lastDetached
			}
			ct := s.contacts[id]
			if ct == nil {
				return nil, fmt.Errorf("%w: no contact attached to or detached from %s", ErrNoContact, conversationID)
			}
			w["contact"] = map[string]any{"type": "contact", "id": ct.ID, "external_id": nullable(ct.ExternalID)}
		}
		item = w
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	return s.newNotification(topic, item, o)
}

// NewContactNotification builds a notification about a contact (contact.user.created,
// contact.lead.created, contact.merged with merged_from...).
func (s *Server) NewContactNotification(topic, contactID string, opts ...DeliveryOption) (*Notification, error) {
	o := newDeliveryOptions(opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strings.HasPrefix(topic, "contact.") {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	ct := s.contacts[contactID]
	if ct == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoContact, contactID)
	}
	item := s.contactWire(ct)
	if topic == "contact.merged" {
		from := o.mergedFrom
		for _, id := range s.contactOrder {
			if from == "" && s.contacts[id].MergedInto == contactID {
				from = id
			}
		}
		if from == "" {
			return nil, fmt.Errorf("%w: nothing was merged into %s", ErrNoContact, contactID)
		}
		item["merged_from"] = map[string]any{"type": "contact", "id": from}
	}
	return s.newNotification(topic, item, o)
}

func (s *Server) newNotification(topic string, item any, o deliveryOptions) (*Notification, error) {
	raw, err := json.Marshal(item)
	if err != nil {
		return nil, fmt.Errorf("fakeintercom: encode %s item: %w", topic, err)
	}
	n := &Notification{Topic: topic, CreatedAt: s.now(), Item: raw}
	if !o.nullID {
		n.ID = "notif_" + newUUID()
	}
	return n, nil
}

// envelope renders the notification for one delivery attempt.
func (s *Server) envelope(n *Notification, attempt int, firstSent time.Time) ([]byte, error) {
	status := "pending"
	if attempt > 1 {
		status = "retry"
	}
	return json.Marshal(map[string]any{
		"type":              "notification_event",
		"app_id":            s.opts.WorkspaceID,
		"data":              map[string]any{"type": "notification_event_data", "item": n.Item},
		"links":             map[string]any{},
		"id":                nullable(n.ID),
		"topic":             n.Topic,
		"delivery_status":   status,
		"delivery_attempts": attempt,
		"delivered_at":      0,
		"first_sent_at":     firstSent.Unix(),
		"created_at":        n.CreatedAt.Unix(),
		"self":              nil,
	})
}

// Sign returns the X-Hub-Signature of body under the client secret.
func (s *Server) Sign(body []byte) string {
	mac := hmac.New(sha1.New, []byte(s.opts.ClientSecret))
	mac.Write(body)
	return "sha1=" + hex.EncodeToString(mac.Sum(nil))
}

// DeliverWebhook builds a notification about a conversation (see NewNotification) and sends it.
func (s *Server) DeliverWebhook(ctx context.Context, url, topic, conversationID string, opts ...DeliveryOption) error {
	n, err := s.NewNotification(topic, conversationID, opts...)
	if err != nil {
		return err
	}
	return s.Send(ctx, url, n, opts...)
}

// DeliverContactWebhook builds a notification about a contact (see NewContactNotification) and sends it.
func (s *Server) DeliverContactWebhook(ctx context.Context, url, topic, contactID string, opts ...DeliveryOption) error {
	n, err := s.NewContactNotification(topic, contactID, opts...)
	if err != nil {
		return err
	}
	return s.Send(ctx, url, n, opts...)
}

// Ping sends a signed ping notification.
func (s *Server) Ping(ctx context.Context, url string) error {
	return s.DeliverWebhook(ctx, url, "ping", "")
}

// Send delivers a notification, signed, as Intercom does: a 2xx is delivered, 410 unsubscribes
// the endpoint (ErrUnsubscribed, now and for later deliveries), anything else or an answer slower
// than the response timeout is a failed attempt, retried while attempts remain.
func (s *Server) Send(ctx context.Context, url string, n *Notification, opts ...DeliveryOption) error {
	o := newDeliveryOptions(opts)
	if o.delay > 0 {
		if err := sleepCtx(ctx, o.delay); err != nil {
			return err
		}
	}
	first := s.now()
	var lastErr error
	for attempt := 1; attempt <= o.attempts; attempt++ {
		if attempt > 1 {
			if err := sleepCtx(ctx, o.retryInterval); err != nil {
				return err
			}
		}
		body, err := s.envelope(n, attempt, first)
		if err != nil {
			return fmt.Errorf("fakeintercom: encode notification: %w", err)
		}
		status, err := s.post(ctx, url, n, attempt, body, o.responseTimeout)
		switch {
		case status == http.StatusGone:
			s.mu.Lock()
			s.unsubscribed[url] = true
			s.mu.Unlock()
			return ErrUnsubscribed
		case err == nil && status >= 200 && status < 300:
			if o.duplicate {
				_, _ = s.post(ctx, url, n, attempt, body, o.responseTimeout)
			}
			if o.redeliver {
				if again, err := s.envelope(n, attempt+1, first); err == nil {
					_, _ = s.post(ctx, url, n, attempt+1, again, o.responseTimeout)
				}
			}
			return nil
		case err != nil:
			lastErr = err
		default:
			lastErr = fmt.Errorf("status %d", status)
		}
	}
	return fmt.Errorf("%w: %s to %s: %w", ErrDeliveryFailed, n.Topic, url, lastErr)
}

// post makes one delivery attempt and records it.
func (s *Server) post(ctx context.Context, url string, n *Notification, attempt int, body []byte, timeout time.Duration) (int, error) {
	s.mu.Lock()
	gone := s.unsubscribed[url]
	s.mu.Unlock()
	if gone {
		return http.StatusGone, nil
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, err := func() (int, error) {
		req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("User-Agent", webhookUserAgent)
		req.Header.Set("X-Hub-Signature", s.Sign(body))
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.opts.HTTPClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
			return resp.StatusCode, err
		}
		return resp.StatusCode, nil
	}()
	rec := DeliveryRecord{URL: url, Topic: n.Topic, NotificationID: n.ID, Attempt: attempt, Status: status}
	if err != nil {
		rec.Err = err.Error()
	}
	s.mu.Lock()
	if len(s.deliveries) >= maxRequestLog {
		s.deliveries = s.deliveries[1:]
	}
	s.deliveries = append(s.deliveries, rec)
	s.mu.Unlock()
	return status, err
}

// Deliveries returns the delivery attempts made, oldest first (the last 10,000).
func (s *Server) Deliveries() []DeliveryRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeliveryRecord(nil), s.deliveries...)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
