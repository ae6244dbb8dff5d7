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
