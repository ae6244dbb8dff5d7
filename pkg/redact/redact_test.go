package redact

import (
	"slices"
	"testing"
)

// textCase is one Text input and the output it must give.
type textCase struct {
	name, in, want string
}

func runTextCases(t *testing.T, cases []textCase) {
	t.Helper()
	r := New(DefaultConfig())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Text(tc.in)
			if got != tc.want {
				t.Fatalf("Text(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			checkRedacted(t, r, tc.in, got)
			if tc.in == tc.want {
				if f := Find(tc.in); len(f) > 0 {
					t.Fatalf("Find(%q) reports %v on text Text leaves alone", tc.in, describe(tc.in, f))
				}
			} else if len(Find(tc.in)) == 0 {
				t.Fatalf("Text changed %q but Find reports nothing", tc.in)
			}
		})
	}
}

func TestTextEmail(t *testing.T) {
	runTextCases(t, []textCase{
		{"plain", "jane.doe@example.com", "[email]"},
		{"in prose", "Stripe confirmCardPayment failed for jane.doe@example.com: incorrect_number",
			"Stripe confirmCardPayment failed for [email]: incorrect_number"},
		{"plus tag and subdomain", "mail j.doe+billing@mail.acme.co.uk now", "mail [email] now"},
		{"upper case", "JANE@EXAMPLE.COM", "[email]"},
		{"mailto", "mailto:jane@example.com", "mailto:[email]"},
		{"angle brackets", "Jane <jane@example.com>", "Jane <[email]>"},
		{"url encoded", "/users/jane.doe%40example.com/edit", "/users/[email]/edit"},
		{"end of sentence", "write to support@acme.dev.", "write to [email]."},
		{"two addresses", "a@b.io,c@d.io", "[email],[email]"},
		{"punycode domain", "x@xn--bcher-kva.example", "[email]"},
		{"international local part", "josé@example.com", "[email]"},
		{"numeric local part", "4155550132@example.com", "[email]"},
		// Near misses.
		{"retina asset", "logo@2x.png and icon@3x.webp", "logo@2x.png and icon@3x.webp"},
		{"no domain dot", "user@localhost", "user@localhost"},
		{"css at-rule", "@media (min-width: 768px) { a { color: red } }", "@media (min-width: 768px) { a { color: red } }"},
		{"mention", "ask @jane about it", "ask @jane about it"},
		{"numeric tld", "a@b.123", "a@b.123"},
	})
}

func TestTextPhone(t *testing.T) {
	runTextCases(t, []textCase{
		{"german international", "call +49 30 1234567 today", "call [phone] today"},
		{"us parenthesised", "(415) 555-0132", "[phone]"},
		{"us dashed", "415-555-0132", "[phone]"},
		{"us dotted", "415.555.0132", "[phone]"},
		{"us spaced", "415 555 0132", "[phone]"},
		{"us with country code", "1-415-555-0132 or +1 415 555 0132", "[phone] or [phone]"},
		{"uk trunk in parentheses", "+44 (0)20 7946 0958", "[phone]"},
		{"e164", "+14155550132", "[phone]"},
		{"double zero prefix", "0049 30 1234567", "[phone]"},
		{"french national", "06 12 34 56 78", "[phone]"},
		{"german national", "030 1234567 or 030/1234567", "[phone] or [phone]"},
		{"uk national", "020 7946 0958", "[phone]"},
		{"list", "415-555-0132,415-555-0199", "[phone],[phone]"},
		{"followed by more digits", "+49 30 1234567 11822222", "[phone] 11822222"},
		{"tel link", "tel:+49301234567", "tel:[phone]"},
		// Near misses.
		{"order number", "order 1182 shipped", "order 1182 shipped"},
		{"ten bare digits", "id 4155550132", "id 4155550132"},
		{"area code starting with 1", "115-555-0132", "115-555-0132"},
		{"iso date", "2025-03-14", "2025-03-14"},
		{"date and hour", "01 02 2025 14:30", "01 02 2025 14:30"},
		{"date with slashes", "05/12/2025", "05/12/2025"},
		{"timezone offset", "2025-03-14T10:15:02+01:00", "2025-03-14T10:15:02+01:00"},
		{"plus a few digits", "+1 vote, +12 345", "+1 vote, +12 345"},
		{"isbn", "ISBN 0-306-40615-2", "ISBN 0-306-40615-2"},
		{"bare double zero run", "ref 004930123456", "ref 004930123456"},
	})
}

func TestTextCard(t *testing.T) {
	runTextCases(t, []textCase{
		{"visa spaced", "card 4242 4242 4242 4242 declined", "card [card] declined"},
		{"visa dashed", "4111-1111-1111-1111", "[card]"},
		{"visa bare", "4111111111111111", "[card]"},
		{"amex bare", "378282246310005", "[card]"},
		{"amex grouped", "3782 822463 10005", "[card]"},
		{"mastercard 2-series", "2223003122003222", "[card]"},
		{"discover", "6011111111111117", "[card]"},
		{"diners 14", "30569309025904", "[card]"},
		{"visa 13", "4222222222222", "[card]"},
		{"visa 19", "4111111111111111003", "[card]"},
		{"grouped then a year", "4111 1111 1111 1111 2025", "[card] 2025"},
		{"json value", `{"number":"5555555555554444"}`, `{"number":"[card]"}`},
		{"hash prefix", "#4111111111111111", "#[card]"},
		// Near misses.
		{"luhn invalid", "4111 1111 1111 1112", "4111 1111 1111 1112"},
		{"luhn invalid bare", "4111111111111112", "4111111111111112"},
		{"millisecond timestamp", "1741947302118", "1741947302118"},
		{"fifteen digit id", "conversation 215468321685437", "conversation 215468321685437"},
		{"twenty digits", "41111111111111111111", "41111111111111111111"},
		{"inside a word", "x4111111111111111", "x4111111111111111"},
		{"price", "Pay $49.00", "Pay $49.00"},
	})
}

func TestTextNationalID(t *testing.T) {
	runTextCases(t, []textCase{
		{"us ssn", "SSN 123-45-6789.", "SSN [national-id]."},
		{"us ssn spaced", "123 45 6789", "[national-id]"},
		{"uk nino", "NI AB123456C", "NI [national-id]"},
		{"uk nino spaced", "QQ 12 34 56 C", "[national-id]"},
		{"uk nino six digits", "AB 123456 C", "[national-id]"},
		{"spanish dni", "DNI 12345678Z", "DNI [national-id]"},
		{"spanish dni dash", "12345678-Z", "[national-id]"},
		{"spanish nie", "X1234567L", "[national-id]"},
		{"italian codice fiscale", "CF RSSMRA85T10A562S", "CF [national-id]"},
		{"brazilian cpf", "CPF 529.982.247-25", "CPF [national-id]"},
		{"canadian sin", "SIN 046-454-286", "SIN [national-id]"},
		{"indian aadhaar", "2345 6789 0124", "[national-id]"},
		// Near misses.
		{"ssn area 000", "000-12-3456", "000-12-3456"},
		{"ssn area 666", "666-12-3456", "666-12-3456"},
		{"ssn area 9xx", "912-12-3456", "912-12-3456"},
		{"ssn group 00", "123-00-4567", "123-00-4567"},
		{"nino bad prefix", "GB123456C", "GB123456C"},
		{"nino bad suffix", "AB123456E", "AB123456E"},
		{"nino without suffix", "AB123456", "AB123456"},
		{"dni wrong letter", "12345678A", "12345678A"},
		{"nie wrong letter", "X1234567A", "X1234567A"},
		{"codice fiscale wrong check", "RSSMRA85T10A562X", "RSSMRA85T10A562X"},
		{"cpf wrong check", "529.982.247-26", "529.982.247-26"},
		{"cpf repeated digits", "111.111.111-11", "111.111.111-11"},
		{"sin luhn invalid", "046-454-287", "046-454-287"},
		{"aadhaar starting with 1", "1234 5678 9012", "1234 5678 9012"},
		{"aadhaar check invalid", "2345 6789 0125", "2345 6789 0125"},
	})
}

func TestTextIBAN(t *testing.T) {
	runTextCases(t, []textCase{
		{"german grouped", "IBAN DE89 3704 0044 0532 0130 00.", "IBAN [iban]."},
		{"british compact", "GB82WEST12345698765432", "[iban]"},
		{"dutch grouped", "NL91 ABNA 0417 1643 00", "[iban]"},
		{"belgian, length a multiple of four", "BE68 5390 0754 7034 then", "[iban] then"},
		{"norwegian shortest", "NO9386011117947", "[iban]"},
		{"lower case grouped", "de89 3704 0044 0532 0130 00", "[iban]"},
		// Near misses.
		{"bad check digits", "DE88370400440532013000", "DE88370400440532013000"},
		{"bad check digits grouped", "GB81 WEST 1234 5698 7654 32", "GB81 WEST 1234 5698 7654 32"},
		{"not an iban country", "QQ89370400440532013000", "QQ89370400440532013000"},
		{"too short", "DE89 3704", "DE89 3704"},
		{"lower case compact is a hex id", "ae19fdc2a9962ae5 ad44fe7f02800c86", "ae19fdc2a9962ae5 ad44fe7f02800c86"},
	})
}

func TestTextToken(t *testing.T) {
	runTextCases(t, []textCase{
		{"jwt", "token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U here",
			"token [token] here"},
		{"unsigned jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[token]"},
		{"bearer", "Authorization: Bearer abc123def456ghi", "Authorization: Bearer [token]"},
		{"basic", "authorization: basic dXNlcjpwYXNzd29yZA==", "authorization: basic [token]"},
		{"stripe secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[token]"},
		{"stripe test publishable", "pk_test_TYooMQauvdEDq54NiTphI7jx", "[token]"},
		{"posthog project key", "phc_Xq4T7mVb2LkP9sWcY3nH8dRf6JzA1eGuKo5iMtBw0Nv", "[token]"},
		{"posthog personal key", "phx_2mK9sLqP4vR7tW1xY3zA5bC8dE0fG6hJ", "[token]"},
		{"github", "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "[token]"},
		{"github fine grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[token]"},
		{"slack", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "[token]"},
		{"aws access key id", "AKIAIOSFODNN7EXAMPLE", "[token]"},
		{"aws secret key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "[token]"},
		{"google api key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "[token]"},
		{"openai", "sk-proj-abcdEFGH1234ijklMNOP5678qrst", "[token]"},
		{"md5 hex", "reset/8f14e45fceea167a5a36dedd4bea2543", "reset/[token]"},
		{"sha256 hex", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "[token]"},
		{"two hex segments", "a_8f14e45fceea167a5a36dedd4bea2543_c9f0f895fb98ab9159f51fd0297e236d",
			"a_[token]_[token]"},
		{"stripe client secret", "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH", "[token]"},
		{"password assignment", "login failed password=hunter2 retry", "login failed password=[token] retry"},
		{"json secret", `{"api_key": "abc", "client_secret":"s3cr3t"}`, `{"api_key": "[token]", "client_secret":"[token]"}`},
		{"colon secret with digits", "db_password: hunter2", "db_password: [token]"},
		{"header api key", "x-api-key=Zm9vYmFy", "x-api-key=[token]"},
		{"cvv", "cvv=123", "cvv=[token]"},
		// Near misses.
		{"distinct id", "usr_2Qm8xK4p", "usr_2Qm8xK4p"},
		{"stripe object id", "cus_NffrFeUfNV2Hib pi_3MtwBwLkdIwHu7ix28a3tqPa", "cus_NffrFeUfNV2Hib pi_3MtwBwLkdIwHu7ix28a3tqPa"},
		{"insert id", "78b69a3041087b06", "78b69a3041087b06"},
		{"uuid", "01959426-703f-7f3a-b1ec-ebbd1410ab41", "01959426-703f-7f3a-b1ec-ebbd1410ab41"},
		{"upper case uuid", "01959426-703F-7F3A-B1EC-EBBD1410AB41", "01959426-703F-7F3A-B1EC-EBBD1410AB41"},
		{"bearer in prose", "the bearer of bad news", "the bearer of bad news"},
		{"basic in prose", "basic functionality, basic plan", "basic functionality, basic plan"},
		{"password prose", "Password: must be 8 characters", "Password: must be 8 characters"},
		{"token prose", "Token: expired", "Token: expired"},
		{"long camel case", "handleCheckoutSubmitButtonClick2024Event", "handleCheckoutSubmitButtonClick2024Event"},
		{"user agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36"},
		{"path with uuid and date", "/project/2/events/01959426-70e6-7711-97f7-72ab8b560162/2025-03-14T10%3A15%3A02.203Z",
			"/project/2/events/01959426-70e6-7711-97f7-72ab8b560162/2025-03-14T10%3A15%3A02.203Z"},
		{"short prefixed", "sk_live_mode is off", "sk_live_mode is off"},
		{"llm usage", "max_tokens=100 total_tokens=42", "max_tokens=100 total_tokens=42"},
		{"thirty-two digits", "12345678901234567890123456789012", "12345678901234567890123456789012"},
		{"asset hash", "/assets/checkout-8f2c1a.js", "/assets/checkout-8f2c1a.js"},
	})
}

func TestTextIP(t *testing.T) {
	runTextCases(t, []textCase{
		{"ipv4", "from 203.0.113.77", "from [ip]"},
		{"ipv4 with port", "203.0.113.77:8080", "[ip]:8080"},
		{"ipv4 end of sentence", "blocked 192.168.1.20.", "blocked [ip]."},
		{"ipv6 compressed", "2001:db8::1", "[ip]"},
		{"ipv6 full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[ip]"},
		{"ipv6 link local with zone", "fe80::1%eth0 up", "[ip] up"},
		{"ipv4 mapped", "::ffff:192.0.2.1", "[ip]"},
		{"ipv6 in brackets", "[2001:db8::1]:443", "[[ip]]:443"},
		// Near misses.
		{"version", "1.418.10", "1.418.10"},
		{"chrome version", "Chrome/134.0.0.0", "Chrome/134.0.0.0"},
		{"windows build", "10.0.19045.3803", "10.0.19045.3803"},
		{"leading zeros", "01.02.03.04", "01.02.03.04"},
		{"octet over 255", "256.1.1.1", "256.1.1.1"},
		{"five parts", "1.2.3.4.5", "1.2.3.4.5"},
		{"time", "[1] 10:15:02 User opened the pricing page", "[1] 10:15:02 User opened the pricing page"},
		{"time with fraction", "10:15:02.203", "10:15:02.203"},
		{"cpp scope", "std::vector a::b", "std::vector a::b"},
		{"mac address", "00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E"},
		{"loopback shorthand", "::1", "::1"},
	})
}

func TestTextLeavesOrdinaryTextAlone(t *testing.T) {
	var cases []textCase
	for _, s := range []string{
		"User clicked Select Pro button on the pricing page",
		"User hit an error on the checkout page: card validation failed",
		"[1] 10:15:02 User opened the pricing page  [2] 10:15:05 User clicked Select Pro",
		"Pay $49.00 — €1,299.99 — £9 per month",
		"2025-03-14T10:15:02.203Z 2025-03-14 10:15:02.203000 1741947302.118 1741947302118",
		"posthog-js 1.418.10, Safari/537.36, v2.14",
		"order 1182, invoice #20250314-0042, 3 items",
		"01959426-703f-7f3a-b1ec-ebbd1410ab41 usr_2Qm8xK4p $anon_distinct_id",
		"color: #ff00aa; margin: 0 auto; box-shadow: 0 0 0 1px rgba(16,22,26,.15); transform: translate(-50%, -50%)",
		"button.btn.btn-primary:nth-child(2) > span.css-1x2y3z4 MuiButton-containedPrimary",
		"The user navigated to the pricing page, selected the Pro plan, and hit a payment validation error.",
		"https://app.acme.dev/checkout?plan=pro",
		"https://app.acme.dev/settings/billing",
		"",
	} {
		cases = append(cases, textCase{name: s, in: s, want: s})
	}
	runTextCases(t, cases)
}

func TestTextEmbeddedURLs(t *testing.T) {
	runTextCases(t, []textCase{
		{"query dropped, allowed kept", "see https://app.acme.dev/checkout?plan=pro&email=jane%40example.com&token=abc#frag now",
			"see https://app.acme.dev/checkout?plan=pro now"},
		{"credentials and ip host", "GET http://user:pw@10.0.0.5:8080/x?tab=a failed", "GET http://[ip]:8080/x?tab=a failed"},
		{"trailing punctuation", "Open https://x.io/a?ref=abc.", "Open https://x.io/a."},
		{"in parentheses", "(https://x.io/a?utm_source=mail&uid=7)", "(https://x.io/a?utm_source=mail)"},
		{"nested url in an allowed value", "https://x.io/r?plan=https://y.io/b?token=1", "https://x.io/r?plan=https://y.io/b"},
		{"fragment only", "https://x.io/#/settings/billing", "https://x.io/"},
		{"two urls", "https://a.io/?x=1 and https://b.io/?y=2", "https://a.io/ and https://b.io/"},
		{"other scheme", "myapp://reset?code=123456", "myapp://reset"},
	})
}

func TestFindReportsKindsAndOffsets(t *testing.T) {
	s := "mail jane@example.com, call +49 30 1234567 from 203.0.113.77 with 4242 4242 4242 4242"
	got := Find(s)
	want := []Finding{
		{Kind: KindEmail, Start: 5, End: 21},
		{Kind: KindPhone, Start: 28, End: 42},
		{Kind: KindIP, Start: 48, End: 60},
		{Kind: KindCard, Start: 66, End: 85},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Find = %v\nwant %v", got, want)
	}
	for _, f := range got {
		t.Logf("%s %q", f.Kind, s[f.Start:f.End])
	}
}

func TestFindURLQuery(t *testing.T) {
	s := "https://x.io/a?plan=pro&coupon=X#top"
	got := Find(s)
	want := []Finding{
		{Kind: KindURLQuery, Start: 24, End: 32},
		{Kind: KindURLQuery, Start: 32, End: 36},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Find(%q) = %v, want %v", s, got, want)
	}
	// A redactor that allows coupon reports only the fragment.
	r := New(Config{AllowQueryParams: []string{"plan", "coupon"}})
	if got := r.Find(s); !slices.Equal(got, want[1:]) {
		t.Fatalf("r.Find(%q) = %v, want %v", s, got, want[1:])
	}
	if got := r.Text(s); got != "https://x.io/a?plan=pro&coupon=X" {
		t.Fatalf("r.Text(%q) = %q", s, got)
	}
}

func TestMaskNames(t *testing.T) {
	for kind, want := range map[string]string{
		KindEmail: "[email]", KindPhone: "[phone]", KindCard: "[card]", KindNationalID: "[national-id]",
		KindIBAN: "[iban]", KindToken: "[token]", KindIP: "[ip]",
	} {
		if got := Mask(kind); got != want {
			t.Errorf("Mask(%q) = %q, want %q", kind, got, want)
		}
		if n := maskLiteralLen(want+" tail", 0); n != len(want) {
			t.Errorf("maskLiteralLen(%q) = %d, want %d", want, n, len(want))
		}
	}
}

// TestRedactorConcurrentUse runs one Redactor from many goroutines (meaningful under -race) and
// checks each gets the answers a lone caller gets.
func TestRedactorConcurrentUse(t *testing.T) {
	r := New(DefaultConfig())
	want := make([]string, len(fuzzSeeds))
	for i, s := range fuzzSeeds {
		want[i] = r.Text(s) + "|" + r.URL(s)
	}
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i, s := range fuzzSeeds {
				if got := r.Text(s) + "|" + r.URL(s); got != want[i] {
					errs <- got
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 8; g++ {
		if got := <-errs; got != "" {
			t.Fatalf("concurrent result differs: %q", got)
		}
	}
}
