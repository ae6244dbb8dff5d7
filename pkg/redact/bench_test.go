package redact

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// benchStrings are the short strings an event is made of.
var benchStrings = []struct{ name, s string }{
	{"prose", "User clicked Select Pro button on the pricing page"},
	{"path", "/settings/billing"},
	{"url", "https://app.acme.dev/checkout?plan=pro"},
	{"url with query to drop", "https://app.acme.dev/checkout?plan=pro&email=jane%40example.com&ref=x#top"},
	{"uuid", "01959426-703f-7f3a-b1ec-ebbd1410ab41"},
	{"distinct id", "usr_2Qm8xK4p"},
	{"timestamp", "2025-03-14T10:15:02.203Z"},
	{"price", "Pay $49.00"},
	{"user agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36"},
	{"element chain", `button.btn.btn-primary:attr__class="btn btn-primary"nth-child="2"nth-of-type="1"text="Select Pro"`},
	{"exception with email", "Stripe confirmCardPayment failed for jane.doe@example.com: incorrect_number"},
	{"note", "[1] 10:15:02 User opened the pricing page  [2] 10:15:05 User clicked Select Pro button on the pricing page"},
}

func BenchmarkText(b *testing.B) {
	r := New(DefaultConfig())
	for _, bs := range benchStrings {
		b.Run(bs.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bs.s)))
			for b.Loop() {
				r.Text(bs.s)
			}
		})
	}
}

func BenchmarkFind(b *testing.B) {
	for _, bs := range benchStrings {
		b.Run(bs.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Find(bs.s)
			}
		})
	}
}

func BenchmarkURL(b *testing.B) {
	r := New(DefaultConfig())
	for _, u := range []string{"https://app.acme.dev/pricing", "https://app.acme.dev/checkout?plan=pro&coupon=X#top"} {
		b.Run(u, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.URL(u)
			}
		})
	}
}

// BenchmarkValueEvent redacts the properties of one real pageview (about 45 properties): the work
// ingest does per event.
func BenchmarkValueEvent(b *testing.B) {
	r := New(DefaultConfig())
	recs := readJSONLines(b, filepath.Join("..", "..", "testdata", "posthog", "journey_kafka_clickhouse_events_json.jsonl"))
	var props map[string]any
	if err := json.Unmarshal([]byte(recs[0].(map[string]any)["properties"].(string)), &props); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Value(props)
	}
}

// BenchmarkPathological runs inputs built to make a careless scanner quadratic or worse; their cost
// per byte should match ordinary text.
func BenchmarkPathological(b *testing.B) {
	r := New(DefaultConfig())
	inputs := map[string]string{
		"many encoded at signs": strings.Repeat("a%40", 4096),
		"many at signs":         strings.Repeat("a@", 4096),
		"colon runs":            strings.Repeat("1:", 8192),
		"slash runs":            strings.Repeat("a/", 8192),
		"nested urls":           strings.Repeat("https://a.io/?plan=", 512),
		"digit groups":          strings.Repeat("1 ", 8192),
		"secret keys":           strings.Repeat("pwd:", 4096),
		"long word":             strings.Repeat("abcdefgh", 2048),
	}
	for name, s := range inputs {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				r.Text(s)
				r.URL(s)
				Find(s)
			}
		})
	}
}
