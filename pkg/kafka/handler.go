package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes records of ONE partition, in offset order. Returning nil means all side
// effects of all recs are done. A returned error classifies the first record not done (see
// RecordError): Permanent, Fatal, or else transient.
type Handler interface {
	Handle(ctx context.Context, recs []*kgo.Record) error
}

// AssignmentListener is a Handler that is told which partitions the consumer starts on, before
// any of their records reach Handle: what it remembers about the keys of partitions it did not
// own a moment ago may have changed meanwhile on another replica.
type AssignmentListener interface {
	Assigned(topic string, partitions []int32)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, recs []*kgo.Record) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, recs []*kgo.Record) error { return f(ctx, recs) }

// PerRecord returns a Handler that calls fn for each record in turn and stops at the first
// error, which it returns wrapped in a *RecordError carrying the record's index.
func PerRecord(fn func(ctx context.Context, rec *kgo.Record) error) Handler {
	return HandlerFunc(func(ctx context.Context, recs []*kgo.Record) error {
		for i, r := range recs {
			if err := fn(ctx, r); err != nil {
				return &RecordError{Index: i, Err: err}
			}
		}
		return nil
	})
}

// RecordError reports how far a handler call got: recs[:Index] are done, and Err classifies
// recs[Index]. A handler error that is not a RecordError means the same as Index 0.
type RecordError struct {
	Index int
	Err   error
}

// Error implements error.
func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }

// Unwrap returns the classified error.
func (e *RecordError) Unwrap() error { return e.Err }

// permanentError marks a record that can never succeed.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string {
	if e.err == nil {
		return "permanent (" + e.reason + ")"
	}
	return e.err.Error()
}
func (e *permanentError) Unwrap() error { return e.err }

// fatalError stops the consumer.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return "fatal: " + e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying cannot fix (undecodable or invalid input). The
// record goes to the dead-letter topic with reason (a short, fixed word such as "decode" or
// "invalid"), is then marked done, and processing continues with the next record.
func Permanent(reason string, err error) error {
	if reason == "" {
		reason = "permanent"
	}
	return &permanentError{reason: reason, err: err}
}

// Fatal marks err as a failure that must stop the consumer: Run returns it, and the record's
// partition is not marked past it.
func Fatal(err error) error {
	if err == nil {
		err = errors.New("fatal handler error")
	}
	return &fatalError{err: err}
}

// IsPermanent reports whether err is (or wraps) a Permanent error, and its reason.
func IsPermanent(err error) (reason string, ok bool) {
	var pe *permanentError
	if errors.As(err, &pe) {
		return pe.reason, true
	}
	return "", false
}

// IsFatal reports whether err is (or wraps) a Fatal error.
func IsFatal(err error) bool {
	var fe *fatalError
	return errors.As(err, &fe)
}

// Error classes, as the handler_errors_total metric labels them.
const (
	classTransient = "transient"
	classPermanent = "permanent"
	classFatal     = "fatal"
)

// splitHandlerError returns how many records are done and the error that classifies the next.
func splitHandlerError(err error, n int) (done int, cause error) {
	var re *RecordError
	if errors.As(err, &re) {
		done, cause = re.Index, re.Err
		if cause == nil {
			cause = err
		}
	} else {
		cause = err
	}
	return min(max(done, 0), n), cause
}

func classify(err error) string {
	switch {
	case IsFatal(err):
		return classFatal
	case isPermanent(err):
		return classPermanent
	}
	return classTransient
}

func isPermanent(err error) bool { _, ok := IsPermanent(err); return ok }
