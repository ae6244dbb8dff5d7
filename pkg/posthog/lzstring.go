package posthog

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// lzBase64Alphabet is lz-string's base64 alphabet ('=' is a value too).
const lzBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

// DecompressLZBase64 decodes lz-string's compressToBase64 output (the "lz64" compression of very old
// posthog-js), returning UTF-8. The output, and the dictionary built on the way, are limited to
// maxSize bytes (ErrTooLarge), so a crafted input cannot exhaust memory.
func DecompressLZBase64(input string, maxSize int64) ([]byte, error) {
	if input == "" {
		return nil, malformed("empty lz-string payload", nil)
	}
	var values [256]int8
	for i := range values {
		values[i] = -1
	}
	for i := 0; i < len(lzBase64Alphabet); i++ {
		values[lzBase64Alphabet[i]] = int8(i)
	}
	r := lzReader{input: input, values: &values, val: -1, position: 32, index: 0}
	r.val = r.next()
	r.index = 1
	if r.bad {
		return nil, malformed("lz-string payload is not base64", nil)
	}

	// units counts UTF-16 code units held in the output and the dictionary; each costs two bytes.
	limit := maxSize / 2
	var units int64
	grow := func(n int) error {
		units += int64(n)
		if units > limit {
			return fmt.Errorf("%w: lz-string payload inflates beyond %d bytes", ErrTooLarge, maxSize)
		}
		return nil
	}

	dict := [][]uint16{{0}, {1}, {2}}
	enlargeIn, numBits := 4, 3
	var w []uint16
	var result []uint16

	var c []uint16
	switch r.bits(2) {
	case 0:
		c = []uint16{uint16(r.bits(8))}
	case 1:
		c = []uint16{uint16(r.bits(16))}
	case 2:
		return []byte{}, nil
	default:
		return nil, malformed("lz-string header", nil)
	}
	if r.bad {
		return nil, malformed("lz-string payload is not base64", nil)
	}
	dict = append(dict, c)
	w = c
	result = append(result, c...)
	if err := grow(2); err != nil {
		return nil, err
	}
	for {
		if r.index > len(input) {
			return nil, malformed("lz-string payload ends early", nil)
		}
		code := r.bits(numBits)
		if r.bad {
			return nil, malformed("lz-string payload is not base64", nil)
		}
		switch code {
		case 0, 1:
			width := 8
			if code == 1 {
				width = 16
			}
			dict = append(dict, []uint16{uint16(r.bits(width))})
			if err := grow(1); err != nil {
				return nil, err
			}
			code = len(dict) - 1
			enlargeIn--
		case 2:
			return utf16ToUTF8(result), nil
		}
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
		if numBits > 30 {
			return nil, malformed("lz-string code width", nil)
		}
		var entry []uint16
		switch {
		case code < len(dict):
			entry = dict[code]
		case code == len(dict):
			if err := grow(len(w) + 1); err != nil {
				return nil, err
			}
			entry = append(append(make([]uint16, 0, len(w)+1), w...), w[0])
		default:
			return nil, malformed("lz-string back-reference", nil)
		}
		// the entry joins the output, and w plus its first unit joins the dictionary
		if err := grow(len(entry) + len(w) + 1); err != nil {
			return nil, err
		}
		result = append(result, entry...)
		next := make([]uint16, 0, len(w)+1)
		next = append(append(next, w...), entry[0])
		dict = append(dict, next)
		enlargeIn--
		w = entry
		if enlargeIn == 0 {
			enlargeIn = 1 << numBits
			numBits++
		}
	}
}

// lzReader reads lz-string's bit stream: 6 bits per base64 character, most significant first.
type lzReader struct {
	input    string
	values   *[256]int8
	val      int
	position int
	index    int
	bad      bool
}

func (r *lzReader) next() int {
	if r.index >= len(r.input) {
		return 0 // past the end: lz-string reads zero bits there
	}
	v := r.values[r.input[r.index]]
	if v < 0 {
		r.bad = true
		return 0
	}
	return int(v)
}

func (r *lzReader) bits(n int) int {
	out := 0
	for i := 0; i < n; i++ {
		bit := r.val & r.position
		r.position >>= 1
		if r.position == 0 {
			r.position = 32
			r.val = r.next()
			r.index++
		}
		if bit > 0 {
			out |= 1 << i
		}
	}
	return out
}

func utf16ToUTF8(u []uint16) []byte {
	out := make([]byte, 0, len(u))
	for _, r := range utf16.Decode(u) {
		out = utf8.AppendRune(out, r)
	}
	return out
}
