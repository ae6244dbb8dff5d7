// Package jsonscan owns a small, strict JSON reader over byte slices for the PostHog decode path. It
// walks objects and arrays without building them and decodes only the values it is asked for, into the
// same Go values encoding/json produces for an `any` (map[string]any, []any, string, float64, bool,
// nil). It exists because the decode path reads a handful of fields out of large events; building the
// whole tree with encoding/json first costs several times more than the rest of the work.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 512

// Errors returned by the reader. Every error wraps ErrSyntax, ErrDepth or ErrRange.
var (
	ErrSyntax = errors.New("jsonscan: invalid JSON")
	ErrDepth  = errors.New("jsonscan: nesting too deep")
	ErrRange  = errors.New("jsonscan: number out of range")
)

// Kind is the kind of a JSON value, told by its first byte.
type Kind uint8

// Kinds of JSON values.
const (
	KindInvalid Kind = iota
	KindObject
	KindArray
	KindString
	KindNumber
	KindBool
	KindNull
)

// KindOf reports the kind of the value b holds (leading whitespace allowed). It looks at one byte only.
func KindOf(b []byte) Kind {
	i := SkipSpace(b, 0)
	if i >= len(b) {
		return KindInvalid
	}
	switch c := b[i]; {
	case c == '{':
		return KindObject
	case c == '[':
		return KindArray
	case c == '"':
		return KindString
	case c == '-' || (c >= '0' && c <= '9'):
		return KindNumber
	case c == 't' || c == 'f':
		return KindBool
	case c == 'n':
		return KindNull
	}
	return KindInvalid
}

// SkipSpace returns the index of the first non-whitespace byte of b at or after i.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// TrimSpace returns b without leading and trailing JSON whitespace.
func TrimSpace(b []byte) []byte {
	i := SkipSpace(b, 0)
	j := len(b)
	for j > i {
		switch b[j-1] {
		case ' ', '\t', '\n', '\r':
			j--
			continue
		}
		break
	}
	return b[i:j]
}

func syntaxErr(b []byte, i int, what string) error {
	if i >= len(b) {
		return fmt.Errorf("%w: unexpected end of input (%s)", ErrSyntax, what)
	}
	return fmt.Errorf("%w: unexpected %q at offset %d (%s)", ErrSyntax, b[i], i, what)
}

// Valid reports whether b holds exactly one JSON value (whitespace around it allowed).
func Valid(b []byte) bool {
	i := SkipSpace(b, 0)
	end, err := skipValue(b, i, 0)
	return err == nil && SkipSpace(b, end) == len(b)
}

// ValueEnd returns the index just after the JSON value that starts at b[i] (no leading whitespace),
// checking its syntax on the way.
func ValueEnd(b []byte, i int) (int, error) {
	return skipValue(b, i, 0)
}

func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(b, i, "value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		return skipObject(b, i, depth+1)
	case c == '[':
		return skipArray(b, i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return i, syntaxErr(b, i, "value")
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(b, i, "literal "+lit)
	}
	return i + len(lit), nil
}

func skipObject(b []byte, i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, ErrDepth
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(b, i, "object key")
		}
		end, _, err := scanString(b, i)
		if err != nil {
			return end, err
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(b, i, "colon")
		}
		i = SkipSpace(b, i+1)
		if i, err = skipValue(b, i, depth); err != nil {
			return i, err
		}
		next, done, err := afterMember(b, i, '}', "object end")
		if err != nil {
			return next, err
		}
		if done {
			return next, nil
		}
		i = next
	}
}

// afterMember reads what follows a member of an object or an element of an array, from i: a
// comma (done is false and next is where the following one starts) or the closing byte (done is
// true and next is just past it). Anything else is a syntax error naming what was expected.
func afterMember(b []byte, i int, closing byte, what string) (next int, done bool, err error) {
	i = SkipSpace(b, i)
	if i < len(b) {
		switch b[i] {
		case ',':
			return SkipSpace(b, i+1), false, nil
		case closing:
			return i + 1, true, nil
		}
	}
	return i, false, syntaxErr(b, i, what)
}

func skipArray(b []byte, i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, ErrDepth
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = skipValue(b, i, depth); err != nil {
			return i, err
		}
		next, done, err := afterMember(b, i, ']', "array end")
		if err != nil {
			return next, err
		}
		if done {
			return next, nil
		}
		i = next
	}
}

// scanString returns the index after the string that starts at b[i] (a '"') and whether its content
// needs unescaping (it holds a backslash or a non-ASCII byte).
func scanString(b []byte, i int) (end int, complex bool, err error) {
	j := i + 1
	for {
		// plainRun, its word loop inlined: most strings are keys and short values, whose cost is
		// the call
		for {
			if j+8 > len(b) {
				j = plainRun(b, j)
				break
			}
			if m := specialBytes(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				j += bits.TrailingZeros64(m) / 8
				break
			}
			j += 8
		}
		if j >= len(b) {
			return j, complex, syntaxErr(b, j, "string end")
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, complex, nil
		case c == '\\':
			complex = true
			if j+1 >= len(b) {
				return j, complex, syntaxErr(b, j+1, "escape")
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return j, complex, syntaxErr(b, len(b), "\\u escape")
				}
				for k := j + 2; k < j+6; k++ {
					if !isHex(b[k]) {
						return k, complex, syntaxErr(b, k, "\\u escape")
					}
				}
				j += 6
			default:
				return j + 1, complex, syntaxErr(b, j+1, "escape")
			}
		case c < 0x20:
			return j, complex, syntaxErr(b, j, "control character in string")
		default: // non-ASCII
			complex = true
			j++
		}
	}
}

// SWAR constants: one in every byte, and the high bit of every byte.
const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i that is '"', '\\', a control character
// or non-ASCII (len(b) when there is none), testing eight bytes at a time.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func scanNumber(b []byte, i int) (int, error) {
	j := i
	if b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return j, syntaxErr(b, j, "number")
	}
	switch {
	case b[j] == '0':
		j++
	case b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return j, syntaxErr(b, j, "number")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return j, syntaxErr(b, j, "fraction")
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return j, syntaxErr(b, j, "exponent")
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	return j, nil
}

// Value is the value of one object member during Members: the callback reads it at most once, with
// Raw or Any; a value not read is skipped.
type Value struct {
	b     []byte
	start int
	end   int
	depth int // nesting depth of the value's container
	read  bool
	err   error
}

// Bytes returns the input from the value's start to the end of the input it was found in: an upper
// bound of its size before it is read.
func (v *Value) Bytes() []byte { return v.b[v.start:] }

// Kind reports the kind of the value from its first byte.
func (v *Value) Kind() Kind { return KindOf(v.b[v.start:]) }

// Raw returns the value's bytes, checking its syntax.
func (v *Value) Raw() ([]byte, error) {
	if !v.read {
		v.read = true
		v.end, v.err = skipValue(v.b, v.start, v.depth)
	}
	if v.err != nil {
		return nil, v.err
	}
	return v.b[v.start:v.end], nil
}

// Skip marks the value read without reading it, for a caller that read the same bytes before and
// knows the value is n bytes long with valid syntax.
func (v *Value) Skip(n int) {
	v.read, v.end, v.err = true, v.start+n, nil
}

// Any decodes the value like the package-level Any.
func (v *Value) Any() (any, error) {
	if v.read {
		raw, err := v.Raw()
		if err != nil {
			return nil, err
		}
		return Any(raw)
	}
	v.read = true
	var out any
	out, v.end, v.err = parseValue(v.b, v.start, v.depth)
	return out, v.err
}

// AppendString appends the decoded content of the value, which must be a string, to dst. It reads
// the string once, checking and unescaping together.
func (v *Value) AppendString(dst []byte) ([]byte, error) {
	if v.read {
		raw, err := v.Raw()
		if err != nil {
			return dst, err
		}
		return AppendString(dst, raw)
	}
	v.read = true
	dst, v.end, v.err = appendString(dst, v.b, v.start)
	return dst, v.err
}

// appendString decodes the string that starts at b[i] onto dst in one pass and returns the index
// after it. Plain bytes are copied eight at a time: a word is stored whole, and an escaped quote or
// backslash in it (most of what a JSON string holding JSON escapes) is resolved in place, the rest
// of the word stored again one byte further down; the word's special bytes come from one mask, and
// the input is read a word after the other whatever it holds, so that reading need not wait for
// the escapes to be resolved.
func appendString(dst, b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		return dst, i, syntaxErr(b, i, "string")
	}
	j := i + 1
	// Unescaping never lengthens the text (an invalid UTF-8 byte, three bytes once replaced, is
	// the exception, and makes room for itself): the rest of the input and a word of slack fit.
	dst = slices.Grow(dst, len(b)-j+8)
	w := len(dst)
	out := dst[:cap(dst)]
	for {
	words:
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			m := specialBytes(x)
			binary.LittleEndian.PutUint64(out[w:], x)
			dropped := 0 // the backslashes of the word's escapes resolved so far
			for m != 0 {
				n := bits.TrailingZeros64(m) / 8
				if n == 7 || byte(x>>(8*n)) != '\\' {
					// the end of the string, or what the loop below resolves: the bytes
					// before it are in place
					j += n
					w += n - dropped
					break words
				}
				e := byte(x >> (8*n + 8))
				if e != '"' && e != '\\' {
					j += n
					w += n - dropped
					break words
				}
				out[w+n-dropped] = e
				binary.LittleEndian.PutUint64(out[w+n+1-dropped:], x>>(8*n+16))
				dropped++
				m &= m - 1 // the backslash
				m &= m - 1 // the byte it escapes, special itself
			}
			j += 8
			w += 8 - dropped
		}
		for j < len(b) {
			c := b[j]
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				break
			}
			out[w] = c
			w++
			j++
		}
		if j >= len(b) {
			return out[:w], j, syntaxErr(b, j, "string end")
		}
		switch c := b[j]; {
		case c == '"':
			return out[:w], j + 1, nil
		case c == '\\':
			if j+1 >= len(b) {
				return out[:w], j, syntaxErr(b, j+1, "escape")
			}
			switch e := b[j+1]; e {
			case '"', '\\', '/':
				out[w] = e
			case 'b':
				out[w] = '\b'
			case 'f':
				out[w] = '\f'
			case 'n':
				out[w] = '\n'
			case 'r':
				out[w] = '\r'
			case 't':
				out[w] = '\t'
			case 'u':
				if j+6 > len(b) {
					return out[:w], j, syntaxErr(b, len(b), "\\u escape")
				}
				for k := j + 2; k < j+6; k++ {
					if !isHex(b[k]) {
						return out[:w], k, syntaxErr(b, k, "\\u escape")
					}
				}
				r := hex4(b[j+2 : j+6])
				j += 6
				if utf16.IsSurrogate(r) {
					if j+6 <= len(b) && b[j] == '\\' && b[j+1] == 'u' && isHex(b[j+2]) && isHex(b[j+3]) && isHex(b[j+4]) && isHex(b[j+5]) {
						if dec := utf16.DecodeRune(r, hex4(b[j+2:j+6])); dec != utf8.RuneError {
							j += 6
							w += utf8.EncodeRune(out[w:], dec) // 4 bytes for 12 read
							continue
						}
					}
					r = utf8.RuneError
				}
				w += utf8.EncodeRune(out[w:], r) // at most 3 bytes for 6 read
				continue
			default:
				return out[:w], j + 1, syntaxErr(b, j+1, "escape")
			}
			w++
			j += 2
		case c < 0x20:
			return out[:w], j, syntaxErr(b, j, "control character in string")
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				// one byte read, three written: keep the slack for the rest
				if len(out)-w < len(b)-j+2+8 {
					out = slices.Grow(out[:w], len(b)-j+16)
					out = out[:cap(out)]
				}
				w += utf8.EncodeRune(out[w:], utf8.RuneError)
			} else {
				w += copy(out[w:], b[j:j+size])
			}
			j += size
		}
	}
}

// specialBytes returns, for the eight bytes of x (little-endian), the high bit of each byte that
// is '"', '\\', a control character or non-ASCII, exactly: the low seven bits of a byte plus 0x60
// reach the high bit unless they are below 0x20, and those of a byte xor the quote (or backslash)
// plus 0x7f unless they are zero, and neither sum carries into the next byte.
func specialBytes(x uint64) uint64 {
	const low7 = lows * 0x7f
	v := x & low7
	notControl := v + lows*(0x80-0x20)
	notQuote := (v ^ lows*'"') + low7
	notBackslash := (v ^ lows*'\\') + low7
	return (^(notControl & notQuote & notBackslash) | x) & highs
}

// Members calls fn for every member of the object b holds, in order, with the key's content and its
// value. The key is a sub-slice of b, or a new slice when it had escapes to resolve; either way it
// stays valid after the call (and must not be modified). Members checks the syntax of the whole object
// and stops at the first error fn returns.
func Members(b []byte, fn func(key []byte, v *Value) error) error {
	return MembersIn(new(Value), b, fn)
}

// MembersIn is Members giving fn v, whatever it held, as the Value of every member: a caller that
// reads object after object keeps one Value for them all, where Members makes one per call.
func MembersIn(v *Value, b []byte, fn func(key []byte, v *Value) error) error {
	*v = Value{b: b}
	end, err := members(v, SkipSpace(b, 0), 0, fn)
	if err != nil {
		return err
	}
	return trailing(b, end)
}

// Members calls fn for every member of the value, which must be an object, as the package-level
// Members does, reading the object in place. fn is given v itself as the Value of every member,
// and v is the object's again once Members returns.
func (v *Value) Members(fn func(key []byte, v *Value) error) error {
	if v.read {
		raw, err := v.Raw()
		if err != nil {
			return err
		}
		return Members(raw, fn)
	}
	start, depth := v.start, v.depth
	end, err := members(v, start, depth, fn)
	v.start, v.end, v.depth, v.read, v.err = start, end, depth, true, err
	return err
}

// members reads the object that starts at v.b[i] at nesting depth, calling fn per member with v
// as its Value, and returns the index after it. v.err must be nil.
func members(v *Value, i, depth int, fn func(key []byte, v *Value) error) (int, error) {
	b := v.b
	if depth+1 > MaxDepth {
		return i, ErrDepth
	}
	if i >= len(b) || b[i] != '{' {
		return i, syntaxErr(b, i, "object")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(b, i, "object key")
		}
		end, complex, err := scanString(b, i)
		if err != nil {
			return end, err
		}
		key := b[i+1 : end-1 : end-1]
		if complex {
			key = unescape(nil, key)
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(b, i, "colon")
		}
		// v.b stays, and v.err is nil (an error ends the loop): set the rest without rewriting
		// the pointers
		v.start, v.end, v.depth, v.read = SkipSpace(b, i+1), 0, depth+1, false
		if err := fn(key, v); err != nil {
			return i, err
		}
		if !v.read {
			v.Raw()
		}
		if v.err != nil {
			return v.end, v.err
		}
		next, done, err := afterMember(b, v.end, '}', "object end")
		if err != nil {
			return next, err
		}
		if done {
			return next, nil
		}
		i = next
	}
}

// Member is one member of an object, as offsets into the bytes it was read from (see
// AppendMembers): the key's content between the quotes, still escaped when KeyEscaped, and the raw
// value. It holds no pointers, so that an index of many members costs the garbage collector nothing.
type Member struct {
	KeyStart, KeyEnd, ValueStart, ValueEnd uint32
	KeyEscaped                             bool
}

// MaxIndexed bounds the size of the input AppendMembers indexes (offsets are 32-bit); past it,
// AppendMembers fails with ErrRange.
const MaxIndexed = 1<<32 - 1

// Key returns the member's key content (as Members gives it) from buf, the bytes it was read from:
// a sub-slice of buf, or a new slice when the key has escapes.
func (m *Member) Key(buf []byte) []byte {
	k := buf[m.KeyStart:m.KeyEnd:m.KeyEnd]
	if m.KeyEscaped {
		return unescape(nil, k)
	}
	return k
}

// KeyIs reports whether the member's key content is key, without allocating for a key with no
// escapes.
func (m *Member) KeyIs(buf []byte, key string) bool {
	if !m.KeyEscaped {
		return string(buf[m.KeyStart:m.KeyEnd]) == key
	}
	return string(m.Key(buf)) == key
}

// Value returns the member's raw value from buf, the bytes it was read from.
func (m *Member) Value(buf []byte) []byte { return buf[m.ValueStart:m.ValueEnd:m.ValueEnd] }

// Shift moves the member's offsets by d: its offsets into bytes that start d bytes earlier.
func (m *Member) Shift(d uint32) {
	m.KeyStart += d
	m.KeyEnd += d
	m.ValueStart += d
	m.ValueEnd += d
}

// AppendMembers appends every member of the object b holds to dst, in order, as ObjectEach would
// give them, with offsets into b, and checks the syntax of the whole object.
func AppendMembers(dst []Member, b []byte) ([]Member, error) {
	if len(b) > MaxIndexed {
		return dst, ErrRange
	}
	dst, end, err := appendMembers(dst, b, SkipSpace(b, 0), 0)
	if err != nil {
		return dst, err
	}
	return dst, trailing(b, end)
}

// AppendMembers appends every member of the value, which must be an object, to dst, reading it in
// place as the package-level AppendMembers does. The offsets are into buf, which it returns: the
// input the value was found in, or the value itself when it was read before.
func (v *Value) AppendMembers(dst []Member) (buf []byte, _ []Member, err error) {
	if v.read {
		raw, err := v.Raw()
		if err != nil {
			return raw, dst, err
		}
		dst, err = AppendMembers(dst, raw)
		return raw, dst, err
	}
	if len(v.b) > MaxIndexed {
		v.read, v.end, v.err = true, v.start, ErrRange
		return v.b, dst, v.err
	}
	v.read = true
	dst, v.end, v.err = appendMembers(dst, v.b, v.start, v.depth)
	return v.b, dst, v.err
}

// NeedsUnescape reports whether the content of a JSON string (between its quotes, syntax checked)
// differs from the text it stands for: it holds an escape or bytes that are not UTF-8.
func NeedsUnescape(s []byte) bool {
	return bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s)
}

// appendMembers is members with a callback that takes each value's Raw, without the callback.
func appendMembers(dst []Member, b []byte, i, depth int) ([]Member, int, error) {
	if depth+1 > MaxDepth {
		return dst, i, ErrDepth
	}
	if i >= len(b) || b[i] != '{' {
		return dst, i, syntaxErr(b, i, "object")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, i, syntaxErr(b, i, "object key")
		}
		end, complex, err := scanString(b, i)
		if err != nil {
			return dst, end, err
		}
		ks, ke := i+1, end-1
		if complex {
			complex = NeedsUnescape(b[ks:ke])
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, i, syntaxErr(b, i, "colon")
		}
		vs := SkipSpace(b, i+1)
		var ve int
		if vs < len(b) && b[vs] == '"' { // most values are strings: skipValue's first case, without the call
			ve, _, err = scanString(b, vs)
		} else {
			ve, err = skipValue(b, vs, depth+1)
		}
		if err != nil {
			return dst, ve, err
		}
		dst = append(dst, Member{KeyStart: uint32(ks), KeyEnd: uint32(ke), ValueStart: uint32(vs), ValueEnd: uint32(ve), KeyEscaped: complex})
		if ve < len(b) && b[ve] == ',' { // afterMember's common case, without the call
			i = SkipSpace(b, ve+1)
			continue
		}
		next, done, err := afterMember(b, ve, '}', "object end")
		if err != nil {
			return dst, next, err
		}
		if done {
			return dst, next, nil
		}
		i = next
	}
}

// ObjectEach calls fn for every member of the object b holds, in order, with the key's content (as
// Members gives it) and the member's raw value. It checks the syntax of the whole object and stops at
// the first error fn returns.
func ObjectEach(b []byte, fn func(key, value []byte) error) error {
	return Members(b, func(key []byte, v *Value) error {
		raw, err := v.Raw()
		if err != nil {
			return err
		}
		return fn(key, raw)
	})
}

// Key returns key as a string, without allocating for the keys PostHog sends on nearly every event.
func Key(key []byte) string {
	if k, ok := internKey(key); ok {
		return k
	}
	return string(key)
}

// ArrayEach calls fn for every element of the array b holds, in order, with its raw value.
func ArrayEach(b []byte, fn func(value []byte) error) error {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return syntaxErr(b, i, "array")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return trailing(b, i+1)
	}
	for {
		start := i
		var err error
		if i, err = skipValue(b, i, 1); err != nil {
			return err
		}
		if err := fn(b[start:i]); err != nil {
			return err
		}
		next, done, err := afterMember(b, i, ']', "array end")
		if err != nil {
			return err
		}
		if done {
			return trailing(b, next)
		}
		i = next
	}
}

// Elements calls fn for every element of the array b holds, in order, with the element as a Value
// that fn may read in place (with Members, Raw, …); an element fn does not read is skipped. It
// checks the syntax of the whole array and stops at the first error fn returns, as ArrayEach does;
// unlike ArrayEach it reads each element once.
func Elements(b []byte, fn func(v *Value) error) error {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return syntaxErr(b, i, "array")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return trailing(b, i+1)
	}
	v := &Value{b: b}
	for {
		v.start, v.end, v.depth, v.read = i, 0, 1, false
		if err := fn(v); err != nil {
			return err
		}
		if !v.read {
			v.Raw()
		}
		if v.err != nil {
			return v.err
		}
		next, done, err := afterMember(b, v.end, ']', "array end")
		if err != nil {
			return err
		}
		if done {
			return trailing(b, next)
		}
		i = next
	}
}

func trailing(b []byte, i int) error {
	if i = SkipSpace(b, i); i != len(b) {
		return syntaxErr(b, i, "end of value")
	}
	return nil
}

// String decodes the JSON string b holds. It fails when b is not a string.
func String(b []byte) (string, error) {
	b = TrimSpace(b)
	if len(b) == 0 || b[0] != '"' {
		return "", syntaxErr(b, 0, "string")
	}
	end, complex, err := scanString(b, 0)
	if err != nil {
		return "", err
	}
	if end != len(b) {
		return "", syntaxErr(b, end, "end of string")
	}
	return decodedString(b[1:end-1], complex), nil
}

// decodedString returns the content of a syntactically valid string body as a string. Only a
// body with escapes or invalid UTF-8 needs a buffer of its own.
func decodedString(body []byte, complex bool) string {
	if !complex || (bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body)) {
		return string(body)
	}
	return string(unescape(make([]byte, 0, len(body)), body))
}

// AppendString appends the decoded content of the JSON string b holds to dst.
func AppendString(dst, b []byte) ([]byte, error) {
	b = TrimSpace(b)
	dst, end, err := appendString(dst, b, 0)
	if err != nil {
		return dst, err
	}
	if end != len(b) {
		return dst, syntaxErr(b, end, "end of string")
	}
	return dst, nil
}

// NumbersInRange reports whether every number in b, a JSON value whose syntax is checked, is
// within the range of a float64: whether Any decodes b.
func NumbersInRange(b []byte) bool {
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			i, _, _ = scanString(b, i)
		case c == '-' || (c >= '0' && c <= '9'):
			end, err := scanNumber(b, i)
			if err != nil {
				return false
			}
			if _, err := parseNumber(b[i:end]); err != nil {
				return false
			}
			i = end
		default:
			i++
		}
	}
	return true
}

// Float decodes the JSON number b holds.
func Float(b []byte) (float64, error) {
	b = TrimSpace(b)
	if KindOf(b) != KindNumber {
		return 0, syntaxErr(b, 0, "number")
	}
	end, err := scanNumber(b, 0)
	if err != nil {
		return 0, err
	}
	if end != len(b) {
		return 0, syntaxErr(b, end, "end of number")
	}
	return parseNumber(b)
}

// parseNumber converts a syntactically valid number. Short integers skip strconv.
func parseNumber(b []byte) (float64, error) {
	neg := false
	d := b
	if len(d) > 0 && d[0] == '-' {
		neg, d = true, d[1:]
	}
	if len(d) > 0 && len(d) <= 15 {
		var n uint64
		ok := true
		for _, c := range d {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + uint64(c-'0')
		}
		if ok {
			f := float64(n)
			if neg {
				f = -f
			}
			return f, nil
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", ErrRange, b)
	}
	return f, nil
}

// Any decodes the JSON value b holds into the Go value encoding/json would produce for an `any`:
// map[string]any, []any, string, float64, bool or nil. Duplicate keys keep the last value.
func Any(b []byte) (any, error) {
	i := SkipSpace(b, 0)
	v, end, err := parseValue(b, i, 0)
	if err != nil {
		return nil, err
	}
	if err := trailing(b, end); err != nil {
		return nil, err
	}
	return v, nil
}

// Map decodes the JSON object b holds like Any. It fails when b is not an object.
func Map(b []byte) (map[string]any, error) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, syntaxErr(b, i, "object")
	}
	m, end, err := parseObject(b, i, 1)
	if err != nil {
		return nil, err
	}
	if err := trailing(b, end); err != nil {
		return nil, err
	}
	return m, nil
}

func parseValue(b []byte, i, depth int) (any, int, error) {
	if i >= len(b) {
		return nil, i, syntaxErr(b, i, "value")
	}
	switch c := b[i]; {
	case c == '"':
		s, end, err := parseString(b, i)
		return s, end, err
	case c == '{':
		m, end, err := parseObject(b, i, depth+1)
		if err != nil {
			return nil, end, err
		}
		return m, end, nil
	case c == '[':
		return parseArray(b, i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		end, err := scanNumber(b, i)
		if err != nil {
			return nil, end, err
		}
		f, err := parseNumber(b[i:end])
		return f, end, err
	case c == 't':
		end, err := literal(b, i, "true")
		return true, end, err
	case c == 'f':
		end, err := literal(b, i, "false")
		return false, end, err
	case c == 'n':
		end, err := literal(b, i, "null")
		return nil, end, err
	}
	return nil, i, syntaxErr(b, i, "value")
}

func parseString(b []byte, i int) (string, int, error) {
	end, complex, err := scanString(b, i)
	if err != nil {
		return "", end, err
	}
	return decodedString(b[i+1:end-1], complex), end, nil
}

func parseObject(b []byte, i, depth int) (map[string]any, int, error) {
	if depth > MaxDepth {
		return nil, i, ErrDepth
	}
	m := make(map[string]any)
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, i, syntaxErr(b, i, "object key")
		}
		key, end, err := parseKey(b, i)
		if err != nil {
			return nil, end, err
		}
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, i, syntaxErr(b, i, "colon")
		}
		i = SkipSpace(b, i+1)
		var v any
		if v, i, err = parseValue(b, i, depth); err != nil {
			return nil, i, err
		}
		m[key] = v
		next, done, err := afterMember(b, i, '}', "object end")
		if err != nil {
			return nil, next, err
		}
		if done {
			return m, next, nil
		}
		i = next
	}
}

// parseKey decodes an object key, reusing the constant for keys PostHog sends on every event.
func parseKey(b []byte, i int) (string, int, error) {
	end, complex, err := scanString(b, i)
	if err != nil {
		return "", end, err
	}
	if complex {
		return string(unescape(nil, b[i+1:end-1])), end, nil
	}
	raw := b[i+1 : end-1]
	if k, ok := internKey(raw); ok {
		return k, end, nil
	}
	return string(raw), end, nil
}

func parseArray(b []byte, i, depth int) (any, int, error) {
	if depth > MaxDepth {
		return nil, i, ErrDepth
	}
	a := make([]any, 0, 4)
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return a, i + 1, nil
	}
	for {
		v, end, err := parseValue(b, i, depth)
		if err != nil {
			return nil, end, err
		}
		a = append(a, v)
		next, done, err := afterMember(b, end, ']', "array end")
		if err != nil {
			return nil, next, err
		}
		if done {
			return a, next, nil
		}
		i = next
	}
}

// unescape appends the decoded form of a syntactically valid string body (without quotes) to dst,
// the way encoding/json does: escapes resolved, surrogate pairs joined, invalid UTF-8 and lone
// surrogates replaced by U+FFFD.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case '"', '\\', '/':
				dst = append(dst, s[i+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 := hex4(s[i+2 : i+6])
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							dst = utf8.AppendRune(dst, dec)
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			}
			i += 2
		case c < utf8.RuneSelf:
			// copy the run of plain ASCII at once
			j := plainRun(s, i+1)
			dst = append(dst, s[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
