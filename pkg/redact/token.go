package redact

import (
	"math"
	"strings"
)

// Matchers for tokens and secrets: JWTs, bearer and basic credentials, API keys recognised by their
// vendor prefix, values assigned to secret-named keys ("password=…", "\"api_key\": \"…\""), and long
// high-entropy strings (hex of 32+ digits, base64 of 32+ characters).

// keyPrefix returns the length of the vendor key prefix s starts with and how many key characters
// must follow it, or 0.
func keyPrefix(s string) (prefixLen, minRest int) {
	if len(s) < 4 {
		return 0, 0
	}
	has := func(p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
	switch s[0] {
	case 's':
		switch {
		case has("sk_live_"), has("sk_test_"):
			return 8, 12
		case has("shpat_"), has("shpss_"), has("shpca_"), has("shppa_"):
			return 6, 16
		case has("sk-"):
			return 3, 20
		}
	case 'r':
		if has("rk_live_") || has("rk_test_") {
			return 8, 12
		}
	case 'p':
		switch {
		case has("pk_live_"), has("pk_test_"):
			return 8, 12
		case has("phc_"), has("phx_"):
			return 4, 16
		}
	case 'w':
		if has("whsec_") {
			return 6, 16
		}
	case 'g':
		switch {
		case has("github_pat_"):
			return 11, 20
		case has("ghp_"), has("gho_"), has("ghu_"), has("ghs_"), has("ghr_"):
			return 4, 20
		case has("glpat-"):
			return 6, 16
		}
	case 'x':
		if has("xoxb-") || has("xoxp-") || has("xoxa-") || has("xoxr-") || has("xoxs-") || has("xoxe-") || has("xapp-") {
			return 5, 10
		}
	case 'n':
		if has("npm_") {
			return 4, 30
		}
	case 'h':
		if has("hf_") {
			return 3, 30
		}
	case 'd':
		if has("dop_v1_") {
			return 7, 32
		}
	case 'l':
		if has("lin_api_") {
			return 8, 32
		}
	case 'A':
		if has("AIza") {
			return 4, 30
		}
	}
	return 0, 0
}

// keyRunEnd returns the end of the run of key characters ([A-Za-z0-9_-]) at s[i:].
func keyRunEnd(s string, i int) int {
	for i < len(s) && isKeyChar(s[i]) {
		i++
	}
	return i
}

// notEmailLocal reports whether the byte at s[j] does not turn what precedes it into the local part
// of an email address.
func notEmailLocal(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	return s[j] != '@' && !(isPercentEscape(s, j) && s[j+1] == '4' && s[j+2] == '0')
}

// matchKeyPrefix matches an API key by its vendor prefix ("sk_live_…", "phc_…", "ghp_…",
// "xoxb-…", "AKIA…").
func matchKeyPrefix(s string, i int) int {
	if i+20 <= len(s) && s[i] == 'A' && (s[i+1] == 'K' || s[i+1] == 'S') && s[i+2] == 'I' && s[i+3] == 'A' {
		for k := i + 4; k < i+20; k++ {
			if !isUpper(s[k]) && !isDigit(s[k]) {
				return -1
			}
		}
		if i+20 < len(s) && isKeyChar(s[i+20]) || !notEmailLocal(s, i+20) {
			return -1
		}
		return i + 20
	}
	n, minRest := keyPrefix(s[i:])
	if n == 0 {
		return -1
	}
	end := keyRunEnd(s, i+n)
	if end-(i+n) < minRest || !notEmailLocal(s, end) {
		return -1
	}
	return end
}

// matchJWT matches a JSON Web Token: three base64url parts separated by dots, the first a JSON
// header ("eyJ…").
func matchJWT(s string, i int) int {
	if i+3 > len(s) || s[i] != 'e' || s[i+1] != 'y' || s[i+2] != 'J' {
		return -1
	}
	p1 := keyRunEnd(s, i)
	if p1-i < 10 || p1 >= len(s) || s[p1] != '.' {
		return -1
	}
	p2 := keyRunEnd(s, p1+1)
	if p2-(p1+1) < 2 || p2 >= len(s) || s[p2] != '.' {
		return -1
	}
	end := keyRunEnd(s, p2+1)
	if !notEmailLocal(s, end) {
		return -1
	}
	return end
}

// isCredChar reports whether c may appear in a bearer or basic credential.
func isCredChar(c byte) bool {
	return isKeyChar(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '='
}

// matchAuthScheme matches the credential after "Bearer " or "Basic " (any case). It returns the
// start and end of the credential alone, so the scheme word stays readable. The credential must
// contain a digit or symbol, so prose ("the bearer of bad news") is left alone.
func matchAuthScheme(s string, i int) (start, end int) {
	var n int
	switch {
	case hasPrefixFold(s[i:], "bearer"):
		n = 6
	case hasPrefixFold(s[i:], "basic"):
		n = 5
	default:
		return -1, -1
	}
	j := i + n
	if j >= len(s) || (s[j] != ' ' && s[j] != '\t') {
		return -1, -1
	}
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	k := j
	special := false
	for k < len(s) && isCredChar(s[k]) {
		if !isAlpha(s[k]) {
			special = true
		}
		k++
	}
	if k-j < 8 || !special || !notEmailLocal(s, k) {
		return -1, -1
	}
	return j, k
}

// secretKeySuffixes are the endings of key names whose values are secrets (compared in lower case,
// with '-' read as '_').
const secretKeySuffixes = "password passwd pwd passphrase passcode secret token apikey api_key private_key " +
	"secret_key access_key auth_key credential credentials cvv cvc cvv2 ssn"

// secretKey reports whether the key name k ends with one of secretKeySuffixes.
func secretKey(k string) bool {
	if k == "" {
		return false
	}
	switch k[len(k)-1] | 0x20 { // the last letters of the suffixes
	case 'd', 'e', 't', 'n', 'y', 'l', 's', 'v', 'c', '2':
	default:
		return false
	}
	for start := 0; start < len(secretKeySuffixes); {
		end := start
		for end < len(secretKeySuffixes) && secretKeySuffixes[end] != ' ' {
			end++
		}
		suf := secretKeySuffixes[start:end]
		if len(k) >= len(suf) {
			tail := k[len(k)-len(suf):]
			match := true
			for x := 0; x < len(suf); x++ {
				c := tail[x]
				if isUpper(c) {
					c += 'a' - 'A'
				} else if c == '-' {
					c = '_'
				}
				if c != suf[x] {
					match = false
					break
				}
			}
			if match {
				return true
			}
		}
		start = end + 1
	}
	return false
}

// isAssignedValueStop reports the bytes that end an unquoted assigned value.
func isAssignedValueStop(c byte) bool {
	return isSpace(c) || c == '"' || c == '\'' || c == '&' || c == ',' || c == ';' || c == '<' || c == '>' ||
		c == '`' || c == ')' || c == '}'
}

// matchSecretAssignment matches the value assigned to a secret-named key at the '=' or ':' at
// s[sep]: "password=hunter2", "client_secret: 9f8e…", "\"api_key\": \"abc\"". The key is read
// backwards, not past floor. It returns the value's start and end (the key stays), or -1, -1; next
// is where scanning goes on when the key matched but its value is already a mask.
func matchSecretAssignment(s string, sep, floor int) (start, end, next int) {
	k := sep
	for k > floor && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	quotedKey := false
	if k > floor && (s[k-1] == '"' || s[k-1] == '\'') {
		quotedKey = true
		k--
	}
	ke := k
	for k > floor && (isKeyChar(s[k-1]) || s[k-1] == '.') {
		k--
	}
	if k == ke || !secretKey(s[k:ke]) {
		return -1, -1, -1
	}
	colon := s[sep] == ':'
	j := sep + 1
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) {
		return -1, -1, -1
	}
	var vs, ve int
	if q := s[j]; q == '"' || q == '\'' {
		vs = j + 1
		ve = vs
		for ve < len(s) && s[ve] != q && s[ve] != '\n' {
			ve++
		}
	} else {
		vs = j
		ve = vs
		for ve < len(s) && !isAssignedValueStop(s[ve]) {
			ve++
		}
		special := false // a digit or symbol, not counting trailing punctuation
		core := ve
		for core > vs && strings.IndexByte(".:!?", s[core-1]) >= 0 {
			core--
		}
		for x := vs; x < core; x++ {
			if !isAlpha(s[x]) {
				special = true
				break
			}
		}
		// "Password: must be 8 characters" is prose; a colon-assigned secret has a digit or symbol,
		// or comes after a quoted (JSON) key.
		if colon && !quotedKey && !special {
			return -1, -1, -1
		}
	}
	if ve == vs {
		return -1, -1, -1
	}
	if maskLiteralLen(s, vs) == ve-vs {
		return -1, -1, ve
	}
	return vs, ve, ve
}

// Thresholds of the high-entropy token rules.
const (
	minTokenLen = 32 // shorter random strings are ids (usr_2Qm8xK4p, Stripe object ids), not secrets
	// minBase64Entropy is the per-character Shannon entropy (bits) a mixed-case run must reach:
	// random base64 of 32+ characters scores 4.2-5; long camelCase identifiers score about 4-4.5,
	// so the word tests below separate those.
	minBase64Entropy = 4.0
	// minAlnumEntropy is the same for single-case letters and digits that are not hex: random
	// strings score 3.5-4.5.
	minAlnumEntropy = 3.4
	// maxVowelShare: letters of random strings are vowels about a fifth of the time, of words
	// (and of identifiers made of words) well over a third.
	maxVowelShare = 0.3
	// minWordRunShare: in identifiers made of words nearly every lowercase letter sits in a run of
	// three or more ("handle", "Checkout"); in random base64 about a third do.
	minWordRunShare = 0.7
	// maxWordEntropy: identifiers made of words reuse the common letters and stay under this;
	// random base64 of 44 characters or more is nearly always above it.
	maxWordEntropy = 4.7
	// maxWordDigitRuns: identifiers carry a number or two ("Button2024Click"); random base64 has
	// a digit every six characters or so.
	maxWordDigitRuns = 3
)

// b64RunEnd returns the end of a base64 run at s[i:]: key characters, '+' and '/', then at most two
// '=' of padding.
func b64RunEnd(s string, i int) int {
	for i < len(s) && (isKeyChar(s[i]) || s[i] == '+' || s[i] == '/') {
		i++
	}
	for pad := 0; pad < 2 && i < len(s) && s[i] == '='; pad++ {
		i++
	}
	return i
}

// entropyBits returns the Shannon entropy per byte of s, over at most its first 4096 bytes.
func entropyBits(s string) float64 {
	if len(s) > 4096 {
		s = s[:4096]
	}
	var counts [256]uint16
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// charProfile describes the make-up of a candidate token.
type charProfile struct {
	upper, lower, digits, symbols, vowels int
	lowerInRuns                           int // lowercase letters in runs of three or more
	digitRuns                             int // runs of digits: "2024" is one
}

func profile(s string) charProfile {
	var p charProfile
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isLower(s[i]) {
			run++
		} else {
			if run >= 3 {
				p.lowerInRuns += run
			}
			run = 0
		}
		if i == len(s) {
			break
		}
		c := s[i]
		switch {
		case isUpper(c):
			p.upper++
		case isLower(c):
			p.lower++
		case isDigit(c):
			p.digits++
			if i == 0 || !isDigit(s[i-1]) {
				p.digitRuns++
			}
		default:
			p.symbols++
		}
		switch c | 0x20 {
		case 'a', 'e', 'i', 'o', 'u':
			if isAlpha(c) {
				p.vowels++
			}
		}
	}
	return p
}

// wordLike reports whether the letters of a mixed-case string with entropy h read like words
// rather than random characters: many vowels, lowercase letters in runs, few capitals, numbers
// in one or two places, and the skewed letter frequencies of language.
func (p charProfile) wordLike(h float64) bool {
	letters := p.upper + p.lower
	manyVowels := float64(p.vowels) >= maxVowelShare*float64(letters)
	inRuns := float64(p.lowerInRuns) >= minWordRunShare*float64(p.lower)
	mostlyLower := p.lower >= 2*p.upper // a capital starts each word; random text is half capitals
	return letters > 0 && manyVowels && inRuns && mostlyLower && p.digitRuns <= maxWordDigitRuns && h < maxWordEntropy
}

// hasBothCases reports whether s has an upper-case and a lower-case letter.
func hasBothCases(s string) bool {
	var upper, lower bool
	for i := 0; i < len(s); i++ {
		upper = upper || isUpper(s[i])
		lower = lower || isLower(s[i])
		if upper && lower {
			return true
		}
	}
	return false
}

// highEntropyRun reports whether the base64 run r is a secret: long, upper and lower case mixed,
// close to random, and not made of words.
func highEntropyRun(r string) bool {
	for len(r) > 0 && r[len(r)-1] == '=' {
		r = r[:len(r)-1]
	}
	if len(r) < minTokenLen || !hasBothCases(r) {
		return false
	}
	p := profile(r)
	// Base64 uses '+' and '/', base64url '-' and '_', each 2 of 64 characters. A run that mixes the
	// two alphabets, or has many more symbols, is a path or a slug
	// ("project/2/events/<uuid>/2025-03-14T10"), judged segment by segment instead.
	if p.symbols > max(5, len(r)/4) || (strings.ContainsAny(r, "+/") && strings.ContainsAny(r, "-_")) {
		return false
	}
	h := entropyBits(r)
	return h >= minBase64Entropy && !p.wordLike(h)
}

// secretSegment reports whether seg (letters and digits only) is a secret on its own: 32+ hex
// digits with letters and digits mixed, or 32+ single-case letters and digits that are random.
func secretSegment(seg string) bool {
	if len(seg) < minTokenLen {
		return false
	}
	p := profile(seg)
	if p.upper+p.lower == 0 || p.digits == 0 {
		return false
	}
	hex := true
	for i := 0; i < len(seg); i++ {
		if !isHex(seg[i]) {
			hex = false
			break
		}
	}
	if hex {
		return true
	}
	// Mixed case is judged on the whole run (highEntropyRun); here only one case may appear.
	if p.upper > 0 && p.lower > 0 {
		return false
	}
	return p.digits >= 2 && entropyBits(seg) >= minAlnumEntropy
}

// isIdentityHash reports whether s[i:end] is the digest of an identity hash ("h:" and 64
// lower-case hex digits, as IdentityKey and EmailHash write): a pseudonym made on purpose, which
// messages carry and which is not a secret.
func isIdentityHash(s string, i, end int) bool {
	if end-i != 64 || i < 2 || s[i-2] != 'h' || s[i-1] != ':' || (i > 2 && isWord(s[i-3])) {
		return false
	}
	for k := i; k < end; k++ {
		if !isDigit(s[k]) && (s[k] < 'a' || s[k] > 'f') {
			return false
		}
	}
	return true
}

// matchHighEntropy appends findings for a secret-looking base64 run starting at s[i]: the whole
// run, or else its '/'-separated parts that are secrets on their own, or else its alphanumeric
// segments that are. It returns the new findings and the end of the run (so the run is judged
// once), with ok false when nothing in it is secret; end is -1 when there is no long run at i.
func matchHighEntropy(s string, i int, out []Finding) ([]Finding, int, bool) {
	end := b64RunEnd(s, i)
	if end-i < minTokenLen {
		return out, -1, false
	}
	if !notEmailLocal(s, end) || isIdentityHash(s, i, end) {
		return out, end, false
	}
	if highEntropyRun(s[i:end]) {
		return append(out, Finding{Kind: KindToken, Start: i, End: end}), end, true
	}
	found := false
	for p := i; p < end; {
		pe := p
		for pe < end && s[pe] != '/' {
			pe++
		}
		if pe-p >= minTokenLen && pe-p < end-i && highEntropyRun(s[p:pe]) {
			out = append(out, Finding{Kind: KindToken, Start: p, End: pe})
			found = true
		} else {
			for k := p; k < pe; {
				if !isAlnum(s[k]) {
					k++
					continue
				}
				e := k
				for e < pe && isAlnum(s[e]) {
					e++
				}
				if secretSegment(s[k:e]) {
					out = append(out, Finding{Kind: KindToken, Start: k, End: e})
					found = true
				}
				k = e
			}
		}
		p = pe + 1
	}
	return out, end, found
}
