package intercom

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Errors the client returns; APIError and RateLimitedError unwrap to them where they apply.
var (
	ErrNotFound        = errors.New("intercom: not found")
	ErrUnauthorized    = errors.New("intercom: unauthorized")
	ErrNotRedactable   = errors.New("intercom: conversation part is not redactable")
	ErrAlreadyRedacted = errors.New("intercom: conversation part is already redacted")
	ErrRateLimited     = errors.New("intercom: rate limited")
	// ErrAdminNotFound: the configured admin id is not an admin of the workspace (a 404 that is a
	// configuration error, not a missing conversation).
	ErrAdminNotFound = errors.New("intercom: admin not found")
	// ErrOutcomeUnknown: a POST that must not be repeated blindly was sent, and no answer says whether
	// Intercom acted on it (timeout, reset connection, 5xx). Check before posting again.
	ErrOutcomeUnknown = errors.New("intercom: outcome of the request is unknown")
	ErrInvalidEvent   = errors.New("intercom: invalid data event")
)

// Error codes Intercom puts in error.list bodies that the client gives meaning to.
const (
	CodeUnauthorized    = "unauthorized"
	CodeNotFound        = "not_found"
	CodePartNotFound    = "conversation_part_or_message_not_found"
	CodeNotRedactable   = "conversation_part_not_redactable"
	CodeRateLimit       = "rate_limit_exceeded"
	CodeVersionInvalid  = "intercom_version_invalid"
	CodeAdminNotFound   = "admin_not_found"
	CodeParameterNotSet = "parameter_not_found"
	CodeParameterBad    = "parameter_invalid"
)

// ErrorItem is one entry of an error.list body.
type ErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	Field   string `json:"field,omitempty"`
}

// ErrorList is Intercom's error body: {"type":"error.list","request_id":…,"errors":[…]}.
type ErrorList struct {
	Type      string      `json:"type"`
	RequestID *string     `json:"request_id"`
	Errors    []ErrorItem `json:"errors"`
}

// APIError is a non-2xx answer from Intercom. Code and Message come from the first item of an
// error.list body; a body that is not JSON (an HTML 5xx page) leaves them empty and its start in Body.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Errors    []ErrorItem
	Body      string // the start of a body that was not an error.list
	Method    string
	Path      string
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "intercom: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinel error the answer means, if any: ErrUnauthorized, ErrNotFound,
// ErrAdminNotFound, ErrNotRedactable or ErrRateLimited.
func (e *APIError) Unwrap() error {
	switch {
	case e.HasCode(CodeNotRedactable):
		return ErrNotRedactable
	case e.HasCode(CodeAdminNotFound):
		return ErrAdminNotFound
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusTooManyRequests:
		return ErrRateLimited
	}
	return nil
}

// HasCode reports whether any item of the error list carries code.
func (e *APIError) HasCode(code string) bool {
	for _, it := range e.Errors {
		if it.Code == code {
			return true
		}
	}
	return false
}

// RateLimitedError is a 429 the client did not (or no longer) wait out. RetryAfter is how long
// Intercom asked to wait (Retry-After, else X-RateLimit-Reset), zero when it said nothing.
type RateLimitedError struct {
	RetryAfter time.Duration
	Limit      int
	Remaining  int
	Reset      time.Time
	API        *APIError
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.API, e.RetryAfter)
}

// Unwrap returns the API error, which unwraps to ErrRateLimited.
func (e *RateLimitedError) Unwrap() error { return e.API }
