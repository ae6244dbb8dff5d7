package posthog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
// Decode reads only what is needed: it walks the message once (the event inside capture output's
// `data` string once more, after unescaping it), indexes the properties without decoding their values
// (Properties decodes a value when it is asked for), and parses the elements chain; it never builds
// the message as a whole.
func Decode(value []byte, now time.Time) ([]Event, error) {
	b := jsonscan.TrimSpace(value)
	if len(b) == 0 {
		return nil, malformed("empty message", nil)
	}
	owned := false // whether b is Decode's own buffer, which events may point into
	if b[0] != '{' && b[0] != '[' {
		unwrapped, err := UnwrapBody(value, "", MaxPayloadSize)
		if err != nil {
			return nil, err
		}
		b, owned = unwrapped, true
	}
	if b[0] == '[' {
		return decodeCaptureRequest(b, now, owned)
	}
	top := topLevel{size: len(b)}
	if err := jsonscan.Members(b, top.member); err != nil {
		return nil, malformed("message", err)
	}
	switch {
	case top.batch != nil:
		return decodeCaptureRequest(b, now, owned)
	case top.dataString != nil && (top.now != nil || (top.token != nil && top.properties == nil)):
		ev, err := decodeCaptureOutput(&top, now)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	case jsonscan.KindOf(top.event) == jsonscan.KindObject:
		ev, err := decodeCDP(&top, now)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	case jsonscan.KindOf(top.event) == jsonscan.KindString:
		switch {
		case top.teamID != nil || top.personMode != nil:
			return decodeRow(&top, now, ShapeClickHouse)
		case top.personProperties != nil || top.insertedAt != nil || top.personID != nil ||
			jsonscan.KindOf(top.properties) == jsonscan.KindString:
			return decodeRow(&top, now, ShapeBatchExport)
		}
		return decodeCaptureRequest(b, now, owned)
	}
	return nil, fmt.Errorf("%w: an object with none of data, batch, or event", ErrUnknownShape)
}

// topLevel holds the raw values of the top-level keys any shape uses.
type topLevel struct {
	size                                                                              int    // of the message, to size buffers
	dataString                                                                        []byte // `data` decoded, when it is a string
	now, sentAt, token, uuid, distinctID, event, timestamp, properties, elementsChain []byte
	teamID, personMode, personProperties, person, batch, insertedAt, personID         []byte
}

func (t *topLevel) member(key []byte, v *jsonscan.Value) error {
	if string(key) == "data" && v.Kind() == jsonscan.KindString {
		// capture output: the event is a JSON string; read it once, unescaping as we go
		s, err := v.AppendString(make([]byte, 0, t.size))
		t.dataString = s
		return err
	}
	raw, err := v.Raw()
	if err != nil {
		return err
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

func decodeCaptureRequest(b []byte, now time.Time, owned bool) ([]Event, error) {
	if !owned {
		b = bytes.Clone(b) // the events' properties point into it
	}
	req, err := parseCaptureRequest(b)
	if err != nil {
		return nil, err
	}
	events := make([]Event, 0, len(req.Events))
	for i := range req.Events {
		re := &req.Events[i]
		ev := Event{
			UUID:       re.UUID,
			Name:       re.Name,
			DistinctID: re.DistinctID,
			Token:      re.Token,
			Shape:      req.Shape,
		}
		if err := fillEvent(&ev, re.props, re.set, re.setOnce, nil); err != nil {
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

func decodeCaptureOutput(top *topLevel, now time.Time) (Event, error) {
	data := top.dataString
	re, err := parseRawEvent(data)
	if err != nil {
		return Event{}, err
	}
	ev := Event{
		UUID:       firstText(top.uuid, re.UUID),
		Name:       firstText(top.event, re.Name),
		DistinctID: truncateRunes(firstText(top.distinctID, re.DistinctID), MaxDistinctIDLength),
		Token:      firstText(top.token, re.Token),
		Shape:      ShapeCaptureOutput,
	}
	if err := fillEvent(&ev, re.props, re.set, re.setOnce, nil); err != nil {
		return Event{}, err
	}
	if ev.UUID == "" {
		ev.UUID = derivedUUID(ev.Token, data)
	}
	if t, err := ParseTimestamp(scalarText(top.timestamp)); err == nil {
		ev.Timestamp = t
		return ev, nil
	}
	// older capture: resolve from the raw event, the receive time and the request's sent_at
	serverNow := now
	if t, err := ParseTimestamp(scalarText(top.now)); err == nil {
		serverNow = t
	}
	var sentAt time.Time
	if t, err := ParseTimestamp(scalarText(top.sentAt)); err == nil {
		sentAt = t
	}
	ev.Timestamp = re.ClientTime(sentAt).Resolve(serverNow)
	return ev, nil
}

func decodeCDP(top *topLevel, now time.Time) (Event, error) {
	inner := topLevel{size: len(top.event)}
	if err := jsonscan.Members(top.event, inner.member); err != nil {
		return Event{}, malformed("event", err)
	}
	ev := Event{
		UUID:       scalarText(inner.uuid),
		Name:       scalarText(inner.event),
		DistinctID: truncateRunes(distinctIDText(inner.distinctID), MaxDistinctIDLength),
		Timestamp:  rowTime(inner.timestamp, now),
		Shape:      ShapeCDP,
	}
	if jsonscan.KindOf(top.person) == jsonscan.KindObject {
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
	if err := fillRow(&ev, &inner); err != nil {
		return Event{}, err
	}
	return ev, nil
}

func decodeRow(top *topLevel, now time.Time, shape Shape) ([]Event, error) {
	ev := Event{
		UUID:       scalarText(top.uuid),
		Name:       scalarText(top.event),
		DistinctID: truncateRunes(distinctIDText(top.distinctID), MaxDistinctIDLength),
		Timestamp:  rowTime(top.timestamp, now),
		Shape:      shape,
	}
	if err := fillRow(&ev, top); err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}

// fillRow completes an event of a processed shape (ClickHouse, batch export, CDP). Its values point
// into the caller's message, so what the event keeps is copied.
func fillRow(ev *Event, row *topLevel) error {
	var chain []byte
	if jsonscan.KindOf(row.elementsChain) == jsonscan.KindString {
		chain = row.elementsChain
	}
	if err := addObjects(&ev.PersonProperties, false, row.personProperties); err != nil {
		return err
	}
	var props Properties
	if err := addObjects(&props, false, row.properties); err != nil {
		return err
	}
	if err := fillEvent(ev, props, nil, nil, chain); err != nil {
		return err
	}
	if ev.UUID == "" {
		return invalid("event %q without a uuid", ev.Name)
	}
	return nil
}

// rowTime reads the resolved timestamp of a processed shape; a missing or unreadable one is now.
func rowTime(raw []byte, now time.Time) time.Time {
	if t, err := ParseTimestamp(scalarText(raw)); err == nil {
		return t
	}
	return now.UTC()
}

// fillEvent completes ev from its indexed properties, the top-level $set and $set_once of a raw event
// and the elements_chain column of a row, and checks the result. Everything it is given must belong to
// Decode: the event keeps pointing into it.
func fillEvent(ev *Event, props Properties, set, setOnce, chainColumn []byte) error {
	// $set, $set_once and the chain get fields of their own; the index is ours to filter in place
	var propSet, propSetOnce, propChain, propElements []byte
	kept := props.members[:0]
	for _, m := range props.members {
		switch string(m.key) {
		case "$set":
			propSet = m.value
		case "$set_once":
			propSetOnce = m.value
		case "$elements_chain":
			propChain = m.value
		case "$elements":
			propElements = m.value
		default:
			kept = append(kept, m)
		}
	}
	ev.Properties = Properties{members: kept}
	ev.SessionID = ev.Properties.String("$session_id")
	if ev.DistinctID == "" {
		ev.DistinctID = truncateRunes(distinctIDText(rawOf(ev.Properties, "distinct_id")), MaxDistinctIDLength)
	}
	if ev.Token == "" {
		ev.Token = ev.Properties.String("token")
	}
	// properties.$set first, the top-level one after it: the later member wins
	if err := addObjects(&ev.Set, true, propSet, set); err != nil {
		return err
	}
	if err := addObjects(&ev.SetOnce, true, propSetOnce, setOnce); err != nil {
		return err
	}
	chain := scalarText(chainColumn)
	if chain == "" {
		chain = scalarText(propChain)
	}
	var err error
	switch {
	case chain != "":
		ev.Elements = ParseElementsChain(chain)
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

// ownedObject returns the object raw holds (see objectBytes), copied unless owned or already new.
func ownedObject(raw []byte, owned bool) ([]byte, error) {
	if raw == nil {
		return nil, nil
	}
	obj, err := objectBytes(raw)
	if err != nil || obj == nil {
		return nil, err
	}
	if !owned && jsonscan.KindOf(raw) == jsonscan.KindObject {
		obj = bytes.Clone(obj)
	}
	return obj, nil
}

// addObjects indexes the members of each raw object (or string holding one) into p, in order.
func addObjects(p *Properties, owned bool, raws ...[]byte) error {
	for _, raw := range raws {
		obj, err := ownedObject(raw, owned)
		if err != nil {
			return err
		}
		if obj == nil {
			continue
		}
		if err := indexObject(obj, p); err != nil {
			return malformed("person property operation", err)
		}
	}
	return nil
}

// firstText returns the first raw value that is non-empty text, else fallback.
func firstText(raw []byte, fallback string) string {
	if s := scalarText(raw); s != "" {
		return s
	}
	return fallback
}

// derivedUUID names an event that came without a uuid by its content, so that replaying the same
// message yields the same id (RFC 9562 version 8 layout, from SHA-256).
func derivedUUID(token string, event []byte) string {
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write(event)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	sum[6] = sum[6]&0x0f | 0x80
	sum[8] = sum[8]&0x3f | 0x80
	var buf [36]byte
	hex.Encode(buf[0:8], sum[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], sum[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], sum[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], sum[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], sum[10:16])
	return string(buf[:])
}
