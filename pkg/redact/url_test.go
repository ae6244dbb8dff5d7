package redact

import "testing"

func TestURL(t *testing.T) {
	r := New(DefaultConfig())
	for _, tc := range []struct{ name, in, want string }{
		{"clean url unchanged", "https://app.acme.dev/pricing", "https://app.acme.dev/pricing"},
		{"allowed param kept", "https://app.acme.dev/checkout?plan=pro", "https://app.acme.dev/checkout?plan=pro"},
		{"others dropped in order", "https://app.acme.dev/checkout?coupon=X&plan=pro&email=a%40b.io&tab=card&step=2",
			"https://app.acme.dev/checkout?plan=pro&tab=card&step=2"},
		{"all dropped leaves no question mark", "https://app.acme.dev/reset?token=abc&uid=7", "https://app.acme.dev/reset"},
		{"fragment dropped", "https://app.acme.dev/pricing#enterprise", "https://app.acme.dev/pricing"},
		{"fragment with token dropped", "https://app.acme.dev/cb#access_token=abc&state=x", "https://app.acme.dev/cb"},
		{"utm kept", "https://acme.dev/?utm_source=newsletter&utm_medium=email&utm_campaign=spring&fbclid=IwAR0",
			"https://acme.dev/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"},
		{"allowed value still redacted", "https://acme.dev/?utm_source=jane%40example.com&page=2", "https://acme.dev/?utm_source=[email]&page=2"},
		{"param names without case", "https://acme.dev/?PLAN=pro&Tab=a", "https://acme.dev/?PLAN=pro&Tab=a"},
		{"encoded param name", "https://acme.dev/?pl%61n=pro", "https://acme.dev/?pl%61n=pro"},
		{"param without value", "https://acme.dev/?page&debug", "https://acme.dev/?page"},
		{"empty params", "https://acme.dev/?&&plan=pro&", "https://acme.dev/?plan=pro"},
		{"email in path", "https://acme.dev/users/jane.doe@example.com/edit", "https://acme.dev/users/[email]/edit"},
		{"encoded email in path", "/users/jane.doe%40example.com/edit", "/users/[email]/edit"},
		{"token in path", "https://acme.dev/reset/8f14e45fceea167a5a36dedd4bea2543", "https://acme.dev/reset/[token]"},
		{"credentials dropped", "https://admin:s3cret@acme.dev/x", "https://acme.dev/x"},
		{"email as user info dropped", "ftp://jane@example.com@files.acme.dev/a", "ftp://files.acme.dev/a"},
		{"ipv4 host", "http://203.0.113.77:8080/x?plan=a", "http://[ip]:8080/x?plan=a"},
		{"ipv6 host", "http://[2001:db8::1]:8080/a", "http://[ip]:8080/a"},
		{"named host kept", "https://eu.intercom.acme.dev:443/a", "https://eu.intercom.acme.dev:443/a"},
		{"relative", "/checkout?plan=pro&coupon=X#top", "/checkout?plan=pro"},
		{"protocol relative", "//cdn.acme.dev/a.js?v=3&plan=x", "//cdn.acme.dev/a.js?plan=x"},
		{"query only", "?plan=pro&x=1", "?plan=pro"},
		{"bare path", "settings/billing", "settings/billing"},
		{"mailto", "mailto:jane@example.com?subject=hi", "mailto:[email]"},
		{"hash routing", "https://app.acme.dev/#/settings/billing", "https://app.acme.dev/"},
		{"garbage", "not a url ?? # &&", "not a url "},
		{"empty", "", ""},
		{"posthog $current_url", "http://localhost:8000/ingestion/verify?platform=mobile&framework=react_native",
			"http://localhost:8000/ingestion/verify"},
		{"posthog person url", "http://localhost:8000/person/018a981f-4b2d-78ae-947b-bedbaa02a0f4#activeTab=events",
			"http://localhost:8000/person/018a981f-4b2d-78ae-947b-bedbaa02a0f4"},
		{"nested url in allowed value", "https://x.io/r?plan=https://y.io/b?token=1&tab=2", "https://x.io/r?plan=https://y.io/b&tab=2"},
		{"phone in path", "https://acme.dev/call/+49-30-1234567", "https://acme.dev/call/[phone]"},
		{"encoded space before phone", "/search/call%20415-555-0132", "/search/call%20[phone]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.URL(tc.in)
			if got != tc.want {
				t.Fatalf("URL(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			checkRedacted(t, r, tc.in, got)
			if again := r.URL(got); again != got {
				t.Fatalf("URL not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestURLAllowlistFromConfig(t *testing.T) {
	in := "https://acme.dev/a?plan=pro&ref=partner&tab=x"
	for _, tc := range []struct {
		name  string
		allow []string
		want  string
	}{
		{"nil means defaults", nil, "https://acme.dev/a?plan=pro&tab=x"},
		{"custom list", []string{"ref"}, "https://acme.dev/a?ref=partner"},
		{"empty list keeps none", []string{}, "https://acme.dev/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{AllowQueryParams: tc.allow})
			if got := r.URL(in); got != tc.want {
				t.Fatalf("URL(%q) = %q, want %q", in, got, tc.want)
			}
			if got := r.Text("see " + in + " now"); got != "see "+tc.want+" now" {
				t.Fatalf("Text kept a different query: %q", got)
			}
		})
	}
}
