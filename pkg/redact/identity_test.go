package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestEmailHash(t *testing.T) {
	want := "h:" + sha256Hex("jane.doe@example.com")
	for _, in := range []string{"jane.doe@example.com", "  Jane.Doe@Example.COM\n"} {
		if got := EmailHash(in); got != want {
			t.Errorf("EmailHash(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"", "   "} {
		if got := EmailHash(in); got != "" {
			t.Errorf("EmailHash(%q) = %q, want empty", in, got)
		}
	}
	if EmailHash("a@b.io") == EmailHash("c@b.io") {
		t.Error("different addresses hash alike")
	}
}

// TestIdentityHashesPassRedaction checks that the hashes this package writes into messages are not
// themselves reported or masked as secrets, while a bare digest still is.
func TestIdentityHashesPassRedaction(t *testing.T) {
	r := New(DefaultConfig())
	h := EmailHash("jane.doe@example.com")
	for _, s := range []string{h, `{"email_hash":"` + h + `","distinct_id":"` + IdentityKey("jane.doe@example.com") + `"}`} {
		if got := r.Text(s); got != s {
			t.Errorf("Text(%q) = %q", s, got)
		}
		if f := Find(s); len(f) > 0 {
			t.Errorf("Find(%q) = %v", s, f)
		}
	}
	digest := h[len("h:"):]
	if got := r.Text("x:" + digest); got != "x:[token]" {
		t.Errorf("a digest outside an identity hash is a token: %q", got)
	}
}

func TestIdentityKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"jane.doe@example.com", EmailHash("jane.doe@example.com")},
		{" Jane.Doe@Example.com ", EmailHash("jane.doe@example.com")},
		{"someone@example.com", "h:" + sha256Hex("someone@example.com")},
		{"+1 415 555 0132", "h:" + sha256Hex("+1 415 555 0132")},
		{"+14155550132", "h:" + sha256Hex("+14155550132")},
		{"(415) 555-0132", "h:" + sha256Hex("(415) 555-0132")},
		{"user:jane@example.com", "h:" + sha256Hex("user:jane@example.com")},
		{"jane@localhost", "h:" + sha256Hex("jane@localhost")},
		{"jane%40example.com", "h:" + sha256Hex("jane%40example.com")},
		// Ids that are not personal data pass unchanged.
		{"usr_2Qm8xK4p", "usr_2Qm8xK4p"},
		{"01959426-703e-763a-8dbe-41488fb87214", "01959426-703e-763a-8dbe-41488fb87214"},
		{"4155550132", "4155550132"},
		{"1182", "1182"},
		{"order 415", "order 415"},
		{"h:" + sha256Hex("x@y.io"), "h:" + sha256Hex("x@y.io")},
		{"", ""},
		{"  ", "  "},
	} {
		if got := IdentityKey(tc.in); got != tc.want {
			t.Errorf("IdentityKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
func TestPseudonymHashesIdsHoldingPersonalData(t *testing.T) {
	hash := func(v string) string { return EmailHash(v) }
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"usr_4821", "usr_4821"},
		{"0195aaaa-0000-7000-8000-000000000001", "0195aaaa-0000-7000-8000-000000000001"},
		{" Ana@Example.com ", hash("ana@example.com")},
		{"+1 415 555 0134", hash("+1 415 555 0134")},
		{"4111111111111111", hash("4111111111111111")},
		{"123-45-6789", hash("123-45-6789")},
	} {
		if got := Pseudonym(c.in); got != c.want {
			t.Errorf("Pseudonym(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if Pseudonym("ana@example.com") != IdentityKey("ana@example.com") {
		t.Error("an email's pseudonym differs from its identity key: the linker could not match it")
	}
}
