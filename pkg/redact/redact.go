// Package redact owns PII redaction: it finds and masks personal data and secrets in free text,
// URLs and JSON-like values before anything leaves ingest, and it exports the detector (Find) that
// tests use to prove nothing of the kind survives into a produced message, note or summary.
//
// Text masks emails, phone numbers, Luhn-valid card numbers, national ids (US SSN, UK NINO,
// Canadian SIN, Spanish DNI/NIE, Italian codice fiscale, Brazilian CPF, Indian Aadhaar), mod-97
// valid IBANs, tokens and secrets (JWTs, bearer/basic credentials, vendor API keys, values of
// secret-named keys, long high-entropy hex and base64) and IP addresses, each as "[kind]". URL
// drops fragments and every query parameter not on an allowlist. Ordinary prose, prices, dates,
// timestamps, version numbers, uuids, short ids and order numbers are left as they are.
//
// The detector is a hand-written single-pass scanner behind a pre-scan, not a set of regular
// expressions, because it runs on every property of every event.
package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/threadline/threadline/pkg/config"
)

// Config configures a Redactor.
type Config struct {
	// AllowQueryParams names the URL query parameters URL and Text keep (compared without regard to
	// case; their values are still redacted); every other parameter is dropped. Nil means the
	// defaults (DefaultConfig); an empty, non-nil list keeps none.
	AllowQueryParams []string
}

// DefaultConfig returns the defaults: the query parameters that name a place in the product or a
// campaign and never a person.
func DefaultConfig() Config {
	return Config{AllowQueryParams: defaultAllowQueryParams()}
}

// RegisterFlags registers the redaction flags on fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	config.StringListVar(fs, &c.AllowQueryParams, "redact.allow-query-params", DefaultConfig().AllowQueryParams,
		"comma-separated URL query parameters kept in redacted URLs (values are still redacted); "+
			"every other parameter and the fragment are dropped. To keep none, name one no URL uses, such as none")
}

// Errors Validate returns.
var (
	// ErrInvalidQueryParam: an allowlisted parameter name is empty or holds characters that cannot
	// be a parameter name.
	ErrInvalidQueryParam = errors.New("redact: invalid query parameter name")
	// ErrSensitiveQueryParam: an allowlisted parameter is named like one that carries personal
	// data or a secret (email, phone, token, password, …).
	ErrSensitiveQueryParam = errors.New("redact: query parameter may carry personal data or secrets")
)

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	for _, p := range c.AllowQueryParams {
		switch {
		case p == "" || strings.ContainsAny(p, "&=#? \t\r\n"):
			errs = append(errs, fmt.Errorf("redact.allow-query-params %q: %w", p, ErrInvalidQueryParam))
		case sensitiveParamName(p):
			errs = append(errs, fmt.Errorf("redact.allow-query-params %q: %w", p, ErrSensitiveQueryParam))
		}
	}
	return errors.Join(errs...)
}

// sensitiveParamName reports whether a query parameter named p likely carries personal data or a
// secret, so allowlisting it would defeat redaction.
func sensitiveParamName(p string) bool {
	if secretKey(p) {
		return true
	}
	l := strings.ToLower(p)
	for _, w := range []string{"email", "mail", "phone", "card", "iban", "ssn", "password", "secret", "token", "auth", "session"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return l == "code" || l == "state" // OAuth authorisation code and state
}

// Redactor masks personal data and secrets. It is safe for concurrent use.
type Redactor struct {
	allowQueryParams []string
}

// New returns a Redactor for cfg (which Validate should have accepted).
func New(cfg Config) *Redactor {
	allow := cfg.AllowQueryParams
	if allow == nil {
		allow = defaultAllowQueryParams()
	}
	return &Redactor{allowQueryParams: append([]string(nil), allow...)}
}

// allowed reports whether the query parameter called name is kept.
func (r *Redactor) allowed(name string) bool {
	for _, p := range r.allowQueryParams {
		if strings.EqualFold(p, name) {
			return true
		}
	}
	return false
}

// maxRounds bounds the passes Text makes until its output no longer changes. One pass is almost
// always enough; the second confirms it.
const maxRounds = 4

// Text masks every personal-data and secret pattern in free text with "[kind]" ("[email]",
// "[phone]", "[card]", "[national-id]", "[iban]", "[token]", "[ip]"), and redacts the absolute URLs
// in it as URL does. Text(Text(s)) == Text(s).
func (r *Redactor) Text(s string) string {
	for round := 0; round < maxRounds; round++ {
		if !mayContainPII(s) {
			return s
		}
		t := s
		if strings.Contains(t, "://") {
			t = stripEmbeddedURLs(t, r.allowed, 0)
		}
		var buf [8]Finding
		if f := scanPII(t, buf[:0]); len(f) > 0 {
			t = applyMasks(t, f)
		}
		if t == s {
			return s
		}
		s = t
	}
	return s
}

// URL redacts a URL, absolute or relative: it drops the fragment, every query parameter not on the
// allowlist and any credentials before the host, masks an IP host as "[ip]", and masks personal
// data in the path and in kept parameter values as Text does. Scheme, host and path are otherwise
// kept. Input that is not a URL at all is redacted as text.
func (r *Redactor) URL(raw string) string {
	u := raw
	for round := 0; round < maxRounds && u != ""; round++ {
		// Masking can merge parts ("//host/<secret>:x@y" becomes "//[token]:x@y", whose authority
		// now has credentials), so strip and mask until nothing changes.
		next := r.Text(stripURL(u, r.allowed, 0))
		if next == u {
			break
		}
		u = next
	}
	return u
}

// Value redacts a JSON-like value: strings pass Text, map keys and values and slice elements are
// redacted recursively (into new maps and slices; v is not modified), and numbers that are card
// numbers become "[card]". Booleans, nil, other numbers and values of other types are returned
// as they are.
func (r *Redactor) Value(v any) any {
	switch x := v.(type) {
	case string:
		return r.Text(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[r.Text(k)] = r.element(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.element(e)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[r.Text(k)] = r.Text(e)
		}
		return out
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = r.Text(e)
		}
		return out
	case json.Number:
		if isCardNumber(string(x)) {
			return Mask(KindCard)
		}
	case float64:
		if x >= 1e12 && x < 1e20 && x == math.Trunc(x) && isCardNumber(strconv.FormatFloat(x, 'f', -1, 64)) {
			return Mask(KindCard)
		}
	case int64:
		if isCardNumber(strconv.FormatInt(x, 10)) {
			return Mask(KindCard)
		}
	case int:
		if isCardNumber(strconv.Itoa(x)) {
			return Mask(KindCard)
		}
	case uint64:
		if isCardNumber(strconv.FormatUint(x, 10)) {
			return Mask(KindCard)
		}
	}
	return v
}

// element is Value for an element of a map or slice; a string Text leaves alone is returned as
// the same interface value, so it is not boxed again.
func (r *Redactor) element(e any) any {
	if str, ok := e.(string); ok {
		if t := r.Text(str); t != str {
			return t
		}
		return e
	}
	return r.Value(e)
}

// isCardNumber reports whether d, a number written in decimal, is a payment card number.
func isCardNumber(d string) bool {
	if len(d) < 13 || len(d) > 19 || countDigits(d, 0) != len(d) {
		return false
	}
	return plausibleBareCard(d) && luhnValid(d)
}

// Finding is one piece of personal data or secret found in a string: its kind (a Kind* constant)
// and its byte offsets, s[Start:End].
type Finding struct {
	Kind       string
	Start, End int
}

// Find reports every pattern Text or URL with the default configuration would mask or drop, sorted
// by Start (a dropped URL query may overlap an email inside it). It is the detector property tests
// use: a produced message, note or summary, or its JSON, must have none. Masks ("[email]", …) and
// identity hashes ("h:<sha256 hex>") are not findings.
func Find(s string) []Finding {
	return find(s, isDefaultAllowed)
}

// Find is the package Find for this Redactor's query parameter allowlist.
func (r *Redactor) Find(s string) []Finding {
	return find(s, r.allowed)
}

func find(s string, allow allowFunc) []Finding {
	if !mayContainPII(s) {
		return nil
	}
	var out []Finding
	if strings.Contains(s, "://") {
		out = urlFindings(s, 0, allow, 0, out)
	}
	n := len(out)
	out = scanPII(s, out)
	if n > 0 && len(out) > n {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	}
	return out
}

// IdentityKey returns v unchanged unless it looks like an email address (it holds an '@', encoded
// or not) or holds a phone number; then it returns the identity hash
// "h:" + hex(sha256(lower(trim(v)))). For an id that is an address this is exactly EmailHash, so
// it matches a contact's hashed email; any id with an '@' is hashed, so ingest and the Intercom
// side hash the same ids.
func IdentityKey(v string) string {
	t := strings.TrimSpace(v)
	if t == "" || !mayContainPII(t) {
		return v
	}
	if strings.Contains(t, "@") || strings.Contains(t, "%40") {
		return identityHash(t)
	}
	var buf [4]Finding
	for _, f := range scanPII(t, buf[:0]) {
		if f.Kind == KindEmail || f.Kind == KindPhone {
			return identityHash(t)
		}
	}
	return v
}

// Pseudonym returns an id (a user id, an external id, a session id) as it is, or its identity hash
// when it holds personal data: IdentityKey's hash for an email or a phone number, and the same
// hash of any other finding of Find (a card number, a national id, a token), so that both sides of
// the pipeline turn one id into one pseudonym and still match it.
func Pseudonym(v string) string {
	if h := IdentityKey(v); h != v {
		return h
	}
	if v != "" && len(Find(v)) > 0 {
		return identityHash(strings.TrimSpace(v))
	}
	return v
}

// EmailHash returns "h:" + hex(sha256(lower(trim(email)))), or "" for an empty email.
func EmailHash(email string) string {
	t := strings.TrimSpace(email)
	if t == "" {
		return ""
	}
	return identityHash(t)
}

func identityHash(trimmed string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(trimmed)))
	return "h:" + hex.EncodeToString(sum[:])
}
