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

type member struct {
	key   []byte // unescaped; a sub-slice of the object when it had no escapes
	value []byte // raw JSON, syntax already checked
}

// indexObject indexes the members of a syntactically unchecked JSON object. The index points into
// obj, which must not change while the Properties are in use.
func indexObject(obj []byte, into *Properties) error {
	if into.members == nil {
		into.members = make([]member, 0, sizeHint(len(obj)))
	}
	return jsonscan.ObjectEach(obj, func(key, value []byte) error {
		into.members = append(into.members, member{key: key, value: value})
		return nil
	})
}

// indexValue indexes the members of a value read in place: an object, or a JSON string holding one
// (decoded into a new buffer). null indexes nothing; anything else is ErrInvalidEvent.
func indexValue(v *jsonscan.Value, into *Properties) error {
	switch v.Kind() {
	case jsonscan.KindObject:
		if into.members == nil {
			into.members = make([]member, 0, sizeHint(len(v.Bytes())))
		}
		err := v.Members(func(key []byte, mv *jsonscan.Value) error {
			raw, err := mv.Raw()
			if err != nil {
				return err
			}
			into.members = append(into.members, member{key: key, value: raw})
			return nil
		})
		if err != nil {
			return malformed("properties", err)
		}
		return nil
	case jsonscan.KindString:
		raw, err := v.Raw()
		if err != nil {
			return malformed("properties", err)
		}
		obj, err := objectBytes(raw)
		if err != nil || obj == nil {
			return err
		}
		if err := indexObject(obj, into); err != nil {
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

// sizeHint guesses the number of members from the size of an object's JSON (posthog-js events
// average about 48 bytes per property; erring high costs less than growing).
func sizeHint(n int) int {
	h := n / 32
	switch {
	case h < 4:
		return 4
	case h > 128:
		return 128
	}
	return h
}

func (p Properties) lookup(key string) ([]byte, bool) {
	for i := len(p.members) - 1; i >= 0; i-- {
		if string(p.members[i].key) == key {
			return p.members[i].value, true
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
			v, err := jsonscan.Any(m.value)
			if err != nil {
				continue
			}
			if !yield(jsonscan.Key(m.key), v) {
				return
			}
		}
	}
}

// Keys yields every key in order without decoding any value; a repeated key is yielded each time.
func (p Properties) Keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, m := range p.members {
			if !yield(jsonscan.Key(m.key)) {
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
