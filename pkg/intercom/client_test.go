package intercom_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
)

const (
	testToken   = "test-token"
	testAdminID = "7310045"
	testSecret  = "test-client-secret"
)

// startFake runs a fake Intercom over a real socket.
func startFake(t *testing.T, edit ...func(*fakeintercom.Options)) (*fakeintercom.Server, string) {
	t.Helper()
	opts := fakeintercom.Options{Token: testToken, AdminID: testAdminID, ClientSecret: testSecret}
	for _, e := range edit {
		e(&opts)
	}
	fake := fakeintercom.New(opts)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// newClient returns a client of the fake with fast retries.
func newClient(t *testing.T, base string, edit ...func(*intercom.Config)) *intercom.Client {
	t.Helper()
	cfg := intercom.DefaultConfig()
	cfg.APIBase = base
	cfg.Token = config.NewSecret(testToken)
	cfg.AdminID = testAdminID
	cfg.Timeout = 2 * time.Second
	cfg.RetryBackoffMin = time.Millisecond
	cfg.RetryBackoffMax = 20 * time.Millisecond
	for _, e := range edit {
		e(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return intercom.NewClient(cfg, &http.Client{}, zaptest.NewLogger(t))
}

func seedConversation(fake *fakeintercom.Server) fakeintercom.Conversation {
	return fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "cust_4821", Email: "ana@example.com", Name: "Ana Ruiz"},
		"<p>My invoice shows the wrong VAT number</p>", "https://app.example.com/billing?sid=web_7f3a",
		map[string]any{"threadline_session_id": "web_7f3a"})
}

func TestReplyNote(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	if err := fake.Close(conv.ID); err != nil {
		t.Fatal(err)
	}
	body := "<p>[1] 10:15:02 User opened the pricing page</p><p>ref: n_01</p>"
	got, err := c.ReplyNote(context.Background(), conv.ID, body)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != conv.ID || got.State != "closed" || got.Open {
		t.Errorf("a note changed the state: id %s state %s open %v", got.ID, got.State, got.Open)
	}
	p, ok := got.LastNoteBy(testAdminID, body)
	if !ok || p.PartType != intercom.PartNote || p.Author.Type != "admin" || p.Author.ID != testAdminID ||
		p.Redacted || p.AppPackageCode == "" || p.ID == "" {
		t.Fatalf("note part = %+v (found %v)", p, ok)
	}
	notes := fake.Notes(conv.ID)
	if len(notes) != 1 || notes[0].ID != p.ID || notes[0].Body != body {
		t.Errorf("fake holds notes %+v", notes)
	}
	if found, ok := got.FindNote(testAdminID, "n_01"); !ok || found.ID != p.ID {
		t.Errorf("FindNote(n_01) = %+v, %v", found, ok)
	}
	rec := fake.RequestLog()
	if len(rec) != 1 || rec[0].Endpoint != fakeintercom.EndpointReply || rec[0].Version != "2.14" || rec[0].Status != 200 {
		t.Errorf("request log = %+v", rec)
	}
}

func TestReplyNoteErrors(t *testing.T) {
	fake, base := startFake(t)
	conv := seedConversation(fake)
	ctx := context.Background()

	_, err := newClient(t, base).ReplyNote(ctx, "999", "<p>x</p>")
	var apiErr *intercom.APIError
	if !errors.Is(err, intercom.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "not_found" || apiErr.Status != 404 || apiErr.RequestID == "" {
		t.Errorf("unknown conversation: %v", err)
	}
	_, err = newClient(t, base, func(c *intercom.Config) { c.AdminID = "1" }).ReplyNote(ctx, conv.ID, "<p>x</p>")
	if !errors.Is(err, intercom.ErrAdminNotFound) || errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown admin: %v", err)
	}
	_, err = newClient(t, base).ReplyNote(ctx, conv.ID, "  ")
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "parameter_not_found" {
		t.Errorf("empty body: %v", err)
	}
	bad := newClient(t, base, func(c *intercom.Config) { c.Token = config.NewSecret("wrong") })
	_, err = bad.ReplyNote(ctx, conv.ID, "<p>x</p>")
	if !errors.Is(err, intercom.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Message != "Access Token Invalid" {
		t.Errorf("bad token: %v", err)
	}
	if rl := bad.RateLimit(); rl != (intercom.RateLimit{}) {
		t.Errorf("an unauthorized answer carried rate-limit headers: %+v", rl)
	}
	_, err = newClient(t, base, func(c *intercom.Config) { c.Version = "9.99" }).GetConversation(ctx, conv.ID)
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != intercom.CodeVersionInvalid {
		t.Errorf("unknown version: %v", err)
	}
	if len(fake.Notes(conv.ID)) != 0 {
		t.Errorf("failed replies left notes: %+v", fake.Notes(conv.ID))
	}
}

func TestRedact(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	ctx := context.Background()
	conv := seedConversation(fake)
	reply, err := c.ReplyNote(ctx, conv.ID, "<p>raw note</p><p>ref: n_02</p>")
	if err != nil {
		t.Fatal(err)
	}
	note, _ := reply.FindNote(testAdminID, "n_02")
	if err := c.Redact(ctx, conv.ID, note.ID); err != nil {
		t.Fatalf("Redact: %v", err)
	}
	notes := fake.Notes(conv.ID)
	if len(notes) != 1 || !notes[0].Redacted || notes[0].Body != fakeintercom.RedactedBody {
		t.Errorf("after redaction the fake holds %+v", notes)
	}
	got, err := c.GetConversation(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.ConversationParts.ConversationParts[0]; !p.Redacted || p.Body != "<p><i>This message was deleted</i></p>" {
		t.Errorf("GET shows %+v", p)
	}
	if _, ok := got.FindNote(testAdminID, "n_02"); ok {
		t.Error("FindNote found a redacted note by its reference")
	}

	gets := fake.Requests(fakeintercom.EndpointGetConversation)
	if err := c.Redact(ctx, conv.ID, note.ID); !errors.Is(err, intercom.ErrAlreadyRedacted) {
		t.Errorf("second redaction: %v, want ErrAlreadyRedacted", err)
	}
	if fake.Requests(fakeintercom.EndpointGetConversation) != gets+1 {
		t.Error("the 400 was not confirmed with a GET")
	}
	if err := c.Redact(ctx, conv.ID, "123"); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown part: %v", err)
	}
	if err := c.Redact(ctx, "999", note.ID); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown conversation: %v", err)
	}
	if err := fake.Close(conv.ID); err != nil {
		t.Fatal(err)
	}
	closed, _ := fake.Conversation(conv.ID)
	closePart := closed.Parts[len(closed.Parts)-1]
	var apiErr *intercom.APIError
	if err := c.Redact(ctx, conv.ID, closePart.ID); !errors.Is(err, intercom.ErrNotRedactable) ||
		!errors.As(err, &apiErr) || apiErr.Code != intercom.CodeNotRedactable {
		t.Errorf("part without body: %v", err)
	}
}

func TestGetConversation(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	if _, err := fake.UserReply(conv.ID, "<p>It is for order 1182</p>"); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetConversation(context.Background(), conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	ct := got.Contacts.Contacts
	if got.Type != "conversation" || got.State != "open" || !got.Open || len(ct) != 1 || ct[0].ExternalID != "cust_4821" ||
		got.Source.URL != "https://app.example.com/billing?sid=web_7f3a" || got.Source.Author.Email != "ana@example.com" ||
		got.Source.Author.Type != "user" || got.CustomAttributes["threadline_session_id"] != "web_7f3a" ||
		got.ConversationParts.TotalCount != 1 || got.ConversationParts.ConversationParts[0].PartType != "comment" {
		t.Errorf("conversation = %+v", got)
	}
	if _, err := c.GetConversation(context.Background(), "999"); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown conversation: %v", err)
	}
	if err := fake.DeleteConversation(conv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetConversation(context.Background(), conv.ID); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("deleted conversation: %v", err)
	}
}

func TestGetConversationCapsParts(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	for range 502 {
		if _, err := fake.UserReply(conv.ID, "<p>again</p>"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.GetConversation(context.Background(), conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	parts := got.ConversationParts.ConversationParts
	all, _ := fake.Conversation(conv.ID)
	if len(parts) != 500 || got.ConversationParts.TotalCount != 502 || parts[499].ID != all.Parts[501].ID || parts[0].ID != all.Parts[2].ID {
		t.Errorf("got %d parts (total %d), want the 500 newest", len(parts), got.ConversationParts.TotalCount)
	}
}

func TestContacts(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	ctx := context.Background()
	conv := seedConversation(fake)
	lead := fake.CreateConversation(fakeintercom.ContactSpec{Name: "Visitor", CustomAttributes: map[string]any{"threadline_session_id": "s-9"}},
		"<p>hi</p>", "https://www.example.com/", nil)

	got, err := c.GetContact(ctx, conv.ContactIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != conv.ContactIDs[0] || got.Role != "user" || got.Email != "ana@example.com" || got.ExternalID != "cust_4821" ||
		got.WorkspaceID != fakeintercom.DefaultWorkspaceID || got.Name != "Ana Ruiz" {
		t.Errorf("contact = %+v", got)
	}
	leadContact, err := c.GetContact(ctx, lead.ContactIDs[0])
	if err != nil || leadContact.Role != "lead" || leadContact.CustomAttributes["threadline_session_id"] != "s-9" {
		t.Errorf("lead = %+v, %v", leadContact, err)
	}
	if _, err := c.GetContact(ctx, "nope"); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown contact: %v", err)
	}
	found, err := c.FindContactByExternalID(ctx, "cust_4821")
	if err != nil || found.ID != got.ID {
		t.Errorf("find by external id = %+v, %v", found, err)
	}
	if _, err := c.FindContactByExternalID(ctx, "cust_0000"); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown external id: %v", err)
	}
	// A lead is never found by external id, even when it carries one.
	fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "lead_1", Role: "lead"}, "<p>hi</p>", "", nil)
	if _, err := c.FindContactByExternalID(ctx, "lead_1"); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("lead by external id: %v", err)
	}
	// After a merge the merged contact is gone.
	if err := fake.MergeContacts(lead.ContactIDs[0], got.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetContact(ctx, lead.ContactIDs[0]); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("merged contact: %v", err)
	}
}

func TestCreateEvent(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	ctx := context.Background()
	conv := seedConversation(fake)
	at := time.Unix(1795000000, 0)
	ev := intercom.DataEvent{EventName: "hit-checkout-error", CreatedAt: at, UserID: "cust_4821",
		Metadata: map[string]any{"page": "checkout", "count": 2, "price": intercom.Money{Amount: 4900, Currency: "eur"}}}
	if err := c.CreateEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateEvent(ctx, ev); err != nil { // a replay: Intercom answers 202 and keeps one
		t.Fatal(err)
	}
	byID := intercom.DataEvent{EventName: "viewed-pricing", CreatedAt: at, ContactID: conv.ContactIDs[0]}
	if err := c.CreateEvent(ctx, byID); err != nil {
		t.Fatal(err)
	}
	events := fake.Events()
	if len(events) != 2 || events[0].EventName != "hit-checkout-error" || events[0].CreatedAt != 1795000000 ||
		events[0].ContactID != conv.ContactIDs[0] || events[0].Metadata["page"] != "checkout" || events[1].EventName != "viewed-pricing" {
		t.Errorf("events = %+v", events)
	}
	if fake.Requests(fakeintercom.EndpointCreateEvent) != 3 {
		t.Errorf("requests = %d, want 3 (the replay still costs a call)", fake.Requests(fakeintercom.EndpointCreateEvent))
	}
	if err := c.CreateEvent(ctx, intercom.DataEvent{EventName: "x", CreatedAt: at, UserID: "nobody"}); !errors.Is(err, intercom.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	if err := c.CreateEvent(ctx, intercom.DataEvent{EventName: "x", UserID: "cust_4821"}); !errors.Is(err, intercom.ErrInvalidEvent) {
		t.Errorf("invalid event: %v", err)
	}
	if fake.Requests(fakeintercom.EndpointCreateEvent) != 4 {
		t.Error("an invalid event was sent")
	}
}

func TestRateLimitHeaders(t *testing.T) {
	start := time.Now() // one fixed instant: all calls fall in one 10-second window
	fake, base := startFake(t, func(o *fakeintercom.Options) {
		o.RateLimitPer10s = 3
		o.Clock = func() time.Time { return start }
	})
	c := newClient(t, base)
	conv := seedConversation(fake)
	ctx := context.Background()
	if _, err := c.GetConversation(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	rl := c.RateLimit()
	if rl.Limit != 3 || rl.Remaining != 2 || rl.Reset.Before(time.Now().Add(-time.Second)) || rl.Reset.After(time.Now().Add(11*time.Second)) {
		t.Errorf("rate limit = %+v", rl)
	}
	if _, err := c.GetConversation(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetConversation(ctx, conv.ID); err != nil {
		t.Fatal(err)
	}
	// The window is spent: the wait until its reset is longer than the client's backoff cap, so
	// the 429 comes back at once for the caller to pause on.
	_, err := c.GetConversation(ctx, conv.ID)
	var rlErr *intercom.RateLimitedError
	if !errors.As(err, &rlErr) || !errors.Is(err, intercom.ErrRateLimited) || rlErr.Limit != 3 || rlErr.Remaining != 0 ||
		rlErr.API.Code != intercom.CodeRateLimit || rlErr.API.Message != "Exceeded rate limit of 3 in 10_seconds" {
		t.Fatalf("err = %v", err)
	}
	if rlErr.RetryAfter > 10*time.Second {
		t.Errorf("retry after %s, beyond the 10 s window", rlErr.RetryAfter)
	}
	if fake.RateLimited() != 1 || fake.Requests(fakeintercom.EndpointGetConversation) != 4 {
		t.Errorf("fake served %d 429s over %d calls", fake.RateLimited(), fake.Requests(fakeintercom.EndpointGetConversation))
	}
}

func TestRateLimitResponseShape(t *testing.T) {
	now := time.Unix(1795000405, 0)
	_, base := startFake(t, func(o *fakeintercom.Options) {
		o.RateLimitPer10s = 1
		o.Clock = func() time.Time { return now }
	})
	get := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+"/contacts/x", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	first := get()
	if first.StatusCode != 404 || first.Header.Get("X-RateLimit-Limit") != "1" || first.Header.Get("X-RateLimit-Remaining") != "0" ||
		first.Header.Get("X-RateLimit-Reset") != "1795000410" {
		t.Errorf("first: %d %v", first.StatusCode, first.Header)
	}
	second := get()
	var body intercom.ErrorList
	if err := json.NewDecoder(second.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if second.StatusCode != 429 || second.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		second.Header.Get("X-RateLimit-Reset") != "1795000410" || body.Type != "error.list" || body.RequestID == nil ||
		len(body.Errors) != 1 || body.Errors[0].Code != "rate_limit_exceeded" || body.Errors[0].Message != "Exceeded rate limit of 1 in 10_seconds" {
		t.Errorf("429: %d %v %+v", second.StatusCode, second.Header, body)
	}
	now = now.Add(5 * time.Second) // the next window
	if third := get(); third.StatusCode != 404 || third.Header.Get("X-RateLimit-Reset") != "1795000420" {
		t.Errorf("next window: %d %v", third.StatusCode, third.Header)
	}
}

func TestHeaderChecks(t *testing.T) {
	_, base := startFake(t)
	do := func(edit func(*http.Request)) (int, intercom.ErrorList) {
		req, _ := http.NewRequest(http.MethodGet, base+"/conversations/1", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Accept", "application/json")
		edit(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body intercom.ErrorList
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode == 401 && resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Error("401 carries rate-limit headers")
		}
		return resp.StatusCode, body
	}
	if s, b := do(func(r *http.Request) { r.Header.Del("Accept") }); s != 406 || b.Type != "error.list" {
		t.Errorf("no Accept: %d %+v", s, b)
	}
	if s, _ := do(func(r *http.Request) { r.Header.Set("Accept", "text/html") }); s != 406 {
		t.Errorf("Accept text/html: %d", s)
	}
	if s, _ := do(func(r *http.Request) { r.Header.Set("Accept", "text/html, application/json;q=0.9") }); s != 404 {
		t.Errorf("Accept listing JSON: %d", s)
	}
	if s, b := do(func(r *http.Request) { r.Header.Del("Authorization") }); s != 401 || b.Errors[0].Code != "unauthorized" {
		t.Errorf("no token: %d %+v", s, b)
	}
	if s, _ := do(func(r *http.Request) { r.Header.Set("Authorization", "Basic "+testToken) }); s != 401 {
		t.Errorf("basic auth: %d", s)
	}
	if s, b := do(func(r *http.Request) { r.Header.Set("Intercom-Version", "1.0") }); s != 400 || b.Errors[0].Code != "intercom_version_invalid" {
		t.Errorf("bad version: %d %+v", s, b)
	}
	if s, _ := do(func(r *http.Request) { r.Header.Set("Intercom-Version", "Preview") }); s != 404 {
		t.Errorf("Preview version: %d", s)
	}
}

func TestRetriesServerErrorsOnReads(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	fake.SetFault(fakeintercom.Fault{ServerErrors: 2})
	if _, err := c.GetConversation(context.Background(), conv.ID); err != nil {
		t.Fatalf("two 502s then success: %v", err)
	}
	if n := fake.Requests(fakeintercom.EndpointGetConversation); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
	fake.SetFault(fakeintercom.Fault{ServerErrors: 3, ServerErrorStatus: 504})
	_, err := c.GetConversation(context.Background(), conv.ID)
	var apiErr *intercom.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 504 || apiErr.Code != "" || !strings.Contains(apiErr.Body, "504 Gateway Time-out") && !strings.Contains(apiErr.Body, "504 Gateway Timeout") {
		t.Errorf("retries exhausted on HTML 504: %v (body %q)", err, bodyOf(apiErr))
	}
	if errors.Is(err, intercom.ErrOutcomeUnknown) {
		t.Error("a GET is never of unknown outcome")
	}
	fake.SetFault(fakeintercom.Fault{DownFor: time.Hour})
	_, err = newClient(t, base, func(c *intercom.Config) { c.MaxRetries = 0 }).GetContact(context.Background(), conv.ContactIDs[0])
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || !strings.Contains(apiErr.Body, "<html>") {
		t.Errorf("down: %v", err)
	}
}

func bodyOf(e *intercom.APIError) string {
	if e == nil {
		return ""
	}
	return e.Body
}

func TestRetriesResetOnReads(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	fake.SetFault(fakeintercom.Fault{Resets: 1})
	if _, err := c.GetConversation(context.Background(), conv.ID); err != nil {
		t.Fatalf("reset then success: %v", err)
	}
	if n := fake.Requests(fakeintercom.EndpointGetConversation); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
}

func TestRedactRetriesServerErrors(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	reply, err := c.ReplyNote(context.Background(), conv.ID, "<p>ref: n_03</p>")
	if err != nil {
		t.Fatal(err)
	}
	note, _ := reply.FindNote(testAdminID, "n_03")
	// The first redaction takes effect but its answer is lost; the retry meets a 400, which the
	// client confirms as already redacted.
	fake.SetFault(fakeintercom.Fault{ServerErrors: 1, AfterProcessing: true})
	if err := c.Redact(context.Background(), conv.ID, note.ID); !errors.Is(err, intercom.ErrAlreadyRedacted) {
		t.Fatalf("redact after a lost answer: %v", err)
	}
	if n := fake.Requests(fakeintercom.EndpointRedact); n != 2 {
		t.Errorf("redact requests = %d, want 2", n)
	}
}

// A POST of unknown outcome is never sent again: the caller gets ErrOutcomeUnknown and checks first.
func TestReplyNoteOutcomeUnknown(t *testing.T) {
	tests := []struct {
		name      string
		fault     fakeintercom.Fault
		timeout   time.Duration
		tookPlace bool
	}{
		{"timeout while Intercom works on it", fakeintercom.Fault{Latency: 300 * time.Millisecond}, 100 * time.Millisecond, true},
		{"502 before", fakeintercom.Fault{ServerErrors: 1}, time.Second, false},
		{"504 after it took effect", fakeintercom.Fault{ServerErrors: 1, ServerErrorStatus: 504, AfterProcessing: true}, time.Second, true},
		{"connection reset", fakeintercom.Fault{Resets: 1}, time.Second, false},
		{"connection reset after it took effect", fakeintercom.Fault{Resets: 1, AfterProcessing: true}, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, base := startFake(t)
			c := newClient(t, base, func(c *intercom.Config) { c.Timeout = tt.timeout })
			conv := seedConversation(fake)
			fake.SetFault(tt.fault)
			_, err := c.ReplyNote(context.Background(), conv.ID, "<p>ref: n_04</p>")
			if !errors.Is(err, intercom.ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
			}
			if n := fake.Requests(fakeintercom.EndpointReply); n != 1 {
				t.Fatalf("reply requests = %d: the POST was repeated blindly", n)
			}
			fake.SetFault(fakeintercom.Fault{})
			// What the caller does next: look for the note before posting again.
			deadline := time.Now().Add(2 * time.Second)
			for {
				got, err := c.GetConversation(context.Background(), conv.ID)
				if err != nil {
					t.Fatal(err)
				}
				_, found := got.FindNote(testAdminID, "n_04")
				if found == tt.tookPlace {
					break
				}
				if !tt.tookPlace || time.Now().After(deadline) {
					t.Fatalf("note found = %v, want %v", found, tt.tookPlace)
				}
				time.Sleep(20 * time.Millisecond) // the slow call is still finishing on the fake
			}
		})
	}
}

// A POST that never left (connection refused) is safe to retry and is not of unknown outcome.
func TestReplyNoteConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, "http://"+addr)
	_, err = c.ReplyNote(context.Background(), "1", "<p>x</p>")
	if err == nil || errors.Is(err, intercom.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want a plain connection error", err)
	}
}

func TestRateLimitedRetry(t *testing.T) {
	fake, base := startFake(t)
	conv := seedConversation(fake)
	// A 429 asking to wait 1 s: within a 2 s cap the client waits and retries.
	fake.SetFault(fakeintercom.Fault{RateLimitedFor: 10 * time.Millisecond})
	c := newClient(t, base, func(c *intercom.Config) { c.RetryBackoffMax = 2 * time.Second })
	if _, err := c.ReplyNote(context.Background(), conv.ID, "<p>ref: n_05</p>"); err != nil {
		t.Fatalf("reply after a 429: %v", err)
	}
	if fake.Requests(fakeintercom.EndpointReply) != 2 || len(fake.Notes(conv.ID)) != 1 || fake.RateLimited() != 1 {
		t.Errorf("requests %d, notes %d, 429s %d", fake.Requests(fakeintercom.EndpointReply), len(fake.Notes(conv.ID)), fake.RateLimited())
	}
	// Beyond the cap the 429 is returned with how long to wait.
	fake.SetFault(fakeintercom.Fault{RateLimitedFor: 30 * time.Second})
	_, err := newClient(t, base).ReplyNote(context.Background(), conv.ID, "<p>ref: n_06</p>")
	var rl *intercom.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 30*time.Second || errors.Is(err, intercom.ErrOutcomeUnknown) {
		t.Errorf("err = %v", err)
	}
}

func TestContextCancelled(t *testing.T) {
	fake, base := startFake(t)
	c := newClient(t, base)
	conv := seedConversation(fake)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetConversation(ctx, conv.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := fake.Requests(fakeintercom.EndpointGetConversation); n != 0 {
		t.Errorf("a cancelled call was sent %d times", n)
	}
}

func TestFindNote(t *testing.T) {
	conv := intercom.Conversation{ConversationParts: intercom.PartList{ConversationParts: []intercom.Part{
		{ID: "1", PartType: "note", Body: "<p>ref: n_1</p>", Author: intercom.Author{Type: "admin", ID: "7"}},
		{ID: "2", PartType: "note", Body: "<p>ref: n_12</p>", Author: intercom.Author{Type: "admin", ID: "7"}},
		{ID: "3", PartType: "comment", Body: "<p>ref: n_3</p>", Author: intercom.Author{Type: "admin", ID: "7"}},
		{ID: "4", PartType: "note", Body: "<p>ref: n_4</p>", Author: intercom.Author{Type: "admin", ID: "8"}},
		{ID: "5", PartType: "note", Body: "<p>ref:n_1</p>", Author: intercom.Author{Type: "admin", ID: "7"}},
	}}}
	tests := []struct {
		admin, ref, want string
	}{
		{"7", "n_1", "5"}, // the newest of two
		{"7", "n_12", "2"},
		{"7", "n_", ""},  // a prefix of a reference is not the reference
		{"7", "n_3", ""}, // comments are not notes
		{"7", "n_4", ""}, // another admin's note
		{"8", "n_4", "4"},
		{"7", "", ""},
	}
	for _, tt := range tests {
		got := ""
		if p, ok := conv.FindNote(tt.admin, tt.ref); ok {
			got = p.ID
		}
		if got != tt.want {
			t.Errorf("FindNote(%s, %q) = %q, want %q", tt.admin, tt.ref, got, tt.want)
		}
	}
	var nilConv *intercom.Conversation
	if _, ok := nilConv.FindNote("7", "n_1"); ok {
		t.Error("found a note in a nil conversation")
	}
}

func TestMetrics(t *testing.T) {
	fake, base := startFake(t)
	conv := seedConversation(fake)
	reg := prometheus.NewRegistry()
	m, err := intercom.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := intercom.NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	cfg := intercom.DefaultConfig()
	cfg.APIBase, cfg.Token, cfg.AdminID = base, config.NewSecret(testToken), testAdminID
	cfg.RetryBackoffMin, cfg.RetryBackoffMax = time.Millisecond, 5*time.Millisecond
	c := intercom.NewClient(cfg, nil, zaptest.NewLogger(t), intercom.WithMetrics(m))
	fake.SetFault(fakeintercom.Fault{ServerErrors: 1})
	if _, err := c.GetConversation(context.Background(), conv.ID); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			key := f.GetName()
			for _, l := range metric.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case metric.GetCounter() != nil:
				got[key] = metric.GetCounter().GetValue()
			case metric.GetGauge() != nil:
				got[key] = metric.GetGauge().GetValue()
			case metric.GetHistogram() != nil:
				got[key] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"threadline_intercom_requests_total,endpoint=get_conversation,status=502": 1,
		"threadline_intercom_requests_total,endpoint=get_conversation,status=200": 1,
		"threadline_intercom_retries_total,endpoint=get_conversation":             1,
		"threadline_intercom_request_duration_seconds,endpoint=get_conversation":  2,
		"threadline_intercom_rate_limit_remaining":                                fakeintercom.DefaultRateLimitPer10s - 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
