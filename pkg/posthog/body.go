package posthog

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// Compression hints that change how a payload is read. Requests carry others too (gzip, gzip-js,
// base64, b64), which need no hint: gzip is detected by its magic bytes and base64 by its alphabet.
const (
	CompressionLZ64     = "lz64"
	CompressionLZString = "lz-string"
)

// maxLayers bounds how many encodings may wrap one payload (form → base64 → gzip is three).
const maxLayers = 4

// UnwrapBody removes the encodings PostHog SDKs put around a capture payload until JSON remains:
// gzip (by its magic bytes, whatever the hints say), form bodies `data=<payload>&compression=…`
// (with '+' restored where form decoding turned it into a space), base64 (standard or URL alphabet,
// padded or not) and lz-string base64 (lz64; by hint, or when base64 does not give JSON). compression
// is the request's hint, "" when none. Nothing inflates beyond maxSize bytes (ErrTooLarge): a
// decompression bomb is refused after reading at most maxSize+1 bytes of it.
func UnwrapBody(body []byte, compression string, maxSize int64) ([]byte, error) {
	hint := strings.ToLower(strings.TrimSpace(compression))
	for layer := 0; layer < maxLayers; layer++ {
		lead := body[jsonscan.SkipSpace(body, 0):]
		if isGzip(lead) {
			// binary: never trimmed at the end, where a byte may look like whitespace
			out, err := Gunzip(lead, maxSize)
			if err != nil {
				return nil, err
			}
			body = out
			continue
		}
		b := jsonscan.TrimSpace(lead)
		if len(b) == 0 {
			return nil, malformed("empty payload", nil)
		}
		switch {
		case b[0] == '{' || b[0] == '[':
			return b, nil
		case isForm(b):
			data, formHint, err := formData(b)
			if err != nil {
				return nil, err
			}
			if formHint != "" {
				hint = strings.ToLower(formHint)
			}
			body = data
			continue
		case hint == CompressionLZ64 || hint == CompressionLZString:
			out, err := DecompressLZBase64(string(b), maxSize)
			if err != nil {
				return nil, err
			}
			hint = ""
			body = out
			continue
		}
		decoded, ok := decodeBase64(b)
		if !ok {
			return nil, malformed("payload is neither JSON, gzip, form nor base64", nil)
		}
		if looksDecoded(decoded) {
			body = decoded
			continue
		}
		// base64 that does not hold JSON: lz-string from an SDK that did not say so
		out, err := DecompressLZBase64(string(b), maxSize)
		if err != nil || !looksDecoded(out) {
			return nil, malformed("base64 payload holds neither JSON nor gzip", nil)
		}
		body = out
	}
	return nil, malformed("too many layers of encoding", nil)
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// looksDecoded reports whether b starts like JSON or gzip.
func looksDecoded(b []byte) bool {
	b = jsonscan.TrimSpace(b)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[' || isGzip(b))
}

// isForm reports whether b is an urlencoded form with a data field.
func isForm(b []byte) bool {
	return bytes.HasPrefix(b, []byte("data=")) || bytes.Contains(b, []byte("&data="))
}

// formData returns the data field of an urlencoded form body and its compression field.
func formData(b []byte) (data []byte, compression string, err error) {
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, "", malformed("form body", err)
	}
	d := form.Get("data")
	if d == "" {
		return nil, "", malformed("form body without data", nil)
	}
	// base64's '+' arrives as a space when the client did not percent-encode it
	return []byte(strings.ReplaceAll(d, " ", "+")), form.Get("compression"), nil
}

func decodeBase64(b []byte) ([]byte, bool) {
	s := strings.TrimRight(string(b), "=")
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', ' ', '\t':
			return -1
		case '-':
			return '+'
		case '_':
			return '/'
		}
		return r
	}, s)
	out, err := base64.RawStdEncoding.DecodeString(s)
	return out, err == nil && len(out) > 0
}

// Gunzip inflates a gzip payload (one or more members), refusing to produce more than maxSize bytes.
func Gunzip(b []byte, maxSize int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, malformed("gzip header", err)
	}
	defer zr.Close()
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(zr, maxSize+1))
	if err != nil {
		return nil, malformed("gzip body", err)
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: gzip payload inflates beyond %d bytes", ErrTooLarge, maxSize)
	}
	return out.Bytes(), nil
}
