package posthog

import (
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// CaptureRequest is a decoded capture request body (after UnwrapBody): one event, an array of events,
// or a {batch} object.
type CaptureRequest struct {
	Shape Shape // ShapeCaptureEvent, ShapeCaptureArray or ShapeCaptureBatch
	// Token is the request's project token: the batch's api_key/token, else the token all its events
	// carry. ParseCaptureRequest fails with ErrMixedTokens when events disagree and the batch names
	// none; it leaves Token "" when there is none at all (the caller decides: capture answers 401).
	Token string
	// SentAt is the batch's sent_at; zero when absent (then the request's query may give one).
	SentAt              time.Time
	HistoricalMigration bool
	Events              []RawEvent
}

// RawEvent is one event of a capture request as the SDK sent it, with the fields ingestion reads.
type RawEvent struct {
	// JSON is the event object exactly as received.
	JSON       []byte
	UUID       string // "" when the SDK sent none
	Name       string
	DistinctID string // top-level distinct_id or $distinct_id, else properties.distinct_id; ≤200 characters
	Token      string // the event's own token|$token|api_key, else properties.token
	// Timestamp is the raw timestamp text ("" when absent); Offset/HasOffset the offset in ms.
	Timestamp    string
	Offset       time.Duration
	HasOffset    bool
	IgnoreSentAt bool // properties.$ignore_sent_at
	// Unknown reports top-level keys other than those capture keeps (token, $token, api_key,
	// distinct_id, $distinct_id, uuid, event, properties, timestamp, offset, $set, $set_once).
	Unknown bool

	props   Properties // the properties, indexed
	set     []byte     // raw top-level $set
	setOnce []byte     // raw top-level $set_once
	// the raw JSON UUID, Name and Token were read from (nil when Token came from the properties)
	uuidRaw, nameRaw, tokenRaw []byte
}

// ClientTime returns what the event says about its time, with the request's sentAt.
func (r *RawEvent) ClientTime(sentAt time.Time) ClientTime {
	ct := ClientTime{Offset: r.Offset, HasOffset: r.HasOffset, SentAt: sentAt, IgnoreSentAt: r.IgnoreSentAt}
	if r.Timestamp != "" {
		if t, err := ParseTimestamp(r.Timestamp); err == nil {
			ct.Timestamp = t
		}
	}
	return ct
}

// CaptureJSON returns the event as capture writes it into `data`: the JSON as received, without the
// top-level keys capture does not keep (legacy SDK fields such as type, library, library_version).
func (r *RawEvent) CaptureJSON() []byte {
	if !r.Unknown {
		return r.JSON
	}
	out := make([]byte, 0, len(r.JSON))
	out = append(out, '{')
	_ = jsonscan.ObjectEach(r.JSON, func(key, value []byte) error {
		if !keptByCapture(string(key)) {
			return nil
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, string(key))
		out = append(out, ':')
		out = append(out, value...)
		return nil
	})
	return append(out, '}')
}

// keptByCapture reports whether key is one of the top-level event keys capture keeps in `data`.
func keptByCapture(key string) bool {
	switch key {
	case "token", "$token", "api_key", "distinct_id", "$distinct_id", "uuid", "event", "properties",
		"timestamp", "offset", "$set", "$set_once":
		return true
	}
	return false
}

// ParseCaptureRequest reads a capture request body that UnwrapBody has reduced to JSON. Every event
// must have a name and a distinct id (ErrInvalidEvent); tokens are resolved as capture does.
func ParseCaptureRequest(body []byte) (CaptureRequest, error) {
	req, err := new(scratch).parseCaptureRequest(body)
	if err != nil {
		return CaptureRequest{}, err
	}
	for i := range req.Events {
		if err := req.Events[i].validate(); err != nil {
			if len(req.Events) > 1 {
				err = &indexedError{index: i, err: err}
			}
			return CaptureRequest{}, err
		}
	}
	if req.Token == "" {
		for _, ev := range req.Events {
			switch {
			case ev.Token == "":
			case req.Token == "":
				req.Token = ev.Token
			case ev.Token != req.Token:
				return CaptureRequest{}, ErrMixedTokens
			}
		}
	}
	return req, nil
}

// parseCaptureRequest reads the request's shape and events without judging them.
func (s *scratch) parseCaptureRequest(body []byte) (CaptureRequest, error) {
	var req CaptureRequest
	switch jsonscan.KindOf(body) {
	case jsonscan.KindArray:
		req.Shape = ShapeCaptureArray
		if err := s.addEvents(&req, body); err != nil {
			return CaptureRequest{}, err
		}
	case jsonscan.KindObject:
		var head requestHead
		err := jsonscan.ObjectEach(body, func(key, value []byte) error {
			head.member(key, value)
			return nil
		})
		if err != nil {
			return CaptureRequest{}, malformed("capture request", err)
		}
		return s.captureObject(body, &head)
	default:
		return CaptureRequest{}, malformed("capture request is neither an object nor an array", nil)
	}
	if len(req.Events) == 0 {
		return CaptureRequest{}, invalid("capture request without events")
	}
	return req, nil
}

// requestHead is what the top level of a capture request object says besides its events.
type requestHead struct {
	batch      []byte
	isBatch    bool
	token      string
	sentAt     time.Time
	historical bool
}

// member reads one top-level member of a capture request object.
func (h *requestHead) member(key, value []byte) {
	switch string(key) {
	case "batch":
		h.batch, h.isBatch = value, true
	case "api_key", "token":
		if h.token == "" {
			h.token = scalarText(value)
		}
	case "sent_at":
		if t, err := timestampOf(value); err == nil {
			h.sentAt = t
		}
	case "historical_migration":
		h.historical = string(jsonscan.TrimSpace(value)) == "true"
	}
}

// captureObject reads a capture request object whose syntax is checked and whose top level is
// read into head: a single event, or a {batch}.
func (s *scratch) captureObject(body []byte, head *requestHead) (CaptureRequest, error) {
	if !head.isBatch {
		// a single event: the fields of the head were its own
		ev, err := s.parseRawEvent(body)
		if err != nil {
			return CaptureRequest{}, err
		}
		return CaptureRequest{Shape: ShapeCaptureEvent, Events: []RawEvent{ev}}, nil
	}
	req := CaptureRequest{Shape: ShapeCaptureBatch, Token: head.token, SentAt: head.sentAt, HistoricalMigration: head.historical}
	if jsonscan.KindOf(head.batch) != jsonscan.KindArray {
		return CaptureRequest{}, invalid("batch is not an array")
	}
	if err := s.addEvents(&req, head.batch); err != nil {
		return CaptureRequest{}, err
	}
	if len(req.Events) == 0 {
		return CaptureRequest{}, invalid("capture request without events")
	}
	return req, nil
}

func (s *scratch) addEvents(req *CaptureRequest, array []byte) error {
	i := 0
	err := jsonscan.Elements(array, func(v *jsonscan.Value) error {
		ev, syntax, err := s.parseRawEventAt(v)
		if syntax {
			return err
		}
		if err != nil {
			return &indexedError{index: i, err: err}
		}
		req.Events = append(req.Events, ev)
		i++
		return nil
	})
	if ie, ok := err.(*indexedError); ok {
		return ie
	}
	if err != nil {
		return malformed("capture request", err)
	}
	return nil
}

// indexedError names the event of a batch an error is about.
type indexedError struct {
	index int
	err   error
}

func (e *indexedError) Error() string { return "event " + strconv.Itoa(e.index) + ": " + e.err.Error() }
func (e *indexedError) Unwrap() error { return e.err }

// parseRawEvent reads one event object of a capture request (or capture output's `data`) in one
// pass, indexing its properties on the way, without judging it: see validate. The index points into
// b (or into the arena for properties sent as a JSON string). It stops at the first error, which
// is a properties error when the properties are not an object.
func (s *scratch) parseRawEvent(b []byte) (RawEvent, error) {
	if jsonscan.KindOf(b) != jsonscan.KindObject {
		return RawEvent{}, invalid("event is not an object")
	}
	p := rawEventParser{s: s, ev: RawEvent{JSON: b}}
	err := jsonscan.MembersIn(&s.value, b, p.member)
	if p.propsErr != nil {
		return RawEvent{}, p.propsErr
	}
	if err != nil {
		return RawEvent{}, malformed("event", err)
	}
	return p.finish(), nil
}

// parseRawEventAt is parseRawEvent for an element of an array, read in place. The element's syntax
// is checked first: a syntax error is returned as it is (syntax is true), before what the event
// says is judged.
func (s *scratch) parseRawEventAt(v *jsonscan.Value) (ev RawEvent, syntax bool, err error) {
	if v.Kind() != jsonscan.KindObject {
		if _, err := v.Raw(); err != nil {
			return RawEvent{}, true, err
		}
		return RawEvent{}, false, invalid("event is not an object")
	}
	p := rawEventParser{s: s, deferProps: true}
	if err := v.Members(p.member); err != nil {
		return RawEvent{}, true, err
	}
	if p.propsErr != nil {
		return RawEvent{}, false, p.propsErr
	}
	p.ev.JSON, _ = v.Raw() // read already: no second pass
	return p.finish(), false, nil
}

// rawEventParser reads the members of one raw event.
type rawEventParser struct {
	s          *scratch
	ev         RawEvent
	distinctID string
	propsErr   error // the first error reading the properties
	deferProps bool  // keep reading after propsErr, so that a later syntax error wins
}

func (p *rawEventParser) member(key []byte, v *jsonscan.Value) error {
	ev := &p.ev
	if string(key) == "properties" {
		if p.propsErr != nil {
			return nil // skipped: the event is refused already
		}
		start := len(p.s.members)
		var buf []byte
		buf, p.propsErr = p.s.indexValue(v)
		ev.props = p.s.extend(ev.props, start, buf)
		if p.deferProps {
			return nil // a syntax error is in v, and the scan stops at it
		}
		return p.propsErr
	}
	value, err := v.Raw()
	if err != nil {
		return err
	}
	switch string(key) {
	case "uuid":
		ev.UUID, ev.uuidRaw = scalarText(value), value
	case "event":
		ev.Name, ev.nameRaw = p.s.repeatedText(value), value
	case "distinct_id", "$distinct_id":
		if p.distinctID == "" {
			p.distinctID = p.s.distinctIDText(value)
		}
	case "token", "$token", "api_key":
		if ev.Token == "" {
			ev.Token, ev.tokenRaw = p.s.repeatedText(value), value
		}
	case "timestamp":
		ev.Timestamp = scalarText(value)
	case "offset":
		if jsonscan.KindOf(value) == jsonscan.KindNumber {
			if f, err := jsonscan.Float(value); err == nil && f < 1e15 && f > -1e15 {
				ev.Offset, ev.HasOffset = time.Duration(f*float64(time.Millisecond)), true
			}
		}
	case "$set":
		ev.set = value
	case "$set_once":
		ev.setOnce = value
	default:
		ev.Unknown = true
	}
	return nil
}

// finish completes the event from its properties once every member is read.
func (p *rawEventParser) finish() RawEvent {
	ev := p.ev
	ev.props = p.s.withKeyLengths(ev.props)
	distinctID := p.distinctID
	if distinctID == "" {
		distinctID = p.s.distinctIDText(rawOf(ev.props, "distinct_id"))
	}
	if ev.Token == "" {
		ev.tokenRaw = rawOf(ev.props, "token")
		ev.Token = p.s.repeatedText(ev.tokenRaw)
	}
	ev.IgnoreSentAt = ev.props.String("$ignore_sent_at") == "true"
	ev.DistinctID = truncateRunes(distinctID, MaxDistinctIDLength)
	return ev
}

func rawOf(p Properties, key string) []byte {
	raw, _ := p.Raw(key)
	return raw
}

// validate checks what capture requires of every event: a name and a distinct id.
func (r *RawEvent) validate() error {
	if strings.TrimSpace(r.Name) == "" {
		return invalid("event without a name")
	}
	if r.DistinctID == "" {
		return invalid("event %q without a distinct id", r.Name)
	}
	return nil
}

// distinctIDText stringifies a distinct id as capture does: strings as they are, other scalars as
// written; null and containers are "missing".
func (s *scratch) distinctIDText(raw []byte) string {
	return strings.TrimSpace(s.repeatedText(raw))
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// objectBytes returns the JSON object a properties-like value holds: the value itself when it is an
// object, the decoded string when it is a JSON string holding an object (ClickHouse rows), nil for
// null or "". A decoded string is in the arena.
func (s *scratch) objectBytes(raw []byte) ([]byte, error) {
	switch jsonscan.KindOf(raw) {
	case jsonscan.KindObject:
		return raw, nil
	case jsonscan.KindNull:
		return nil, nil
	case jsonscan.KindString:
		var b []byte
		if r := s.readAhead(raw); r != nil && r.decoded != nil {
			b = r.decoded
		} else {
			var err error
			if b, err = s.appendString(raw); err != nil {
				return nil, malformed("string-encoded object", err)
			}
		}
		b = jsonscan.TrimSpace(b)
		if len(b) == 0 {
			return nil, nil
		}
		if jsonscan.KindOf(b) != jsonscan.KindObject {
			return nil, invalid("string-encoded value is not an object")
		}
		return b, nil
	}
	return nil, invalid("expected an object")
}
