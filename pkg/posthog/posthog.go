// Package posthog owns reading PostHog events in every shape they reach Threadline: capture output
// (events_plugin_ingestion, `data` as a JSON string), processed ClickHouse rows (clickhouse_events_json),
// CDP destination bodies ({event, person}), batch-export rows, and raw capture request bodies (a single
// event, an array, or a {batch} object, plain, gzip, base64, form or lz-string encoded). It resolves event
// time by PostHog's rules and parses autocapture's elements chain.
//
// The decode path reads only what Threadline needs and builds the rest lazily where it can; see Decode.
// A Decoder reuses its memory from message to message, which is how ingest decodes.
package posthog

import (
	"errors"
	"fmt"
	"time"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// Shape names the form a raw message came in. It is carried on every Event (for metrics and the
// dead-letter reason) and never changes what the event means.
type Shape string

// Shapes Decode recognises.
const (
	// ShapeCaptureOutput is PostHog capture's Kafka message (events_plugin_ingestion) and what
	// Threadline's own capture endpoint produces: the event is the JSON string in `data`.
	ShapeCaptureOutput Shape = "events_plugin_ingestion"
	// ShapeClickHouse is a processed clickhouse_events_json row: `properties` and `person_properties`
	// as JSON strings, an `elements_chain` column, ClickHouse timestamps.
	ShapeClickHouse Shape = "clickhouse_events_json"
	// ShapeCDP is a CDP destination body (HTTP webhook, Kinesis): {"event": {...}, "person": {...}}.
	ShapeCDP Shape = "cdp_destination"
	// ShapeBatchExport is a batch-export (JSONLines) row: person_properties and _inserted_at beside
	// the event.
	ShapeBatchExport Shape = "batch_export"
	// ShapeCaptureEvent is a capture request body holding a single event object.
	ShapeCaptureEvent Shape = "capture_event"
	// ShapeCaptureArray is a capture request body holding an array of events (posthog-js before 1.407.3).
	ShapeCaptureArray Shape = "capture_array"
	// ShapeCaptureBatch is a capture request body {"api_key", "batch": [...], "sent_at"} (server SDKs,
	// posthog-js since 1.407.3).
	ShapeCaptureBatch Shape = "capture_batch"
)

// Errors. Every error Decode and its helpers return wraps exactly one of these, so that a caller can
// name a dead-letter reason with errors.Is.
var (
	// ErrMalformed: the bytes are not JSON (or not a JSON encoding PostHog uses) at some layer.
	ErrMalformed = errors.New("posthog: malformed message")
	// ErrUnknownShape: valid JSON, but none of the shapes PostHog events come in.
	ErrUnknownShape = errors.New("posthog: unknown message shape")
	// ErrInvalidEvent: the shape is known but an event lacks what every event must have (a name, a
	// distinct id) or has a field of the wrong type.
	ErrInvalidEvent = errors.New("posthog: invalid event")
	// ErrTooLarge: a compressed or encoded payload inflates beyond the allowed size.
	ErrTooLarge = errors.New("posthog: payload too large")
	// ErrNoToken: a capture request carries no project token.
	ErrNoToken = errors.New("posthog: no project token")
	// ErrMixedTokens: the events of one capture request carry different project tokens.
	ErrMixedTokens = errors.New("posthog: events carry different project tokens")
)

// MaxDistinctIDLength is where PostHog capture cuts distinct ids (in characters).
const MaxDistinctIDLength = 200

// Event is one PostHog event, decoded from any shape, with its time resolved.
type Event struct {
	UUID       string
	Name       string
	DistinctID string
	Token      string // project token, when the shape carries one
	SessionID  string // properties.$session_id
	Timestamp  time.Time
	// Properties are the event's properties, read lazily, except the ones given their own field:
	// $set and $set_once (in Set and SetOnce), $elements_chain and $elements (in Elements).
	Properties Properties
	// Set and SetOnce are the person property operations: properties.$set/$set_once overridden by
	// the raw event's top-level $set/$set_once.
	Set, SetOnce Properties
	// PersonProperties are the person's properties where the shape carries them (ClickHouse rows, CDP
	// bodies, batch exports).
	PersonProperties Properties
	// Elements is the autocapture element chain, target first, from the elements_chain column,
	// properties.$elements_chain, or the legacy properties.$elements array.
	Elements []Element
	Shape    Shape
}

// Prop returns the property key as text: a string as it is, a number or boolean as written, anything
// else (absent, null, objects, arrays) as "".
func (e *Event) Prop(key string) string { return e.Properties.String(key) }

// AnonDistinctID returns properties.$anon_distinct_id: the anonymous id an $identify replaces.
func (e *Event) AnonDistinctID() string { return e.Prop("$anon_distinct_id") }

// UserID returns properties.$user_id, registered by identify().
func (e *Event) UserID() string { return e.Prop("$user_id") }

// Exception returns what an $exception event says failed: the type and the message (value) of
// the first entry of properties.$exception_list, else $exception_type and $exception_message,
// and for the type else the first of $exception_types. Each is "" when absent or not a string.
// The list is read as Properties.Get would read it, but only as far as its first entry's type and
// value: its stack traces are not decoded.
func (e *Event) Exception() (typ, msg string) {
	if raw, ok := e.Properties.Raw("$exception_list"); ok {
		typ, msg = firstException(raw)
	}
	if typ == "" {
		typ = e.Prop("$exception_type")
	}
	if msg == "" {
		msg = e.Prop("$exception_message")
	}
	if typ == "" {
		if v, ok := e.Properties.Get("$exception_types"); ok {
			if list, ok := v.([]any); ok && len(list) > 0 {
				typ, _ = list[0].(string)
			}
		}
	}
	return typ, msg
}

// errFirstOnly ends a walk of an array after its first element.
var errFirstOnly = errors.New("first element read")

// firstException returns the type and value of the first entry of an exception list, raw JSON
// whose syntax is checked, when they are strings: what decoding the list with Get would give,
// which fails for the whole list when a number anywhere in it is out of range.
func firstException(raw []byte) (typ, msg string) {
	if jsonscan.KindOf(raw) != jsonscan.KindArray || !jsonscan.NumbersInRange(raw) {
		return "", ""
	}
	_ = jsonscan.Elements(raw, func(v *jsonscan.Value) error {
		if v.Kind() != jsonscan.KindObject {
			return errFirstOnly
		}
		_ = v.Members(func(key []byte, mv *jsonscan.Value) error {
			// a repeated key: the last one counts, as in a decoded object
			switch string(key) {
			case "type":
				typ = stringValue(mv)
			case "value":
				msg = stringValue(mv)
			}
			return nil
		})
		return errFirstOnly
	})
	return typ, msg
}

// stringValue returns the value v when it is a string, else "".
func stringValue(v *jsonscan.Value) string {
	if v.Kind() != jsonscan.KindString {
		return ""
	}
	raw, _ := v.Raw()
	return scalarText(raw)
}

// PersonValue looks key up in $set, then person properties, then $set_once, and returns it as a
// string ("" when absent or not a scalar).
func (e *Event) PersonValue(key string) string {
	for _, p := range []*Properties{&e.Set, &e.PersonProperties, &e.SetOnce} {
		if s := p.String(key); s != "" {
			return s
		}
	}
	return ""
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

func malformed(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}
