package redact

import (
	"strings"
	"testing"
)

// fuzzSeeds are inputs near every pattern's edges: the fuzzer mutates these.
var fuzzSeeds = []string{
	"",
	"User clicked Select Pro button on the pricing page",
	"Stripe confirmCardPayment failed for jane.doe@example.com: incorrect_number",
	"jane%40example.com",
	"call +49 30 1234567 or (415) 555-0132 or 415-555-0132 or 06 12 34 56 78",
	"card 4242 4242 4242 4242, 378282246310005, 4111-1111-1111-1111 2025",
	"ssn 123-45-6789 AB 12 34 56 C 12345678Z X1234567L RSSMRA85T10A562S 529.982.247-25 046 454 286 2345 6789 0124",
	"DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432",
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
	"Authorization: Bearer abc123def456ghi sk_live_4eC39HqLyjWDarjtT1zdp7dc AKIAIOSFODNN7EXAMPLE",
	"password=hunter2&token=x {\"api_key\": \"abc\"} client_secret: 9f8e7d6c",
	"8f14e45fceea167a5a36dedd4bea2543 wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	"203.0.113.77:8080 2001:db8::1 fe80::1%eth0 ::ffff:192.0.2.1 10:15:02",
	"https://app.acme.dev/checkout?plan=pro&email=jane%40example.com#frag",
	"http://user:pw@[2001:db8::1]:8080/r?plan=https://x.io/a?token=1&tab=b",
	"01959426-703f-7f3a-b1ec-ebbd1410ab41 usr_2Qm8xK4p $49.00 1.418.10 1741947302118 1182",
	"[email] [phone] [card] [national-id] [iban] [token] [ip]",
	"%2B49%2030%201234567 /users/%20415-555-0132/",
	"logo@2x.png a@b.co x@y.com@z.com ..a@b.cd",
}

// checkRedacted asserts the properties every redacted output has: no finding survives and
// redacting again changes nothing.
func checkRedacted(t *testing.T, r *Redactor, in, out string) {
	t.Helper()
	if f := r.Find(out); len(f) > 0 {
		t.Fatalf("findings survive redaction:\n in: %q\nout: %q\n%v", in, out, describe(out, f))
	}
	if again := r.Text(out); again != out {
		t.Fatalf("not idempotent:\n in: %q\nout: %q\nagain: %q", in, out, again)
	}
}

func describe(s string, fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Kind + ": " + s[f.Start:f.End] + "\n")
	}
	return b.String()
}

func FuzzText(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	r := New(DefaultConfig())
	f.Fuzz(func(t *testing.T, s string) {
		out := r.Text(s)
		checkRedacted(t, r, s, out)
		// Findings reported on the input are masked or dropped: their text is gone from the output
		// unless it also occurs elsewhere in the input.
		for _, fd := range Find(s) {
			if fd.Kind == KindURLQuery {
				continue
			}
			v := s[fd.Start:fd.End]
			if len(v) >= 6 && strings.Contains(out, v) && strings.Count(s, v) == 1 {
				t.Fatalf("%s %q survives in %q (input %q)", fd.Kind, v, out, s)
			}
		}
	})
}

func FuzzURL(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, s := range []string{
		"/checkout?plan=pro", "https://app.acme.dev/pricing#top", "//cdn.acme.dev/a?x=1", "?", "#", "?&&=&plan",
		"mailto:jane@example.com?subject=hi", "https://jane@example.com:pw@host/", "http://[::1", "a://b?c#d?e",
	} {
		f.Add(s)
	}
	r := New(DefaultConfig())
	f.Fuzz(func(t *testing.T, s string) {
		out := r.URL(s)
		checkRedacted(t, r, s, out)
		if again := r.URL(out); again != out {
			t.Fatalf("URL not idempotent:\n in: %q\nout: %q\nagain: %q", s, out, again)
		}
		if strings.Contains(out, "#") {
			t.Fatalf("URL kept a fragment: %q -> %q", s, out)
		}
	})
}
