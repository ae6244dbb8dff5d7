package jsonscan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sameAsEncodingJSON checks that Any agrees with encoding/json on b: both accept it with equal values,
// or both reject it.
func sameAsEncodingJSON(t *testing.T, b []byte) {
	t.Helper()
	if KindOf(b) == KindString {
		// AppendString, which unescapes a word at a time, reads strings as encoding/json does
		var want string
		wantErr := json.Unmarshal(b, &want)
		got, err := AppendString([]byte("pre"), b)
		if (err == nil) != (wantErr == nil) || (err == nil && string(got) != "pre"+want) {
			t.Fatalf("%q: AppendString %q %v, encoding/json %q %v", b, got, err, want, wantErr)
		}
	}
	var want any
	wantErr := json.Unmarshal(b, &want)
	got, gotErr := Any(b)
	if errors.Is(gotErr, ErrDepth) {
		return // encoding/json allows deeper nesting; refusing it is the point of MaxDepth
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: encoding/json err=%v, jsonscan err=%v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: got %#v, encoding/json %#v", b, got, want)
	}
	if !Valid(b) {
		t.Fatalf("%q: Valid = false for a value both decoders accept", b)
	}
}

var differentialCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e3`, `-12.25E-2`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b":null}] } `,
	`{"a":1,"a":2}`, `"\u00e9\u2022\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`, `"a\/b\\c\"d\b\f\n\r\t"`,
	"\"\xff\xfe ok\"", "\"caf\xc3\xa9\"", "\"\xed\xa0\x80\"", `123456789012345`, `1234567890123456789`, `9007199254740993`,
	`1e400`, `-1e400`, `1e-400`, `0.1`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `[`, `{`, `"abc`, `01`, `1.`, `.5`, `-`,
	`1e`, `1e+`, `tru`, `nul`, `falsey`, `{"a":1}x`, `[1 2]`, "\"a\tb\"", `"\x"`, `"\u12"`, `"\u12g4"`, `{"\u0061":1}`,
	`{"key with \"quote\"":"v"}`, `[[[[[]]]]]`, `{"a":{"b":{"c":[true,false,null,"s",-1.25]}}}`, "  \n\t 7 \r\n",
	`"{\"a\":\"b\\\"c\",\"d\":1}"`, `"0123456\"\"\"\\x\"abcdefgh\\\\\"\"z"`, `"abcdefg\"hijklmn\\opq\u0041rstuvw\n"`,
}

func TestAnyMatchesEncodingJSON(t *testing.T) {
	for _, c := range differentialCases {
		sameAsEncodingJSON(t, []byte(c))
	}
}

func TestDepthLimit(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	if _, err := Any([]byte(deep)); !errors.Is(err, ErrDepth) {
		t.Fatalf("Any of %d nested arrays: err = %v, want ErrDepth", MaxDepth+1, err)
	}
	if Valid([]byte(deep)) {
		t.Fatal("Valid accepted nesting deeper than MaxDepth")
	}
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Any([]byte(ok)); err != nil {
		t.Fatalf("Any of %d nested arrays: %v", MaxDepth, err)
	}
}

func TestObjectEach(t *testing.T) {
	in := []byte(` {"a": 1, "b\u0062": {"x": [1, "}"]}, "c": "s\"q"} `)
	var keys, vals []string
	err := ObjectEach(in, func(k, v []byte) error {
		keys = append(keys, string(k))
		vals = append(vals, string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "bb", "c"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys = %q, want %q", keys, want)
	}
	if want := []string{`1`, `{"x": [1, "}"]}`, `"s\"q"`}; !reflect.DeepEqual(vals, want) {
		t.Fatalf("values = %q, want %q", vals, want)
	}

	stop := errors.New("stop")
	n := 0
	if err := ObjectEach(in, func(k, v []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: err=%v after %d calls, want stop after 1", err, n)
	}
	for _, bad := range []string{`[]`, `{"a":1`, `{"a":1} x`, `{"a" 1}`, `{a:1}`, `{"a":[}`} {
		if err := ObjectEach([]byte(bad), func(k, v []byte) error { return nil }); !errors.Is(err, ErrSyntax) {
			t.Errorf("ObjectEach(%s) err = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestArrayEach(t *testing.T) {
	var got []string
	if err := ArrayEach([]byte(`[ 1, "a,b", {"k":[2]}, null ]`), func(v []byte) error {
		got = append(got, string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{`1`, `"a,b"`, `{"k":[2]}`, `null`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("elements = %q, want %q", got, want)
	}
	if err := ArrayEach([]byte(`{}`), func(v []byte) error { return nil }); !errors.Is(err, ErrSyntax) {
		t.Fatalf("ArrayEach of an object: err = %v", err)
	}
}

func TestStringFloatKind(t *testing.T) {
	s, err := String([]byte(` "a\u00e9\n" `))
	if err != nil || s != "a\u00e9\n" {
		t.Fatalf("String = %q, %v", s, err)
	}
	if _, err := String([]byte(`12`)); err == nil {
		t.Fatal("String accepted a number")
	}
	b, err := AppendString([]byte("x:"), []byte(`"q\""`))
	if err != nil || string(b) != `x:q"` {
		t.Fatalf("AppendString = %q, %v", b, err)
	}
	f, err := Float([]byte(` -2.5e2 `))
	if err != nil || f != -250 {
		t.Fatalf("Float = %v, %v", f, err)
	}
	if _, err := Float([]byte(`"1"`)); err == nil {
		t.Fatal("Float accepted a string")
	}
	if _, err := Float([]byte(`1e999`)); !errors.Is(err, ErrRange) {
		t.Fatalf("Float(1e999) err = %v, want ErrRange", err)
	}
	kinds := map[string]Kind{`{`: KindObject, ` [`: KindArray, `"`: KindString, `-1`: KindNumber, `7`: KindNumber,
		`true`: KindBool, `f`: KindBool, `null`: KindNull, `x`: KindInvalid, ``: KindInvalid}
	for in, want := range kinds {
		if got := KindOf([]byte(in)); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", in, got, want)
		}
	}
	m, err := Map([]byte(`{"$session_id":"s","n":1}`))
	if err != nil || m["$session_id"] != "s" || m["n"] != float64(1) {
		t.Fatalf("Map = %v, %v", m, err)
	}
	if _, err := Map([]byte(`[1]`)); err == nil {
		t.Fatal("Map accepted an array")
	}
}

func FuzzAny(f *testing.F) {
	for _, c := range differentialCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsEncodingJSON(t, b)
		// ObjectEach and ArrayEach agree with encoding/json on validity of objects and arrays.
		valid := json.Valid(b)
		switch KindOf(b) {
		case KindObject:
			if err := ObjectEach(b, func(k, v []byte) error { return nil }); (err == nil) != valid {
				t.Fatalf("%q: ObjectEach err=%v, json.Valid=%v", b, err, valid)
			}
		case KindArray:
			if err := ArrayEach(b, func(v []byte) error { return nil }); (err == nil) != valid {
				t.Fatalf("%q: ArrayEach err=%v, json.Valid=%v", b, err, valid)
			}
		}
	})
}

func TestPlainRun(t *testing.T) {
	// every position of every special byte, in runs long enough for the eight-byte path
	for _, special := range []byte{'"', '\\', 0x00, 0x1f, 0x80, 0xff} {
		for n := 0; n < 40; n++ {
			b := []byte(strings.Repeat("abcdefgh ~!", 4)[:n] + string([]byte{special}) + "xyz\"")
			if got := plainRun(b, 0); got != n {
				t.Fatalf("plainRun(%q) = %d, want %d", b, got, n)
			}
		}
	}
	plain := []byte(strings.Repeat("plain text 0123456789 ~", 3))
	if got := plainRun(plain, 0); got != len(plain) {
		t.Fatalf("plainRun of plain text = %d, want %d", got, len(plain))
	}
}

func TestValueMembersInPlace(t *testing.T) {
	in := []byte(`{"event":"e","properties":{"a":1,"b":{"c":[true]},"s":"x\"y"},"after":2}`)
	var inner []string
	var after string
	err := Members(in, func(key []byte, v *Value) error {
		switch string(key) {
		case "properties":
			return v.Members(func(k []byte, mv *Value) error {
				raw, err := mv.Raw()
				inner = append(inner, string(k)+"="+string(raw))
				return err
			})
		case "after":
			raw, err := v.Raw()
			after = string(raw)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`a=1`, `b={"c":[true]}`, `s="x\"y"`}; !reflect.DeepEqual(inner, want) {
		t.Fatalf("inner members %q, want %q", inner, want)
	}
	if after != "2" {
		t.Fatalf("member after the nested object: %q", after)
	}
	// a nested syntax error surfaces, and a value read twice gives the same bytes
	bad := []byte(`{"p":{"a":}}`)
	if err := Members(bad, func(k []byte, v *Value) error { return v.Members(func([]byte, *Value) error { return nil }) }); !errors.Is(err, ErrSyntax) {
		t.Fatalf("nested error: %v", err)
	}
	err = Members([]byte(`{"s":"abc"}`), func(k []byte, v *Value) error {
		s, err := v.AppendString(nil)
		if err != nil || string(s) != "abc" {
			t.Fatalf("AppendString = %q, %v", s, err)
		}
		raw, err := v.Raw()
		if err != nil || string(raw) != `"abc"` {
			t.Fatalf("Raw after AppendString = %q, %v", raw, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nested := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1))
	}
	var walk func(v *Value) error
	walk = func(v *Value) error {
		if v.Kind() != KindObject {
			_, err := v.Raw()
			return err
		}
		return v.Members(func(_ []byte, mv *Value) error { return walk(mv) })
	}
	for _, c := range []struct {
		n   int
		err error
	}{{MaxDepth, nil}, {MaxDepth + 1, ErrDepth}} {
		err := Members(nested(c.n), func(_ []byte, v *Value) error { return walk(v) })
		if !errors.Is(err, c.err) || (err == nil) != Valid(nested(c.n)) {
			t.Errorf("walking %d nested objects in place: err = %v, want %v (Valid: %v)", c.n, err, c.err, Valid(nested(c.n)))
		}
	}
}

// TestAppendStringMatchesEncodingJSON checks AppendString, on its own and read in place, against
// encoding/json on strings dense with escapes (the eight-byte copy resolves some of them itself).
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{`""`, `"a"`, `"\""`, `"\\\\"`, `"0123456\"89abcdef\\0123\"\"\"x"`,
		`"{\"uuid\":\"0195\",\"properties\":{\"$os\":\"Mac OS X\",\"title\":\"Pricing – Acme\",\"n\":1}}"`,
		`"\u00e9\ud83d\ude00\ud83d \t\n\/"`, "\"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8 0123456789 \\\" \xc3\"", `"abcdefgh\"ijklmnop\\"`}
	for _, c := range cases {
		var want string
		wantErr := json.Unmarshal([]byte(c), &want)
		got, err := AppendString([]byte("pre"), []byte(c))
		if (err == nil) != (wantErr == nil) || (err == nil && string(got) != "pre"+want) {
			t.Errorf("%s: %q %v, encoding/json %q %v", c, got, err, want, wantErr)
		}
		var inPlace []byte
		err = Members([]byte(`{"k":`+c+`,"z":1}`), func(key []byte, v *Value) error {
			if string(key) == "k" {
				var err error
				inPlace, err = v.AppendString(nil)
				return err
			}
			return nil
		})
		if err != nil || string(inPlace) != want {
			t.Errorf("%s in place: %q %v, want %q", c, inPlace, err, want)
		}
	}
}

// TestAppendMembersAndElementsMatchEach checks the one-pass readers against ObjectEach and ArrayEach:
// the same members and elements, the same errors.
func TestAppendMembersAndElementsMatchEach(t *testing.T) {
	for _, c := range differentialCases {
		b := []byte(c)
		var want [][2]string
		wantErr := ObjectEach(b, func(key, value []byte) error {
			want = append(want, [2]string{string(key), string(value)})
			return nil
		})
		members, err := AppendMembers(nil, b)
		var got [][2]string
		for _, m := range members {
			got = append(got, [2]string{string(m.Key(b)), string(m.Value(b))})
		}
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("%q: AppendMembers error %v, ObjectEach %v", c, err, wantErr)
		} else if err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: AppendMembers %q, ObjectEach %q", c, got, want)
		}
		var wantEls, gotEls []string
		wantErr = ArrayEach(b, func(value []byte) error {
			wantEls = append(wantEls, string(value))
			return nil
		})
		err = Elements(b, func(v *Value) error {
			if strings.HasPrefix(string(v.Bytes()), "{") {
				if _, _, err := v.AppendMembers(nil); err != nil {
					return err
				}
			}
			raw, err := v.Raw()
			if err == nil {
				gotEls = append(gotEls, string(raw))
			}
			return err
		})
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("%q: Elements error %v, ArrayEach %v", c, err, wantErr)
		} else if err == nil && !reflect.DeepEqual(gotEls, wantEls) {
			t.Errorf("%q: Elements %q, ArrayEach %q", c, gotEls, wantEls)
		}
	}
}
