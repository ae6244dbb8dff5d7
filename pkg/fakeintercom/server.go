// Package fakeintercom owns a faithful fake of the Intercom REST API and webhook sender, for tests
// and the dev stack: notes (reply), redaction, conversations, contacts and search, data events,
// bearer auth, Accept and Intercom-Version checks, 10-second-window rate limiting with Intercom's
// headers and 429 body, fault injection, signed webhook delivery (duplicates, out of order,
// retries), and an HTML page showing conversations, their notes and data events.
//
// Shapes follow API version 2.14. Endpoints under /_fake/ and the page at / need no token.
package fakeintercom

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultRateLimitPer10s = 1666 // 10,000 calls a minute, split into six 10-second windows
	DefaultWorkspaceID     = "ab12cd34"
	DefaultAdminName       = "Threadline"
	DefaultAdminEmail      = "threadline@example.com"
	DefaultAppPackageCode  = "threadline"
	DefaultVersion         = "2.14"
)

// KnownVersions are the Intercom-Version values the fake accepts.
var knownVersions = map[string]bool{
	"2.7": true, "2.8": true, "2.9": true, "2.10": true, "2.11": true, "2.12": true, "2.13": true,
	"2.14": true, "2.15": true, "2.16": true, "2.17": true, "Preview": true, "Unstable": true,
}

// Endpoints, as the fake counts requests (method and path pattern).
const (
	EndpointReply           = "POST /conversations/{id}/reply"
	EndpointRedact          = "POST /conversations/redact"
	EndpointGetConversation = "GET /conversations/{id}"
	EndpointGetContact      = "GET /contacts/{id}"
	EndpointFindContact     = "GET /contacts/find_by_external_id/{external_id}"
	EndpointSearchContacts  = "POST /contacts/search"
	EndpointCreateEvent     = "POST /events"
	EndpointListEvents      = "GET /events"
	EndpointUnknown         = "unknown"
)

// Options configure the fake.
type Options struct {
	Token           string           // the bearer token the API accepts
	AdminID         string           // the one admin that may author notes
	ClientSecret    string           // the app's client secret, signing webhooks
	RateLimitPer10s int              // API calls allowed per 10-second window (default 1666)
	Clock           func() time.Time // default time.Now

	WorkspaceID    string       // app_id in webhooks (default ab12cd34)
	AdminName      string       // name of the admin (default Threadline)
	AdminEmail     string       // email of the admin
	AppPackageCode string       // app_package_code of parts created through the API
	WebhookURL     string       // where the /_fake/ endpoints deliver webhooks by default ("" = nowhere)
	HTTPClient     *http.Client // delivers webhooks (default: a new client)
}

func (o *Options) setDefaults() {
	if o.RateLimitPer10s <= 0 {
		o.RateLimitPer10s = DefaultRateLimitPer10s
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.WorkspaceID == "" {
		o.WorkspaceID = DefaultWorkspaceID
	}
	if o.AdminName == "" {
		o.AdminName = DefaultAdminName
	}
	if o.AdminEmail == "" {
		o.AdminEmail = DefaultAdminEmail
	}
	if o.AppPackageCode == "" {
		o.AppPackageCode = DefaultAppPackageCode
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
}

// Fault is injected into API calls (not the page or /_fake/).
type Fault struct {
	Latency           time.Duration // added before every call; the call still takes effect if the caller gave up
	ServerErrors      int           // the next N calls answer ServerErrorStatus with an HTML page
	ServerErrorStatus int           // default 502
	Resets            int           // the next N calls get their connection reset
	AfterProcessing   bool          // ServerErrors and Resets strike after the call took effect
	RateLimitedFor    time.Duration // every call answers 429 (with Retry-After) for this long
	DownFor           time.Duration // every call answers 503 with an HTML page for this long
}

// RequestRecord is one API call the fake served.
type RequestRecord struct {
	Endpoint string
	Method   string
	Path     string
	Version  string // the Intercom-Version header sent
	Status   int    // 0 for a reset connection
}

// Server is the fake Intercom. It is an http.Handler.
type Server struct {
	opts Options
	mux  *http.ServeMux // page and /_fake/
	api  *http.ServeMux // the REST API

	mu           sync.Mutex
	convs        map[string]*Conversation
	convOrder    []string
	contacts     map[string]*Contact
	contactOrder []string
	events       []Event
	seq          struct{ conversation, part, source, contact int64 }

	fault          Fault
	rateLimitUntil time.Time
	downUntil      time.Time

	window       int64 // start of the current rate-limit window, Unix seconds
	windowCount  int
	requests     map[string]int
	requestLog   []RequestRecord
	rateLimited  int
	unsubscribed map[string]bool
	deliveries   []DeliveryRecord
}

// New returns a fake Intercom with opts.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:         opts,
		convs:        map[string]*Conversation{},
		contacts:     map[string]*Contact{},
		requests:     map[string]int{},
		unsubscribed: map[string]bool{},
	}
	s.api = http.NewServeMux()
	s.api.HandleFunc(EndpointReply, s.handleReply)
	s.api.HandleFunc(EndpointRedact, s.handleRedact)
	s.api.HandleFunc(EndpointGetConversation, s.handleGetConversation)
	s.api.HandleFunc(EndpointGetContact, s.handleGetContact)
	s.api.HandleFunc(EndpointFindContact, s.handleFindContact)
	s.api.HandleFunc(EndpointSearchContacts, s.handleSearchContacts)
	s.api.HandleFunc(EndpointCreateEvent, s.handleCreateEvent)
	s.api.HandleFunc(EndpointListEvents, s.handleListEvents)

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.handlePage)
	s.mux.HandleFunc("GET /_fake/conversations", s.handleFakeConversations)
	s.mux.HandleFunc("POST /_fake/conversations", s.handleFakeCreateConversation)
	s.mux.HandleFunc("POST /_fake/conversations/{id}/{action}", s.handleFakeAction)
	s.mux.HandleFunc("POST /_fake/webhooks", s.handleFakeWebhook)
	s.mux.HandleFunc("GET /_fake/events", s.handleFakeEvents)
	s.mux.HandleFunc("/", s.serveAPI)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) now() time.Time { return s.opts.Clock() }

// SetFault replaces the injected fault; durations run from now. Fault{} clears it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ServerErrorStatus == 0 {
		f.ServerErrorStatus = http.StatusBadGateway
	}
	s.fault = f
	now := s.now()
	s.rateLimitUntil, s.downUntil = time.Time{}, time.Time{}
	if f.RateLimitedFor > 0 {
		s.rateLimitUntil = now.Add(f.RateLimitedFor)
	}
	if f.DownFor > 0 {
		s.downUntil = now.Add(f.DownFor)
	}
}

// Requests returns how many API calls endpoint (an Endpoint* constant) received.
func (s *Server) Requests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[endpoint]
}

// RateLimited returns how many 429 answers the fake gave.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

// RequestLog returns the API calls served, oldest first (the last 10,000).
func (s *Server) RequestLog() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RequestRecord(nil), s.requestLog...)
}

const maxRequestLog = 10000

// faultAction is what the fault says to do with one call.
type faultAction int

const (
	faultNone faultAction = iota
	faultDown
	faultReset
	faultServerError
	faultRateLimited
)

// serveAPI runs one API call through faults, auth, rate limiting and header checks.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.api.Handler(r)
	endpoint := pattern
	if endpoint == "" {
		endpoint = EndpointUnknown
	}
	s.mu.Lock()
	s.requests[endpoint]++
	f := s.fault
	now := s.now()
	action := faultNone
	switch {
	case now.Before(s.downUntil):
		action = faultDown
	case s.fault.Resets > 0:
		s.fault.Resets--
		action = faultReset
	case s.fault.ServerErrors > 0:
		s.fault.ServerErrors--
		action = faultServerError
	case now.Before(s.rateLimitUntil):
		action = faultRateLimited
		s.rateLimited++
	}
	retryAfter := s.rateLimitUntil.Sub(now)
	s.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w}
	defer func() { s.logRequest(endpoint, r, rec.status) }()
	if f.Latency > 0 {
		time.Sleep(f.Latency) // deliberately not cut short when the caller gives up: the call still happens
	}
	if (action == faultReset || action == faultServerError) && f.AfterProcessing {
		s.handleAPI(httptest.NewRecorder(), r, endpoint)
	}
	switch action {
	case faultDown:
		writeHTMLError(rec, http.StatusServiceUnavailable)
	case faultReset:
		resetConnection(w)
	case faultServerError:
		writeHTMLError(rec, f.ServerErrorStatus)
	case faultRateLimited:
		secs := int((retryAfter + time.Second - 1) / time.Second)
		rec.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		s.writeRateLimitHeaders(rec, 0)
		writeError(rec, http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("Exceeded rate limit of %d in 10_seconds", s.opts.RateLimitPer10s))
	default:
		s.handleAPI(rec, r, endpoint)
	}
}

// handleAPI checks the token, the rate limit, Accept and Intercom-Version, then routes.
func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request, endpoint string) {
	if !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "Access Token Invalid")
		return
	}
	remaining, ok := s.takeRateLimit()
	s.writeRateLimitHeaders(w, remaining)
	if !ok {
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("Exceeded rate limit of %d in 10_seconds", s.opts.RateLimitPer10s))
		return
	}
	if !acceptsJSON(r.Header.Get("Accept")) {
		writeError(w, http.StatusNotAcceptable, "client_error", "The Accept header must allow application/json")
		return
	}
	if v := r.Header.Get("Intercom-Version"); v != "" && !knownVersions[v] {
		writeError(w, http.StatusBadRequest, "intercom_version_invalid", "Requested resource is not available in current API version.")
		return
	}
	if endpoint == EndpointUnknown {
		writeError(w, http.StatusNotFound, "not_found", "Resource Not Found")
		return
	}
	s.api.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	return ok && s.opts.Token != "" && tok == s.opts.Token
}

// takeRateLimit counts a call in the current 10-second window; ok is false when it is over the limit.
func (s *Server) takeRateLimit() (remaining int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.now().Unix() / 10 * 10
	if w != s.window {
		s.window, s.windowCount = w, 0
	}
	if s.windowCount >= s.opts.RateLimitPer10s {
		s.rateLimited++
		return 0, false
	}
	s.windowCount++
	return s.opts.RateLimitPer10s - s.windowCount, true
}

func (s *Server) writeRateLimitHeaders(w http.ResponseWriter, remaining int) {
	s.mu.Lock()
	reset := s.now().Unix()/10*10 + 10
	s.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.opts.RateLimitPer10s))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
}

func (s *Server) logRequest(endpoint string, r *http.Request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requestLog) >= maxRequestLog {
		s.requestLog = s.requestLog[1:]
	}
	s.requestLog = append(s.requestLog, RequestRecord{
		Endpoint: endpoint, Method: r.Method, Path: r.URL.Path, Version: r.Header.Get("Intercom-Version"), Status: status,
	})
}

// acceptsJSON reports whether an Accept header lists application/json.
func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// resetConnection ends the connection with a TCP reset, as a crashed load balancer would.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// writeHTMLError answers like a proxy in front of Intercom: an HTML page, not JSON.
func writeHTMLError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", text, text)
}

// writeError writes Intercom's error.list body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeErrorField(w, status, code, message, "")
}

func writeErrorField(w http.ResponseWriter, status int, code, message, field string) {
	item := map[string]any{"code": code, "message": message}
	if field != "" {
		item["field"] = field
	}
	writeJSON(w, status, map[string]any{"type": "error.list", "request_id": newUUID(), "errors": []any{item}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
