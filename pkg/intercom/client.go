package intercom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxResponseBytes bounds how much of a response body the client reads.
const maxResponseBytes = 16 << 20

// Client is the Intercom REST client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string
	hc   *http.Client
	log  *zap.Logger

	metrics *Metrics // nil: not recorded

	mu        sync.Mutex
	rateLimit RateLimit
}

// NewClient returns a client for cfg (which should have passed Validate). hc may be nil; each
// attempt is bounded by cfg.Timeout whatever hc's own timeout.
func NewClient(cfg Config, hc *http.Client, log *zap.Logger, opts ...Option) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{cfg: cfg, base: strings.TrimRight(cfg.APIBase, "/"), hc: hc, log: log}
	for _, o := range opts {
		o(c)
	}
	return c
}

// AdminID returns the admin that authors notes.
func (c *Client) AdminID() string { return c.cfg.AdminID }

// RateLimit returns the X-RateLimit-* values of the last response that carried them.
func (c *Client) RateLimit() RateLimit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rateLimit
}

// ReplyNote posts bodyHTML as an internal note by the configured admin and returns the conversation
// as Intercom answers it. The request is never repeated once it may have reached Intercom: when its
// outcome is unknown the error wraps ErrOutcomeUnknown, and the caller should look for the note
// (GetConversation, then FindNote with the note's reference token) before posting it again.
func (c *Client) ReplyNote(ctx context.Context, conversationID, bodyHTML string) (*Conversation, error) {
	if conversationID == "" {
		return nil, fmt.Errorf("intercom: reply note: %w: empty conversation id", ErrNotFound)
	}
	req := map[string]any{
		"message_type": PartNote,
		"type":         "admin",
		"admin_id":     c.cfg.AdminID,
		"body":         bodyHTML,
	}
	var conv Conversation
	err := c.do(ctx, request{
		method:   http.MethodPost,
		path:     "/conversations/" + url.PathEscape(conversationID) + "/reply",
		endpoint: "reply",
		body:     req,
		unsafe:   true,
	}, &conv)
	if err != nil {
		return nil, err
	}
	return &conv, nil
}

// Redact redacts a conversation part. A part that is already redacted gives ErrAlreadyRedacted
// (Intercom answers 400; the client confirms with a GET), a part without a body ErrNotRedactable,
// an unknown conversation or part ErrNotFound.
func (c *Client) Redact(ctx context.Context, conversationID, partID string) error {
	err := c.do(ctx, request{
		method:   http.MethodPost,
		path:     "/conversations/redact",
		endpoint: "redact",
		body: map[string]string{
			"type":                 "conversation_part",
			"conversation_id":      conversationID,
			"conversation_part_id": partID,
		},
	}, nil)
	var apiErr *APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || errors.Is(err, ErrNotRedactable) {
		return err
	}
	conv, gerr := c.GetConversation(ctx, conversationID)
	if gerr != nil {
		return fmt.Errorf("%w (confirming redaction: %w)", err, gerr)
	}
	for _, p := range conv.ConversationParts.ConversationParts {
		if p.ID == partID && p.Redacted {
			return fmt.Errorf("intercom: redact part %s of conversation %s: %w", partID, conversationID, ErrAlreadyRedacted)
		}
	}
	return err
}

// GetConversation fetches a conversation with (at most) its 500 newest parts.
func (c *Client) GetConversation(ctx context.Context, id string) (*Conversation, error) {
	if id == "" {
		return nil, fmt.Errorf("intercom: get conversation: %w: empty id", ErrNotFound)
	}
	var conv Conversation
	if err := c.do(ctx, request{method: http.MethodGet, path: "/conversations/" + url.PathEscape(id), endpoint: "get_conversation"}, &conv); err != nil {
		return nil, err
	}
	return &conv, nil
}

// GetContact fetches a contact by its Intercom id.
func (c *Client) GetContact(ctx context.Context, id string) (*Contact, error) {
	if id == "" {
		return nil, fmt.Errorf("intercom: get contact: %w: empty id", ErrNotFound)
	}
	var ct Contact
	if err := c.do(ctx, request{method: http.MethodGet, path: "/contacts/" + url.PathEscape(id), endpoint: "get_contact"}, &ct); err != nil {
		return nil, err
	}
	return &ct, nil
}

// FindContactByExternalID finds a user by its external_id (the product's user id). Leads have none,
// so they are never found this way.
func (c *Client) FindContactByExternalID(ctx context.Context, externalID string) (*Contact, error) {
	if externalID == "" {
		return nil, fmt.Errorf("intercom: find contact: %w: empty external id", ErrNotFound)
	}
	var ct Contact
	err := c.do(ctx, request{
		method:   http.MethodGet,
		path:     "/contacts/find_by_external_id/" + url.PathEscape(externalID),
		endpoint: "find_contact",
	}, &ct)
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// CreateEvent posts a data event. Intercom ignores a repeat with the same name, user and
// created_at, so the call may be retried; an unknown user gives ErrNotFound.
func (c *Client) CreateEvent(ctx context.Context, ev DataEvent) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	return c.do(ctx, request{method: http.MethodPost, path: "/events", endpoint: "create_event", body: ev}, nil)
}

// request is one API call.
type request struct {
	method   string
	path     string
	endpoint string // a short name for logs
	body     any
	// unsafe marks a POST that must not be repeated when it may have reached Intercom.
	unsafe bool
}

// response is a read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (c *Client) do(ctx context.Context, r request, out any) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("intercom: %s %s: encode body: %w", r.method, r.path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		resp, sent, err := c.attempt(ctx, r, payload)
		if err != nil {
			if sent && r.unsafe {
				return fmt.Errorf("%w: %s %s: %w", ErrOutcomeUnknown, r.method, r.path, err)
			}
			if ctx.Err() != nil || attempt >= c.cfg.MaxRetries {
				return fmt.Errorf("intercom: %s %s: %w", r.method, r.path, err)
			}
			wait := c.backoff(attempt)
			c.metrics.retry(r.endpoint)
			c.log.Warn("intercom request failed, retrying", zap.String("endpoint", r.endpoint),
				zap.Int("attempt", attempt+1), zap.Duration("wait", wait), zap.Error(err))
			if err := sleep(ctx, wait); err != nil {
				return fmt.Errorf("intercom: %s %s: %w", r.method, r.path, err)
			}
			continue
		}
		rl, seen := parseRateLimit(resp.header)
		if seen {
			c.mu.Lock()
			c.rateLimit = rl
			c.mu.Unlock()
			c.metrics.rateLimit(rl)
		}
		if resp.status >= 200 && resp.status < 300 {
			if out == nil || len(bytes.TrimSpace(resp.body)) == 0 {
				return nil
			}
			if err := json.Unmarshal(resp.body, out); err != nil {
				return fmt.Errorf("intercom: %s %s: decode response: %w", r.method, r.path, err)
			}
			return nil
		}
		apiErr := parseAPIError(r, resp)
		var final error = apiErr
		retryable := resp.status == http.StatusRequestTimeout || resp.status == http.StatusTooManyRequests || resp.status >= 500
		wait := c.backoff(attempt)
		if resp.status == http.StatusTooManyRequests {
			hint := retryAfter(resp.header, time.Now())
			final = &RateLimitedError{RetryAfter: hint, Limit: rl.Limit, Remaining: rl.Remaining, Reset: rl.Reset, API: apiErr}
			if hint > c.cfg.RetryBackoffMax {
				return final
			}
			wait = max(wait, hint)
		}
		if !retryable {
			return final
		}
		if resp.status >= 500 && r.unsafe {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, apiErr)
		}
		if attempt >= c.cfg.MaxRetries {
			return final
		}
		c.metrics.retry(r.endpoint)
		c.log.Warn("intercom answered with a retryable status, retrying", zap.String("endpoint", r.endpoint),
			zap.Int("status", resp.status), zap.String("code", apiErr.Code), zap.Int("attempt", attempt+1), zap.Duration("wait", wait))
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (while waiting to retry: %w)", final, err)
		}
	}
}

// attempt sends the request once. sent reports whether the request may have reached the server:
// once its headers are written, the server may act on it.
func (c *Client) attempt(ctx context.Context, r request, payload []byte) (_ *response, sent bool, _ error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Intercom-Version", c.cfg.Version)
	req.Header.Set("User-Agent", "threadline-intercom/1")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.metrics.observe(r.endpoint, 0, time.Since(start))
		return nil, wrote.Load(), err
	}
	defer resp.Body.Close()
	defer func() { c.metrics.observe(r.endpoint, resp.StatusCode, time.Since(start)) }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, true, fmt.Errorf("read %d response: %w", resp.StatusCode, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, true, nil
}

// backoff returns the wait before retry number attempt+1: exponential from RetryBackoffMin, capped
// at RetryBackoffMax, with jitter over its upper half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBackoffMin
	for i := 0; i < attempt && d < c.cfg.RetryBackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.RetryBackoffMax)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func parseAPIError(r request, resp *response) *APIError {
	e := &APIError{Status: resp.status, Method: r.method, Path: r.path}
	var list ErrorList
	if err := json.Unmarshal(resp.body, &list); err == nil && list.Type == "error.list" {
		e.Errors = list.Errors
		if list.RequestID != nil {
			e.RequestID = *list.RequestID
		}
		if len(list.Errors) > 0 {
			e.Code, e.Message = list.Errors[0].Code, list.Errors[0].Message
		}
		return e
	}
	const keep = 256
	b := strings.TrimSpace(string(resp.body))
	if len(b) > keep {
		b = b[:keep]
	}
	e.Body = b
	return e
}

// parseRateLimit reads X-RateLimit-Limit, -Remaining and -Reset (Unix seconds).
func parseRateLimit(h http.Header) (RateLimit, bool) {
	limit, err := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	if err != nil {
		return RateLimit{}, false
	}
	rl := RateLimit{Limit: limit}
	if v, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil {
		rl.Remaining = v
	}
	if v, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil && v > 0 {
		rl.Reset = time.Unix(v, 0)
	}
	return rl, true
}

// retryAfter reads how long a 429 asks to wait: Retry-After (seconds or an HTTP date) first, then
// X-RateLimit-Reset, as Intercom's own SDKs do. Zero when neither says.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if rl, ok := parseRateLimit(h); ok && !rl.Reset.IsZero() {
		return max(rl.Reset.Sub(now), 0)
	}
	return 0
}
