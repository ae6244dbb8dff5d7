package notes

import (
	"errors"
	"fmt"
	"time"
)

// Errors an Intercom implementation returns, which the writer classifies. An adapter maps the REST
// client's errors onto these; any other error counts as a failed call (5xx, reset, timeout).
var (
	// ErrOutcomeUnknown: the call was sent and no answer says whether Intercom acted on it.
	ErrOutcomeUnknown = errors.New("notes: outcome of the intercom call is unknown")
	// ErrConversationGone: the conversation no longer exists (404). For Redact, a 404 of the part
	// means the same to the writer: nothing is left to redact.
	ErrConversationGone = errors.New("notes: conversation is gone")
	// ErrUnauthorized: the access token was refused (401). Writing stops until an operator acts.
	ErrUnauthorized = errors.New("notes: intercom refused the access token")
	// ErrAlreadyRedacted: the part was redacted before; for the writer that means done.
	ErrAlreadyRedacted = errors.New("notes: conversation part is already redacted")
	// ErrRejected: Intercom refused this particular request and will refuse it again (400, 422,
	// conversation_part_not_redactable). A rejected note's actions go to the dead-letter sink; a
	// rejected redaction is given up; a rejected summary is permanent.
	ErrRejected = errors.New("notes: intercom rejected the request")
)

// Errors the writer returns to its callers.
var (
	// ErrBreakerOpen: the workspace's circuit breaker is open; back off and try again (transient).
	ErrBreakerOpen = errors.New("notes: intercom circuit breaker is open")
	// ErrBacklogFull: a conversation has MaxPending actions waiting; back off (transient).
	ErrBacklogFull = errors.New("notes: too many actions are waiting for this conversation")
	// ErrBusy: another replica is executing the same summary right now (transient).
	ErrBusy = errors.New("notes: another replica holds this job")
	// ErrInvalidInput: the message cannot be processed as it is (permanent).
	ErrInvalidInput = errors.New("notes: invalid input")
	// ErrNotRestored: Redis does not hold the delivery record of the conversation's shard (it is new
	// or lost its data), so the writer cannot tell what Intercom already has; nothing is accepted or
	// posted until a restore from notes.written set the restore markers (transient).
	ErrNotRestored = errors.New("notes: redis does not hold the delivery record; restore it from notes.written first")
	// errLeaseLost: this replica no longer owns the conversation it was flushing.
	errLeaseLost = errors.New("notes: lease on the conversation was lost")
)

// RateLimitedError is Intercom saying 429. RetryAfter is how long it asked to wait; zero when it did
// not say. The writer pauses every replica for that long.
type RateLimitedError struct {
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("notes: intercom rate limit reached (retry after %s)", e.RetryAfter)
}

// IsPermanent reports whether err means the input can never succeed (the conversation is gone, or
// the message is invalid): the consumer sends the record to the dead-letter topic and moves on.
// Every other error from Enqueue or ExecuteSummary is transient: back off and retry, commit nothing.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrConversationGone) || errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrRejected)
}

// IsUnauthorized reports whether err is, or was caused by, Intercom refusing the access token.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// notSentError wraps an error that happened before a call reached Intercom (open breaker, budget
// wait cancelled, lease lost): the call certainly had no effect.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func notSent(err error) error { return &notSentError{err: err} }

// certainlyNotStored reports whether a failed call is known to have had no effect.
func certainlyNotStored(err error) bool {
	var ns *notSentError
	var rl *RateLimitedError
	return errors.As(err, &ns) || errors.As(err, &rl) || errors.Is(err, ErrUnauthorized) ||
		errors.Is(err, ErrConversationGone) || errors.Is(err, ErrRejected)
}
