package posthog

import (
	"encoding/binary"
	"iter"
	"math/bits"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// Properties is a JSON object read lazily: Decode only indexes its members (checking their syntax),
// and a value is decoded when it is asked for. A posthog-js event carries about fifty properties of
// which Threadline reads a handful; decoding them all would be most of the cost of decoding an event.
//
// When a key occurs more than once the last occurrence wins, as in encoding/json; that is also how the
// top-level $set of a raw event overrides properties.$set. The zero value is an empty object.
type Properties struct {
	// buf holds the members' bytes; members are offsets into it, so that an index holds no
	// pointers for the garbage collector to follow or to guard with write barriers
	buf     []byte
	members []member
	// keyLengths, when set, holds the length of each member's key, a byte each (255 for any
	// longer), so that a lookup compares eight lengths at once and reads only the keys of the
	// right length; nil for few members or a key with escapes (its length as written is not its
	// length)
	keyLengths []byte
}

// member is one indexed member: offsets of its key (escaped as written) and of its raw JSON value,
// syntax already checked, into the buf of its Properties.
type member = jsonscan.Member

// scratch is the memory a decode works in: an arena for the bytes events point into (unescaped
// strings, copies of the caller's message) and the backing store of every Properties index. A
// Decoder keeps one and reuses it from message to message; the package-level functions use a new
// one each time. What a decode hands out is cut to its length (three-index slices), so nothing
// appended later overwrites it.
type scratch struct {
	arena      []byte
	members    []member
	keyLengths []byte // the backing store of every Properties' keyLengths
	elements   elementStore
	// read holds the objects read ahead, while the top level was checked, so that no one reads
	// them again
	read []readObject
	// cdpEvent is the event of a CDP body, read ahead
	cdpEvent topLevel
	// value is the Value of the members of the objects read one after the other, never one
	// inside another: the message, a capture event, a CDP body's event read late
	value jsonscan.Value
	// texts is kept from message to message by a Decoder (nil otherwise): see repeatedText
	texts *[textSlots]string
	// lastChain is the elements chain read last, kept from message to message: see chainText
	lastChain string
}

// textSlots is the size of the table repeatedText remembers texts in.
const textSlots = 256

// repeatedText is scalarText for the values that repeat from event to event (event names, distinct
// ids, session ids, tokens): a short string without escapes is made once and remembered while it
// repeats, in a table with a slot per hash of its content.
func (s *scratch) repeatedText(raw []byte) string {
	raw = jsonscan.TrimSpace(raw)
	n := len(raw)
	if s.texts == nil || n < 2 || n > 130 || raw[0] != '"' {
		return scalarText(raw)
	}
	content := raw[1 : n-1]
	slot := &s.texts[textHash(content)%textSlots]
	if *slot == string(content) {
		return *slot // the same bytes without escapes: the same text
	}
	t := scalarText(raw)
	if t == string(content) { // no escapes: the text is the bytes
		*slot = t
	}
	return t
}

// textHash hashes b from its length and its first and last eight bytes: enough to tell apart the
// ids and names repeatedText sees.
func textHash(b []byte) uint64 {
	h := uint64(len(b))
	if len(b) >= 8 {
		h ^= binary.LittleEndian.Uint64(b) * 0x9e3779b97f4a7c15
		h ^= binary.LittleEndian.Uint64(b[len(b)-8:]) * 0xc2b2ae3d27d4eb4f
	} else {
		for _, c := range b {
			h = h*31 + uint64(c)
		}
		h *= 0x9e3779b97f4a7c15
	}
	return h >> 56
}

// readObject is a properties-like value read ahead: the string it holds decoded (decoded), or the
// object indexed (members[start:end]).
type readObject struct {
	raw        []byte
	decoded    []byte
	buf        []byte // what members[start:end] are offsets into
	start, end int
	indexed    bool
}

// reset makes the scratch reusable: whatever it handed out before must no longer be in use.
func (s *scratch) reset() {
	s.arena = s.arena[:0]
	s.members = s.members[:0]
	s.keyLengths = s.keyLengths[:0]
	s.elements.reset()
	clear(s.read)
	s.read = s.read[:0]
	if s.cdpEvent.s != nil { // a CDP body's event was read: let go of what it holds
		s.cdpEvent = topLevel{}
	}
}

// readAhead returns what was read ahead of raw (the same bytes, not equal ones), or nil.
func (s *scratch) readAhead(raw []byte) *readObject {
	if len(raw) == 0 {
		return nil
	}
	for i := range s.read {
		r := &s.read[i]
		if len(r.raw) == len(raw) && &r.raw[0] == &raw[0] {
			return r
		}
	}
	return nil
}

// readAheadAt returns what was read ahead of the value v starts, or nil.
func (s *scratch) readAheadAt(v *jsonscan.Value) *readObject {
	b := v.Bytes()
	if len(b) == 0 {
		return nil
	}
	for i := range s.read {
		if r := &s.read[i]; &r.raw[0] == &b[0] {
			return r
		}
	}
	return nil
}

// readPropertiesAhead reads a properties-like value at the top level in place: an object is
// indexed, a string decoded, in the pass that checks them. It returns only syntax errors, as
// v.Raw would.
func (s *scratch) readPropertiesAhead(v *jsonscan.Value) error {
	r := readObject{start: len(s.members)}
	var err error
	switch v.Kind() {
	case jsonscan.KindObject:
		r.buf, s.members, err = v.AppendMembers(s.members)
		r.end, r.indexed = len(s.members), true
	case jsonscan.KindString:
		r.decoded, err = s.appendValueString(v)
	default:
		_, err = v.Raw()
		return err
	}
	if err != nil {
		return err
	}
	r.raw, _ = v.Raw() // read already
	s.read = append(s.read, r)
	return nil
}

// addIndexed appends the members of obj to s.members when obj was indexed ahead, and reports
// whether it was, and the bytes they are offsets into.
func (s *scratch) addIndexed(obj []byte) ([]byte, bool) {
	r := s.readAhead(obj)
	if r == nil || !r.indexed {
		return nil, false
	}
	s.members = append(s.members, s.members[r.start:r.end]...)
	return r.buf, true
}

// copyBytes returns a copy of b in the arena.
func (s *scratch) copyBytes(b []byte) []byte {
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// appendString decodes the JSON string raw into the arena and returns it.
func (s *scratch) appendString(raw []byte) ([]byte, error) {
	start := len(s.arena)
	var err error
	s.arena, err = jsonscan.AppendString(s.arena, raw)
	return s.arena[start:len(s.arena):len(s.arena)], err
}

// appendValueString decodes the string value v into the arena (checking and unescaping it in one
// pass) and returns it.
func (s *scratch) appendValueString(v *jsonscan.Value) ([]byte, error) {
	start := len(s.arena)
	var err error
	s.arena, err = v.AppendString(s.arena)
	return s.arena[start:len(s.arena):len(s.arena)], err
}

// chainText is scalarText for an elements chain: a string is decoded through the arena in one
// pass, and only the string itself is allocated, unless it is the chain read last (clicks repeat
// on one element: a rage click, a dead click after the click), whose string is kept.
func (s *scratch) chainText(raw []byte) string {
	if jsonscan.KindOf(raw) != jsonscan.KindString {
		return scalarText(raw)
	}
	start := len(s.arena)
	b, err := s.appendString(raw)
	s.arena = s.arena[:start] // the chain's text is a string of its own
	if err != nil {
		return ""
	}
	if string(b) != s.lastChain {
		s.lastChain = string(b)
	}
	return s.lastChain
}

// properties returns the members indexed since start (len(s.members) before indexing), offsets
// into buf, as Properties.
func (s *scratch) properties(start int, buf []byte) Properties {
	if start == len(s.members) {
		return Properties{}
	}
	return Properties{buf: buf, members: s.members[start:len(s.members):len(s.members)]}
}

// extend returns p with the members indexed since start, offsets into buf, appended: in place when
// p ends where they begin and has the same buf, else in a copy (a key repeated in one object, a
// $set both in the properties and beside them).
func (s *scratch) extend(p Properties, start int, buf []byte) Properties {
	added := s.properties(start, buf)
	switch {
	case len(added.members) == 0:
		return p
	case len(p.members) == 0:
		return added
	case sameBytes(p.buf, buf) && start >= len(p.members) && &s.members[start-len(p.members)] == &p.members[0]:
		return Properties{buf: buf, members: s.members[start-len(p.members) : len(s.members) : len(s.members)]}
	}
	return s.concat(p, added)
}

// sameBytes reports whether a and b are the same bytes in memory, not merely equal ones.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// concat returns the members of ps, in order, as one Properties: the bytes of their keys and values
// copied into the arena, which the offsets are into.
func (s *scratch) concat(ps ...Properties) Properties {
	start := len(s.members)
	for _, p := range ps {
		for _, m := range p.members {
			ks := len(s.arena)
			s.arena = append(s.arena, p.buf[m.KeyStart:m.KeyEnd]...)
			vs := len(s.arena)
			s.arena = append(s.arena, p.buf[m.ValueStart:m.ValueEnd]...)
			s.members = append(s.members, member{
				KeyStart: uint32(ks), KeyEnd: uint32(vs), ValueStart: uint32(vs), ValueEnd: uint32(len(s.arena)),
				KeyEscaped: m.KeyEscaped,
			})
		}
	}
	return s.properties(start, s.arena[:len(s.arena):len(s.arena)])
}

// indexObject indexes the members of a syntactically unchecked JSON object onto s.members and
// returns the bytes their offsets are into: obj, or what obj was read ahead in, which must not
// change while the Properties are in use.
func (s *scratch) indexObject(obj []byte) ([]byte, error) {
	if buf, ok := s.addIndexed(obj); ok {
		return buf, nil
	}
	var err error
	s.members, err = jsonscan.AppendMembers(s.members, obj)
	return obj, err
}

// indexValue indexes onto s.members the members of a value read in place: an object, or a JSON
// string holding one (decoded into the arena), and returns the bytes their offsets are into. null
// indexes nothing; anything else is ErrInvalidEvent.
func (s *scratch) indexValue(v *jsonscan.Value) ([]byte, error) {
	switch v.Kind() {
	case jsonscan.KindObject:
		if r := s.readAheadAt(v); r != nil && r.indexed {
			v.Skip(len(r.raw))
			s.members = append(s.members, s.members[r.start:r.end]...)
			return r.buf, nil
		}
		buf, members, err := v.AppendMembers(s.members)
		s.members = members
		if err != nil {
			return buf, malformed("properties", err)
		}
		return buf, nil
	case jsonscan.KindString:
		raw, err := v.Raw()
		if err != nil {
			return nil, malformed("properties", err)
		}
		obj, err := s.objectBytes(raw)
		if err != nil || obj == nil {
			return nil, err
		}
		buf, err := s.indexObject(obj)
		if err != nil {
			return buf, malformed("properties", err)
		}
		return buf, nil
	case jsonscan.KindNull:
		_, err := v.Raw()
		if err != nil {
			return nil, malformed("properties", err)
		}
		return nil, nil
	}
	if _, err := v.Raw(); err != nil {
		return nil, malformed("properties", err)
	}
	return nil, invalid("properties are not an object")
}

// minKeyLengths is the fewest members for which a Properties keeps its keyLengths.
const minKeyLengths = 16

// withKeyLengths returns p with its keyLengths, made in the scratch, when it has enough members
// for them to pay off.
func (s *scratch) withKeyLengths(p Properties) Properties {
	if len(p.members) < minKeyLengths {
		return p
	}
	start := len(s.keyLengths)
	for i := range p.members {
		m := &p.members[i]
		if m.KeyEscaped {
			s.keyLengths = s.keyLengths[:start]
			return p
		}
		s.keyLengths = append(s.keyLengths, byte(min(m.KeyEnd-m.KeyStart, 255)))
	}
	p.keyLengths = s.keyLengths[start:len(s.keyLengths):len(s.keyLengths)]
	return p
}

// SWAR constants: one in every byte, the low seven bits of every byte, and the high bit of every
// byte.
const (
	lows  = 0x0101010101010101
	low7s = 0x7f7f7f7f7f7f7f7f
	highs = 0x8080808080808080
)

// lookupByLength is lookup through p.keyLengths, for a key shorter than 255 bytes: from the last
// eight lengths back to the first, the members whose key has the length of key, last first.
func (p Properties) lookupByLength(key string) ([]byte, bool) {
	lengths := p.keyLengths
	want := lows * uint64(len(key))
	for end := len(lengths); end > 0; end -= 8 {
		start := end - 8
		var x uint64
		if start >= 0 {
			x = binary.LittleEndian.Uint64(lengths[start:end])
		} else {
			// the first few, after bytes that read as 255, a length key does not have
			word := [8]byte{255, 255, 255, 255, 255, 255, 255, 255}
			copy(word[-start:], lengths[:end])
			x = binary.LittleEndian.Uint64(word[:])
		}
		// the high bit of every byte of x equal to the length of key
		y := x ^ want
		for m := ^((y&low7s + low7s) | y) & highs; m != 0; {
			top := 63 - bits.LeadingZeros64(m)
			m &^= 1 << top
			mb := &p.members[start+top/8]
			if string(p.buf[mb.KeyStart:mb.KeyEnd]) == key {
				return mb.Value(p.buf), true
			}
		}
	}
	return nil, false
}

func (p Properties) lookup(key string) ([]byte, bool) {
	if p.keyLengths != nil && len(key) < 255 {
		return p.lookupByLength(key)
	}
	n := uint32(len(key))
	for i := len(p.members) - 1; i >= 0; i-- {
		m := &p.members[i]
		if m.KeyEscaped {
			if m.KeyIs(p.buf, key) {
				return m.Value(p.buf), true
			}
		} else if m.KeyEnd-m.KeyStart == n && string(p.buf[m.KeyStart:m.KeyEnd]) == key {
			return m.Value(p.buf), true
		}
	}
	return nil, false
}

// Len returns the number of members (a repeated key counts each time).
func (p Properties) Len() int { return len(p.members) }

// Has reports whether key is present (also when its value is null).
func (p Properties) Has(key string) bool {
	_, ok := p.lookup(key)
	return ok
}

// Get decodes the value of key as encoding/json would into an `any`.
func (p Properties) Get(key string) (any, bool) {
	raw, ok := p.lookup(key)
	if !ok {
		return nil, false
	}
	v, err := jsonscan.Any(raw)
	if err != nil {
		return nil, false
	}
	return v, true
}

// String returns the value of key as text: a string as it is, a number or boolean as written in the
// JSON, and "" for anything else (absent, null, objects, arrays).
func (p Properties) String(key string) string {
	raw, ok := p.lookup(key)
	if !ok {
		return ""
	}
	return scalarText(raw)
}

// TextBytes returns the value of key as String does, as bytes that are the Properties' own when the
// value needs no decoding (a string without escapes, a number, a boolean): they must not be
// modified or kept. It spares a caller that looks the text up, rather than keeping it, a string.
func (p Properties) TextBytes(key string) []byte {
	raw, ok := p.lookup(key)
	if !ok {
		return nil
	}
	raw = jsonscan.TrimSpace(raw)
	switch jsonscan.KindOf(raw) {
	case jsonscan.KindString:
		if content := raw[1 : len(raw)-1]; !jsonscan.NeedsUnescape(content) {
			return content
		}
		return []byte(scalarText(raw))
	case jsonscan.KindNumber, jsonscan.KindBool:
		return raw
	}
	return nil
}

// Raw returns the JSON of the value of key.
func (p Properties) Raw(key string) ([]byte, bool) { return p.lookup(key) }

// All yields every member in order, each value decoded. A repeated key is yielded each time (rare:
// JSON objects seldom repeat keys); Get and Map take its last value.
func (p Properties) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		for i := range p.members {
			m := &p.members[i]
			v, err := jsonscan.Any(m.Value(p.buf))
			if err != nil {
				continue
			}
			if !yield(jsonscan.Key(m.Key(p.buf)), v) {
				return
			}
		}
	}
}

// Keys yields every key in order without decoding any value; a repeated key is yielded each time.
func (p Properties) Keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range p.members {
			if !yield(jsonscan.Key(p.members[i].Key(p.buf))) {
				return
			}
		}
	}
}

// KeyBytes yields every key in order, as Keys does, without making a string of it: the bytes are
// the Properties' own and must not be modified or kept.
func (p Properties) KeyBytes() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := range p.members {
			if !yield(p.members[i].Key(p.buf)) {
				return
			}
		}
	}
}

// Map decodes every member into a map, as encoding/json would.
func (p Properties) Map() map[string]any {
	out := make(map[string]any, len(p.members))
	for k, v := range p.All() {
		out[k] = v
	}
	return out
}
