package posthog

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// lzVectors are lz-string 1.5.0 compressToBase64 outputs, made with the JavaScript library itself.
var lzVectors = []struct{ plain, compressed string }{
	{`[{"event":"$pageview","properties":{"distinct_id":"abc","token":"phc_x","$current_url":"https://app.acme.dev/pricing","title":"Pricing – Acme 😀"}}]`,
		"NobwRApgbhB2AuYBcYAkAHAhgc2gSwgHcwAaMdAJwHt0IL4CBnZcAEz0YdgGN4B9PK2RhMAI26kw8KgGs4w9AAtufAB6TU3AK4UKcfjoA2wxfHjpGSAPRXM6dADpM3ALYQHraFcp5ueWNiSDPCGEMIAChS+/tgABIDIBLEAgq4QsYC8G4AAe2AAvjkAukA=="},
	{strings.Repeat("a", 80), "IY18ZXTtyQ=="},
	{"{}", "N4XyA==="},
}

func TestDecompressLZBase64(t *testing.T) {
	for _, v := range lzVectors {
		got, err := DecompressLZBase64(v.compressed, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", v.compressed, err)
		}
		if string(got) != v.plain {
			t.Fatalf("%s: got %q, want %q", v.compressed, got, v.plain)
		}
	}
	if _, err := DecompressLZBase64(lzVectors[1].compressed, 40); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("80 bytes under a 40-byte limit: err = %v, want ErrTooLarge", err)
	}
	for _, bad := range []string{"", "!!!!", "NobwRApgbhB2AuYB"} {
		if _, err := DecompressLZBase64(bad, 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecompressLZBase64(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestUnwrapBody(t *testing.T) {
	event := []byte(`{"event":"$pageview","properties":{"distinct_id":"d1","token":"phc_x"}}`)
	// a payload whose base64 has '+' and '/' in it
	plus := []byte(`{"event":"x>>?","properties":{"distinct_id":"~~~>>>???","token":"phc_x"}}`)
	std := base64.StdEncoding.EncodeToString(plus)
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test payload has no '+' or '/' in base64: %s", std)
	}
	for _, c := range []struct {
		name, hint string
		body       []byte
		want       []byte
	}{
		{"json", "", event, event},
		{"json with whitespace", "", append([]byte("\n  "), event...), event},
		{"gzip, no hint", "", gzipBytes(t, event), event},
		{"gzip after leading whitespace", "", append([]byte("\r\n"), gzipBytes(t, event)...), event},
		{"gzip under a wrong hint", "base64", gzipBytes(t, event), event},
		{"base64", "", []byte(base64.StdEncoding.EncodeToString(event)), event},
		{"base64 unpadded, URL alphabet", "", []byte(base64.RawURLEncoding.EncodeToString(plus)), plus},
		{"form base64, + percent-encoded", "", []byte("data=" + url.QueryEscape(std)), plus},
		{"form base64, + sent raw (read as space)", "", []byte("data=" + std + "&ver=1.78.5"), plus},
		{"form base64 of gzip", "", []byte("compression=gzip-js&data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(gzipBytes(t, event)))), event},
		{"form json", "", []byte("data=" + url.QueryEscape(string(event))), event},
		{"lz64 by hint", "lz64", []byte(lzVectors[0].compressed), []byte(lzVectors[0].plain)},
		{"lz64 by form field", "", []byte("compression=lz64&data=" + url.QueryEscape(lzVectors[0].compressed)), []byte(lzVectors[0].plain)},
		{"lz64 without a hint", "", []byte(lzVectors[0].compressed), []byte(lzVectors[0].plain)},
	} {
		got, err := UnwrapBody(c.body, c.hint, 1<<20)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", "   ", "hello world", "data=", "\x1f\x8bnot gzip", "%%%"} {
		if _, err := UnwrapBody([]byte(bad), "", 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("UnwrapBody(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

// gzipBomb returns a gzip payload of n MiB of zeros: one member of 1 MiB (about 1 KiB compressed)
// repeated, which gzip readers inflate one after another.
func gzipBomb(tb testing.TB, n int) []byte {
	tb.Helper()
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyN(zw, zeroReader{}, 1<<20); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), n)
}

func TestUnwrapBodyRefusesBomb(t *testing.T) {
	bomb := gzipBomb(t, 24)
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb of %d bytes is no bomb", len(bomb))
	}
	if _, err := UnwrapBody(bomb, "", 2<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("gzip bomb: err = %v, want ErrTooLarge", err)
	}
	wrapped := []byte("data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(bomb)))
	if _, err := UnwrapBody(wrapped, "", 2<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("gzip bomb in a form: err = %v, want ErrTooLarge", err)
	}
	if _, err := Decode(bomb, processingTime); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of a gzip bomb over MaxPayloadSize: err = %v, want ErrTooLarge", err)
	}
	// a payload that inflates to exactly the limit is fine
	small := gzipBomb(t, 1)
	if _, err := Gunzip(small, 1<<20); err != nil {
		t.Fatalf("1 MiB under a 1 MiB limit: %v", err)
	}
	if _, err := Gunzip(small, 1<<20-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 MiB under a 1 MiB - 1 limit: err = %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func FuzzUnwrapBody(f *testing.F) {
	event := []byte(`{"event":"e","properties":{"distinct_id":"d"}}`)
	f.Add(event, "")
	f.Add(gzipBytes(f, event), "gzip-js")
	f.Add([]byte(base64.StdEncoding.EncodeToString(event)), "base64")
	f.Add([]byte("data="+url.QueryEscape(base64.StdEncoding.EncodeToString(event))), "")
	f.Add([]byte(lzVectors[0].compressed), "lz64")
	f.Add([]byte(lzVectors[2].compressed), "")
	f.Fuzz(func(t *testing.T, body []byte, hint string) {
		const limit = 1 << 16
		out, err := UnwrapBody(body, hint, limit)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if int64(len(out)) > limit && !bytes.Equal(out, bytes.TrimSpace(body)) {
			t.Fatalf("inflated to %d bytes over a %d limit", len(out), limit)
		}
		if c := out[0]; c != '{' && c != '[' {
			t.Fatalf("unwrapped to %q", out)
		}
	})
}

func FuzzDecompressLZBase64(f *testing.F) {
	for _, v := range lzVectors {
		f.Add(v.compressed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const limit = 1 << 16
		out, err := DecompressLZBase64(s, limit)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(out) > 2*limit { // UTF-8 of at most limit/2 UTF-16 units
			t.Fatalf("%d bytes out under a %d limit", len(out), limit)
		}
	})
}
