package posthog

import (
	"fmt"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// TestLookupByLength checks that a lookup through the key lengths finds what a scan of every member
// finds: the last of a repeated key, keys of every length (255 bytes and more among them) at every
// place among eight lengths, and nothing for absent keys.
func TestLookupByLength(t *testing.T) {
	keyOf := func(i int) string {
		switch i % 7 {
		case 0:
			return fmt.Sprintf("k%d", i%5) // repeated
		case 1:
			return strings.Repeat("x", 250+i%9) // around 255 bytes
		}
		return fmt.Sprintf("$key_%d", i)
	}
	for n := minKeyLengths; n <= minKeyLengths+17; n++ {
		var obj strings.Builder
		obj.WriteByte('{')
		for i := range n {
			if i > 0 {
				obj.WriteByte(',')
			}
			fmt.Fprintf(&obj, "%q:%d", keyOf(i), i)
		}
		obj.WriteByte('}')
		buf := []byte(obj.String())
		var s scratch
		var err error
		if s.members, err = jsonscan.AppendMembers(nil, buf); err != nil {
			t.Fatal(err)
		}
		scan := Properties{buf: buf, members: s.members}
		p := s.withKeyLengths(scan)
		if p.keyLengths == nil {
			t.Fatalf("%d members: no key lengths", n)
		}
		for i := -3; i < n+3; i++ {
			key := keyOf(i + 100)
			if i >= 0 && i < n {
				key = keyOf(i)
			}
			want, wantOK := scan.lookup(key)
			got, ok := p.lookup(key)
			if ok != wantOK || string(got) != string(want) {
				t.Errorf("%d members, key %.20q: %s %v, want %s %v", n, key, got, ok, want, wantOK)
			}
		}
	}
}

// TestKeyLengthsNotKeptForEscapedKeys checks that properties with a key written with escapes are
// looked up by scanning, and still found.
func TestKeyLengthsNotKeptForEscapedKeys(t *testing.T) {
	var obj strings.Builder
	obj.WriteString(`{"a\u0062":1`)
	for i := range minKeyLengths {
		fmt.Fprintf(&obj, `,"k%d":%d`, i, i)
	}
	obj.WriteByte('}')
	buf := []byte(obj.String())
	var s scratch
	var err error
	if s.members, err = jsonscan.AppendMembers(nil, buf); err != nil {
		t.Fatal(err)
	}
	p := s.withKeyLengths(Properties{buf: buf, members: s.members})
	if p.keyLengths != nil {
		t.Fatal("key lengths kept for a key with escapes")
	}
	if p.String("ab") != "1" || p.String("k3") != "3" {
		t.Fatalf("ab = %q, k3 = %q", p.String("ab"), p.String("k3"))
	}
}
