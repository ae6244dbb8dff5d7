package posthog

import (
	"iter"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// Properties is a JSON object read lazily: Decode only indexes its members (checking their syntax),
// and a value is decoded when it is asked for. A posthog-js event carries about fifty properties of
// which Threadline reads a handful; decoding them all would be most of the cost of decoding an event.
//
// When a key occurs more than once the last occurrence wins, as in encoding/json; that is also how the
// top-level $set of a raw event overrides properties.$set. The zero value is an empty object.
type Properties struct {
	members []member
}

// member is one indexed member: its key unescaped (a sub-slice of the object when it had no
// escapes) and its raw JSON value, syntax already checked.
type member = jsonscan.Member

// scratch is the memory a decode works in: an arena for the bytes events point into (unescaped
// strings, copies of the caller's message) and the backing store of every Properties index. A
// Decoder keeps one and reuses it from message to message; the package-level functions use a new
// one each time. What a decode hands out is cut to its length (three-index slices), so nothing
// appended later overwrites it.
type scratch struct {
	arena    []byte
	members  []member
	elements elementStore
	// read holds the objects read ahead, while the top level was checked, so that no one reads
	// them again
	read []readObject
	// cdpEvent is the event of a CDP body, read ahead
	cdpEvent topLevel
}

// readObject is a properties-like value read ahead: the string it holds decoded (decoded), or the
// object indexed (members[start:end]).
type readObject struct {
	raw        []byte
	decoded    []byte
	start, end int
	indexed    bool
}

// reset makes the scratch reusable: whatever it handed out before must no longer be in use.
func (s *scratch) reset() {
	s.arena = s.arena[:0]
	s.members = s.members[:0]
	s.elements.reset()
	clear(s.read)
	s.read = s.read[:0]
	s.cdpEvent = topLevel{}
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
		s.members, err = v.AppendMembers(s.members)
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
// whether it was.
func (s *scratch) addIndexed(obj []byte) bool {
	r := s.readAhead(obj)
	if r == nil || !r.indexed {
		return false
	}
	s.members = append(s.members, s.members[r.start:r.end]...)
	return true
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

// text is scalarText for a long value: a string is decoded through the arena in one pass, and only
// the string itself is allocated.
func (s *scratch) text(raw []byte) string {
	if jsonscan.KindOf(raw) != jsonscan.KindString {
		return scalarText(raw)
	}
	start := len(s.arena)
	b, err := s.appendString(raw)
	if err != nil {
		s.arena = s.arena[:start]
		return ""
	}
	return string(b)
}

// properties returns the members indexed since start (len(s.members) before indexing) as
// Properties.
func (s *scratch) properties(start int) Properties {
	if start == len(s.members) {
		return Properties{}
	}
	return Properties{members: s.members[start:len(s.members):len(s.members)]}
}

// extend returns p with the members indexed since start appended: in place when p ends where they
// begin, else in a new slice (a key repeated in the same object).
func (s *scratch) extend(p Properties, start int) Properties {
	added := s.properties(start)
	switch {
	case len(added.members) == 0:
		return p
	case len(p.members) == 0:
		return added
	case start >= len(p.members) && &s.members[start-len(p.members)] == &p.members[0]:
		return Properties{members: s.members[start-len(p.members) : len(s.members) : len(s.members)]}
	}
	merged := make([]member, 0, len(p.members)+len(added.members))
	return Properties{members: append(append(merged, p.members...), added.members...)}
}

// indexObject indexes the members of a syntactically unchecked JSON object onto s.members. The
// index points into obj, which must not change while the Properties are in use.
func (s *scratch) indexObject(obj []byte) error {
	if s.addIndexed(obj) {
		return nil
	}
	var err error
	s.members, err = jsonscan.AppendMembers(s.members, obj)
	return err
}

// indexValue indexes onto s.members the members of a value read in place: an object, or a JSON
// string holding one (decoded into the arena). null indexes nothing; anything else is
// ErrInvalidEvent.
func (s *scratch) indexValue(v *jsonscan.Value) error {
	switch v.Kind() {
	case jsonscan.KindObject:
		if r := s.readAheadAt(v); r != nil && r.indexed {
			v.Skip(len(r.raw))
			s.members = append(s.members, s.members[r.start:r.end]...)
			return nil
		}
		var err error
		if s.members, err = v.AppendMembers(s.members); err != nil {
			return malformed("properties", err)
		}
		return nil
	case jsonscan.KindString:
		raw, err := v.Raw()
		if err != nil {
			return malformed("properties", err)
		}
		obj, err := s.objectBytes(raw)
		if err != nil || obj == nil {
			return err
		}
		if err := s.indexObject(obj); err != nil {
			return malformed("properties", err)
		}
		return nil
	case jsonscan.KindNull:
		_, err := v.Raw()
		if err != nil {
			return malformed("properties", err)
		}
		return nil
	}
	if _, err := v.Raw(); err != nil {
		return malformed("properties", err)
	}
	return invalid("properties are not an object")
}

func (p Properties) lookup(key string) ([]byte, bool) {
	for i := len(p.members) - 1; i >= 0; i-- {
		if string(p.members[i].Key) == key {
			return p.members[i].Value, true
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

// Raw returns the JSON of the value of key.
func (p Properties) Raw(key string) ([]byte, bool) { return p.lookup(key) }

// All yields every member in order, each value decoded. A repeated key is yielded each time (rare:
// JSON objects seldom repeat keys); Get and Map take its last value.
func (p Properties) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		for _, m := range p.members {
			v, err := jsonscan.Any(m.Value)
			if err != nil {
				continue
			}
			if !yield(jsonscan.Key(m.Key), v) {
				return
			}
		}
	}
}

// Keys yields every key in order without decoding any value; a repeated key is yielded each time.
func (p Properties) Keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range p.members {
			if !yield(jsonscan.Key(m.Key)) {
				return
			}
		}
	}
}

// KeyBytes yields every key in order, as Keys does, without making a string of it: the bytes are
// the Properties' own and must not be modified or kept.
func (p Properties) KeyBytes() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, m := range p.members {
			if !yield(m.Key) {
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
