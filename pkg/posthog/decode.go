package posthog

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// MaxPayloadSize bounds what a compressed or encoded raw message may inflate to in Decode.
const MaxPayloadSize = 20 << 20

// Decode reads one raw-topic message in any shape PostHog events come in (see Shape), detected per
// message, and returns its events with their time resolved. now is the time the message is processed:
// it stands in for the server receive time where the message carries none (raw capture bodies, old
// capture output without `now`).
//
// A message is decoded all or nothing: when err != nil no events are returned, and err wraps
// ErrMalformed, ErrUnknownShape, ErrInvalidEvent or ErrTooLarge. Values that are not JSON are unwrapped
// first, as a capture body would be (gzip, base64, form `data=`).
//
// Decode reads only what is needed, and each part once where it can: the pass that checks the top
// level also unescapes capture output's `data` string and a row's string-encoded properties, and
// indexes properties objects and a CDP body's event in place; the events of a capture request are
// read in place in their array. It indexes the properties without decoding their values (Properties
// decodes a value when it is asked for) and parses the elements chain; it never builds the message
// as a whole. The events never point into value: Decode works on its own copy. A Decoder does the
// same work without allocating its buffers anew for every message.
func Decode(value []byte, now time.Time) ([]Event, error) {
	var d Decoder
	return d.decode(value, now, nil)
}

// Decoder decodes raw messages as Decode does, reusing its memory from one message to the next:
// the events Decode returns, and the Properties they hold, are valid until the next call of Decode
// on the same Decoder (their strings stay valid for good). A Decoder is not safe for concurrent use;
// the zero value is ready to use.
type Decoder struct {
	s      scratch
	events []Event
	used   int // events the last message filled in
}

// Decode decodes value as the package-level Decode does; see Decoder for how long the result is
// valid.
func (d *Decoder) Decode(value []byte, now time.Time) ([]Event, error) {
	d.s.reset()
	if d.s.texts == nil {
		d.s.texts = new([textSlots]string)
	}
	clear(d.events[:d.used]) // let go of what the last message's events held
	events, err := d.decode(value, now, d.events[:0])
	switch {
	case err != nil:
		d.used = cap(d.events) // a failed decode may have filled in any of them
	case cap(events) > cap(d.events):
		d.events, d.used = events[:0], len(events)
	default:
		d.used = len(events)
	}
	return events, err
}

func (d *Decoder) decode(value []byte, now time.Time, events []Event) ([]Event, error) {
	s := &d.s
	b := jsonscan.TrimSpace(value)
	if len(b) == 0 {
		return nil, malformed("empty message", nil)
	}
	if b[0] != '{' && b[0] != '[' {
		unwrapped, err := UnwrapBody(value, "", MaxPayloadSize)
		if err != nil {
			return nil, err
		}
		b = unwrapped
	}
	// the events point into the message: into Decode's copy, never into value
	b = s.copyBytes(b)
	if b[0] == '[' {
		return s.decodeCaptureRequest(b, now, events, nil)
	}
	top := topLevel{s: s, outer: true}
	if err := jsonscan.MembersIn(&s.value, b, top.member); err != nil {
		return nil, malformed("message", err)
	}
	switch {
	case top.batch != nil:
		return s.decodeCaptureRequest(b, now, events, &top)
	case top.dataString != nil && (top.now != nil || (top.token != nil && top.properties == nil)):
		ev, err := s.decodeCaptureOutput(&top, now)
		if err != nil {
			return nil, err
		}
		return append(events, ev), nil
	case jsonscan.KindOf(top.event) == jsonscan.KindObject:
		ev, err := s.decodeCDP(&top, now)
		if err != nil {
			return nil, err
		}
		return append(events, ev), nil
	case jsonscan.KindOf(top.event) == jsonscan.KindString:
		switch {
		case top.teamID != nil || top.personMode != nil:
			return s.decodeRow(&top, now, ShapeClickHouse, events)
		case top.personProperties != nil || top.insertedAt != nil || top.personID != nil ||
			jsonscan.KindOf(top.properties) == jsonscan.KindString:
			return s.decodeRow(&top, now, ShapeBatchExport, events)
		}
		return s.decodeCaptureRequest(b, now, events, &top)
	}
	return nil, fmt.Errorf("%w: an object with none of data, batch, or event", ErrUnknownShape)
}

// topLevel holds the raw values of the top-level keys any shape uses.
type topLevel struct {
	s     *scratch
	outer bool // the message's own top level, not a CDP body's event
	// eventRead: the (last) event member was an object, read into s.cdpEvent; personRead: the
	// person was an object, read, and personProps are its properties
	eventRead, personRead bool
	personProps           []byte
	// head holds, in order, the members a capture request's head is read from (see requestHead),
	// so that a capture request need not be read twice; headFull when there were too many
	head     [8]headMember
	nHead    int
	headFull bool

	dataString                                                                        []byte // `data` decoded (in the arena), when it is a string
	now, sentAt, token, uuid, distinctID, event, timestamp, properties, elementsChain []byte
	teamID, personMode, personProperties, person, batch, insertedAt, personID         []byte
}

func (t *topLevel) member(key []byte, v *jsonscan.Value) error {
	switch string(key) {
	case "data":
		if v.Kind() == jsonscan.KindString {
			// capture output: the event is a JSON string; read it once, unescaping as we go
			s, err := t.s.appendValueString(v)
			t.dataString = s
			return err
		}
	case "properties", "person_properties":
		// rows: index or decode them in this pass
		if err := t.s.readPropertiesAhead(v); err != nil {
			return err
		}
	case "event":
		// a CDP body: read the event in this pass
		if t.outer && v.Kind() == jsonscan.KindObject {
			inner := &t.s.cdpEvent
			*inner = topLevel{s: t.s}
			if err := v.Members(inner.member); err != nil {
				return err
			}
			t.eventRead = true
		} else {
			t.eventRead = false
		}
	case "person":
		if t.outer && v.Kind() == jsonscan.KindObject {
			t.personProps, t.personRead = nil, true
			err := v.Members(func(key []byte, pv *jsonscan.Value) error {
				if string(key) == "properties" {
					if err := t.s.readPropertiesAhead(pv); err != nil {
						return err
					}
					t.personProps, _ = pv.Raw()
				}
				return nil
			})
			if err != nil {
				return err
			}
		} else {
			t.personRead = false
		}
	}
	raw, err := v.Raw()
	if err != nil {
		return err
	}
	switch string(key) {
	case "batch", "api_key", "token", "sent_at", "historical_migration":
		if t.nHead == len(t.head) {
			t.headFull = true
		} else {
			t.head[t.nHead] = headMember{key: key, raw: raw}
			t.nHead++
		}
	}
	switch string(key) {
	case "now":
		t.now = raw
	case "sent_at":
		t.sentAt = raw
	case "token":
		t.token = raw
	case "uuid":
		t.uuid = raw
	case "distinct_id":
		t.distinctID = raw
	case "event":
		t.event = raw
	case "timestamp":
		t.timestamp = raw
	case "properties":
		t.properties = raw
	case "elements_chain":
		t.elementsChain = raw
	case "team_id":
		t.teamID = raw
	case "person_mode":
		t.personMode = raw
	case "person_properties":
		t.personProperties = raw
	case "person":
		t.person = raw
	case "batch":
		t.batch = raw
	case "_inserted_at":
		t.insertedAt = raw
	case "person_id":
		t.personID = raw
	}
	return nil
}

// headMember is one member of a top level read in Decode.
type headMember struct {
	key, raw []byte
}

// decodeCaptureRequest decodes a capture request body in the arena. top is the body's top level as
// Decode read it (its syntax checked), or nil.
func (s *scratch) decodeCaptureRequest(b []byte, now time.Time, events []Event, top *topLevel) ([]Event, error) {
	var req CaptureRequest
	var err error
	if top != nil && !top.headFull && jsonscan.KindOf(b) == jsonscan.KindObject {
		var head requestHead
		for _, m := range top.head[:top.nHead] {
			head.member(m.key, m.raw)
		}
		req, err = s.captureObject(b, &head)
	} else {
		req, err = s.parseCaptureRequest(b)
	}
	if err != nil {
		return nil, err
	}
	events = slices.Grow(events, len(req.Events))
	for i := range req.Events {
		re := &req.Events[i]
		ev := Event{
			UUID:       re.UUID,
			Name:       re.Name,
			DistinctID: re.DistinctID,
			Token:      re.Token,
			Shape:      req.Shape,
		}
		if err := s.fillEvent(&ev, re.props, re.set, re.setOnce, nil); err != nil {
			if len(req.Events) > 1 {
				err = &indexedError{index: i, err: err}
			}
			return nil, err
		}
		if ev.Token == "" {
			ev.Token = req.Token
		}
		if ev.UUID == "" {
			ev.UUID = derivedUUID(ev.Token, re.JSON)
		}
		ev.Timestamp = re.ClientTime(req.SentAt).Resolve(now)
		events = append(events, ev)
	}
	return events, nil
}

func (s *scratch) decodeCaptureOutput(top *topLevel, now time.Time) (Event, error) {
	data := top.dataString
	re, err := s.parseRawEvent(data)
	if err != nil {
		return Event{}, err
	}
	ev := Event{
		UUID:       firstTextOf(top.uuid, re.uuidRaw, re.UUID),
		Name:       firstTextOf(top.event, re.nameRaw, re.Name),
		DistinctID: truncateRunes(firstText(top.distinctID, re.DistinctID), MaxDistinctIDLength),
		Token:      firstTextOf(top.token, re.tokenRaw, re.Token),
		Shape:      ShapeCaptureOutput,
	}
	if err := s.fillEvent(&ev, re.props, re.set, re.setOnce, nil); err != nil {
		return Event{}, err
	}
	if ev.UUID == "" {
		ev.UUID = derivedUUID(ev.Token, data)
	}
	if t, err := timestampOf(top.timestamp); err == nil {
		ev.Timestamp = t
		return ev, nil
	}
	// older capture: resolve from the raw event, the receive time and the request's sent_at
	serverNow := now
	if t, err := timestampOf(top.now); err == nil {
		serverNow = t
	}
	var sentAt time.Time
	if t, err := timestampOf(top.sentAt); err == nil {
		sentAt = t
	}
	ev.Timestamp = re.ClientTime(sentAt).Resolve(serverNow)
	return ev, nil
}

func (s *scratch) decodeCDP(top *topLevel, now time.Time) (Event, error) {
	var inner topLevel
	if top.eventRead {
		inner = s.cdpEvent
	} else {
		inner = topLevel{s: s}
		if err := jsonscan.MembersIn(&s.value, top.event, inner.member); err != nil {
			return Event{}, malformed("event", err)
		}
	}
	ev := Event{
		UUID:       scalarText(inner.uuid),
		Name:       s.repeatedText(inner.event),
		DistinctID: truncateRunes(s.distinctIDText(inner.distinctID), MaxDistinctIDLength),
		Timestamp:  rowTime(inner.timestamp, now),
		Shape:      ShapeCDP,
	}
	if top.personRead {
		if top.personProps != nil {
			inner.personProperties = top.personProps
		}
	} else if jsonscan.KindOf(top.person) == jsonscan.KindObject {
		err := jsonscan.ObjectEach(top.person, func(key, value []byte) error {
			if string(key) == "properties" {
				inner.personProperties = value
			}
			return nil
		})
		if err != nil {
			return Event{}, malformed("person", err)
		}
	}
	if err := s.fillRow(&ev, &inner); err != nil {
		return Event{}, err
	}
	return ev, nil
}

func (s *scratch) decodeRow(top *topLevel, now time.Time, shape Shape, events []Event) ([]Event, error) {
	ev := Event{
		UUID:       scalarText(top.uuid),
		Name:       s.repeatedText(top.event),
		DistinctID: truncateRunes(s.distinctIDText(top.distinctID), MaxDistinctIDLength),
		Timestamp:  rowTime(top.timestamp, now),
		Shape:      shape,
	}
	if err := s.fillRow(&ev, top); err != nil {
		return nil, err
	}
	return append(events, ev), nil
}

// fillRow completes an event of a processed shape (ClickHouse, batch export, CDP).
func (s *scratch) fillRow(ev *Event, row *topLevel) error {
	var chain []byte
	if jsonscan.KindOf(row.elementsChain) == jsonscan.KindString {
		chain = row.elementsChain
	}
	var err error
	if ev.PersonProperties, err = s.addObjects(row.personProperties); err != nil {
		return err
	}
	ev.PersonProperties = s.withKeyLengths(ev.PersonProperties)
	props, err := s.addObjects(row.properties)
	if err != nil {
		return err
	}
	if err := s.fillEvent(ev, props, nil, nil, chain); err != nil {
		return err
	}
	if ev.UUID == "" {
		return invalid("event %q without a uuid", ev.Name)
	}
	return nil
}

// rowTime reads the resolved timestamp of a processed shape; a missing or unreadable one is now.
func rowTime(raw []byte, now time.Time) time.Time {
	if t, err := timestampOf(raw); err == nil {
		return t
	}
	return now.UTC()
}

// fillEvent completes ev from its indexed properties, the top-level $set and $set_once of a raw event
// and the elements_chain column of a row, and checks the result. Everything it is given must be in
// the arena: the event keeps pointing into it.
func (s *scratch) fillEvent(ev *Event, props Properties, set, setOnce, chainColumn []byte) error {
	// $set, $set_once and the chain get fields of their own; the index (and its key lengths, when
	// it has them) is ours to filter in place
	var propSet, propSetOnce, propChain, propElements []byte
	lengths := props.keyLengths
	kept := 0 // members kept, moved down only once one is dropped
	for i := range props.members {
		m := &props.members[i]
		// only the lengths of the four keys need a look (or a key written with escapes)
		if n := m.KeyEnd - m.KeyStart; m.KeyEscaped || n == 4 || n == 9 || n == 15 {
			switch string(m.Key(props.buf)) {
			case "$set":
				propSet = m.Value(props.buf)
				continue
			case "$set_once":
				propSetOnce = m.Value(props.buf)
				continue
			case "$elements_chain":
				propChain = m.Value(props.buf)
				continue
			case "$elements":
				propElements = m.Value(props.buf)
				continue
			}
		}
		if kept != i {
			props.members[kept] = *m
			if lengths != nil {
				lengths[kept] = lengths[i]
			}
		}
		kept++
	}
	if lengths != nil {
		ev.Properties = Properties{buf: props.buf, members: props.members[:kept:kept], keyLengths: lengths[:kept:kept]}
	} else {
		ev.Properties = s.withKeyLengths(Properties{buf: props.buf, members: props.members[:kept:kept]})
	}
	ev.SessionID = s.repeatedText(rawOf(ev.Properties, "$session_id"))
	if ev.DistinctID == "" {
		ev.DistinctID = truncateRunes(s.distinctIDText(rawOf(ev.Properties, "distinct_id")), MaxDistinctIDLength)
	}
	if ev.Token == "" {
		ev.Token = ev.Properties.String("token")
	}
	// properties.$set first, the top-level one after it: the later member wins
	var err error
	if ev.Set, err = s.addObjects(propSet, set); err != nil {
		return err
	}
	if ev.SetOnce, err = s.addObjects(propSetOnce, setOnce); err != nil {
		return err
	}
	chain := s.chainText(chainColumn)
	if chain == "" {
		chain = s.chainText(propChain)
	}
	switch {
	case chain != "":
		ev.Elements = s.elements.parseChain(chain)
	case jsonscan.KindOf(propElements) == jsonscan.KindArray:
		if ev.Elements, err = elementsFromArray(propElements); err != nil {
			return malformed("$elements", err)
		}
	}
	if ev.Name == "" {
		return invalid("event without a name")
	}
	if ev.DistinctID == "" {
		return invalid("event %q without a distinct id", ev.Name)
	}
	return nil
}

// addObjects indexes the members of each raw object (or string holding one), in order, as one
// Properties.
func (s *scratch) addObjects(raws ...[]byte) (Properties, error) {
	var p Properties
	for _, raw := range raws {
		if raw == nil {
			continue
		}
		obj, err := s.objectBytes(raw)
		if err != nil {
			return Properties{}, err
		}
		if obj == nil {
			continue
		}
		start := len(s.members)
		buf, err := s.indexObject(obj)
		if err != nil {
			return Properties{}, malformed("person property operation", err)
		}
		p = s.extend(p, start, buf)
	}
	return p, nil
}

// firstTextOf is firstText where fallback is the text of fallbackRaw: when raw is the same JSON
// (capture output repeats the event's uuid, name and token outside `data`), its text is fallback and
// is not made again.
func firstTextOf(raw, fallbackRaw []byte, fallback string) string {
	if fallback != "" && len(raw) > 0 && bytes.Equal(jsonscan.TrimSpace(raw), jsonscan.TrimSpace(fallbackRaw)) {
		return fallback
	}
	return firstText(raw, fallback)
}

// firstText returns the first raw value that is non-empty text, else fallback.
func firstText(raw []byte, fallback string) string {
	if s := scalarText(raw); s != "" {
		return s
	}
	return fallback
}
