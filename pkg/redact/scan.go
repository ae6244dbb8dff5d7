package redact

import "strings"

// The scanner walks a string once, byte by byte. At each start of a word it tries only the matchers
// that can begin there, chosen by the first byte and the run of digits or letters that follows; an
// '@' (or "%40") triggers the email matcher, an '=' or ':' the secret-assignment matcher. There are
// no regular expressions. A pre-scan returns a string at once when it has none of the bytes a
// pattern needs (digits, '@', ':', '=', '_', '%', '-', '+', '/'), no long run of letters or
// capitals and no auth scheme word: most prose.

// Kinds of personal data and secrets. The mask Text writes for a kind is "[" + kind + "]".
const (
	KindEmail      = "email"
	KindPhone      = "phone"
	KindCard       = "card"
	KindNationalID = "national-id"
	KindIBAN       = "iban"
	KindToken      = "token"
	KindIP         = "ip"
	// KindURLQuery marks a URL query string or fragment (or credentials in a URL) that Text and URL
	// drop rather than mask.
	KindURLQuery = "url-query"
)

// Mask returns the placeholder Text writes in place of a finding of kind: "[email]", "[card]", …
func Mask(kind string) string { return "[" + kind + "]" }

// maskLiteralLen returns the length of the mask written at s[i:], or 0.
func maskLiteralLen(s string, i int) int {
	if i+4 > len(s) || s[i] != '[' {
		return 0
	}
	var m string
	switch s[i+1] {
	case 'e':
		m = "[email]"
	case 'p':
		m = "[phone]"
	case 'c':
		m = "[card]"
	case 'n':
		m = "[national-id]"
	case 'i':
		if s[i+2] == 'b' {
			m = "[iban]"
		} else {
			m = "[ip]"
		}
	case 't':
		m = "[token]"
	default:
		return 0
	}
	if strings.HasPrefix(s[i:], m) {
		return len(m)
	}
	return 0
}

// Bytes that make a string worth scanning: digits, '@', ':', '=', '_', '%', '-', '+' and '/',
// as bit sets over the bytes 0-63 and 64-127.
const (
	triggerLow  = 1<<'%' | 1<<'+' | 1<<'-' | 1<<'/' | 0x3ff<<'0' | 1<<':' | 1<<'='
	triggerHigh = 1<<('@'-64) | 1<<('_'-64)
)

// mayContainPII is the pre-scan: it reports whether s has any byte or word a pattern needs.
// Without one of the trigger bytes, only a long run of letters (a key without digits), an auth
// scheme word or a run of capitals can hold a pattern.
func mayContainPII(s string) bool {
	upperRun, letterRun := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 64:
			if triggerLow>>c&1 != 0 {
				return true
			}
			upperRun, letterRun = 0, 0
		case c < 128:
			if triggerHigh>>(c-64)&1 != 0 {
				return true
			}
			if !isAlpha(c) {
				upperRun, letterRun = 0, 0
				continue
			}
			letterRun++
			if isUpper(c) {
				upperRun++
			} else {
				upperRun = 0
			}
			if upperRun >= 16 || letterRun >= minTokenLen { // an AWS key id, a tax code, a key without digits
				return true
			}
			if (c == 'b' || c == 'B') && (hasPrefixFold(s[i:], "bearer") || hasPrefixFold(s[i:], "basic")) {
				return true
			}
		default:
			upperRun, letterRun = 0, 0
		}
	}
	return false
}

// scanPII appends to out every maskable finding in s, in order, without overlaps. Every matcher
// reads a bounded stretch or a run it then skips, so the scan is linear in len(s).
func scanPII(s string, out []Finding) []Finding {
	last := 0 // end of the last finding: an email's local part does not reach back past it
	var sc scanState
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '@':
			if st, end := matchEmail(s, last, i, i+1); end > 0 {
				out = append(out, Finding{Kind: KindEmail, Start: st, End: end})
				i, last = end, end
				continue
			}
			i++
			continue
		case c == '%':
			if !isPercentEscape(s, i) {
				i++
				continue
			}
			if s[i+1] == '4' && s[i+2] == '0' {
				if st, end := matchEmail(s, last, i, i+3); end > 0 {
					out = append(out, Finding{Kind: KindEmail, Start: st, End: end})
					i, last = end, end
					continue
				}
			}
			i += 3
			continue
		case c == '[':
			if n := maskLiteralLen(s, i); n > 0 {
				i += n
				continue
			}
			i++
			continue
		case c == '=' || (c == ':' && !(i+1 < len(s) && s[i+1] == ':')):
			st, end, next := matchSecretAssignment(s, i, last)
			if end > 0 {
				out = append(out, Finding{Kind: KindToken, Start: st, End: end})
				i, last = end, end
				continue
			}
			if next > 0 {
				i = next
				continue
			}
			i++
			continue
		}
		if !(isAlnum(c) || c == '+' || c == '/' || c == '(' || c == ':') || !leftBoundary(s, i) {
			i++
			continue
		}
		n := len(out)
		var next int
		out, next = matchAt(s, i, out, &sc)
		if len(out) > n {
			last = out[len(out)-1].End
			i = next
			continue
		}
		if next > i {
			i = next
			continue
		}
		i = skipCluster(s, i)
	}
	return out
}

// scanState is what scanPII remembers between matchers.
type scanState struct {
	entropyJudged int // end of the last base64 run judged: its suffixes are not judged again
}

// highEntropy runs matchHighEntropy at s[i] unless the run there was judged already.
func (sc *scanState) highEntropy(s string, i int, out []Finding) ([]Finding, int, bool) {
	if i < sc.entropyJudged || i+minTokenLen > len(s) {
		return out, -1, false
	}
	out, end, ok := matchHighEntropy(s, i, out)
	sc.entropyJudged = max(sc.entropyJudged, end)
	return out, end, ok
}

// matchAt tries every matcher that can start at s[i] (a left boundary). It appends what it finds
// and returns where scanning goes on; next <= i means nothing matched.
func matchAt(s string, i int, out []Finding, sc *scanState) ([]Finding, int) {
	c := s[i]
	found := func(kind string, end int) ([]Finding, int) {
		return append(out, Finding{Kind: kind, Start: i, End: end}), end
	}
	switch {
	case isDigit(c):
		// The run of digits at i and the byte after it decide which matchers can apply.
		n0 := countDigits(s, i)
		var next byte
		if i+n0 < len(s) {
			next = s[i+n0]
		}
		grouped := next == ' ' || next == '-'
		if n0 <= 3 && next == '.' {
			if end := matchIPv4(s, i); end > 0 {
				return found(KindIP, end)
			}
		}
		if n0 == 3 && grouped {
			if end := matchSSN(s, i); end > 0 {
				return found(KindNationalID, end)
			}
			if end := matchSIN(s, i); end > 0 {
				return found(KindNationalID, end)
			}
		}
		if n0 == 3 && next == '.' {
			if end := matchCPF(s, i); end > 0 {
				return found(KindNationalID, end)
			}
		}
		if n0 == 8 {
			if end := matchDNI(s, i); end > 0 {
				return found(KindNationalID, end)
			}
		}
		if n0 >= 13 || (n0 == 4 && grouped) {
			if end := matchCard(s, i); end > 0 {
				return found(KindCard, end)
			}
		}
		if n0 == 4 && grouped {
			if end := matchAadhaar(s, i); end > 0 {
				return found(KindNationalID, end)
			}
		}
		if n0 == 3 || (n0 == 1 && c == '1') {
			if end := matchNANP(s, i); end > 0 {
				return found(KindPhone, end)
			}
		}
		if c == '0' && n0 >= 2 {
			if s[i+1] == '0' {
				if end := matchIntlPhone(s, i+2, true); end > 0 {
					return found(KindPhone, end)
				}
			} else if end := matchNationalPhone(s, i); end > 0 {
				return found(KindPhone, end)
			}
		}
		if n0 <= 4 && (next == ':' || isHex(next)) {
			if end := matchIPv6(s, i); end > 0 {
				return found(KindIP, end)
			}
		}
		if out2, end, ok := sc.highEntropy(s, i, out); ok {
			return out2, end
		}
	case isAlpha(c):
		if isHex(c) { // an IPv6 address has a ':' after its first group
			h := i
			for h < len(s) && h-i < 5 && isHex(s[h]) {
				h++
			}
			if h < len(s) && s[h] == ':' {
				if end := matchIPv6(s, i); end > 0 {
					return found(KindIP, end)
				}
			}
		}
		if c == 'e' {
			if end := matchJWT(s, i); end > 0 {
				return found(KindToken, end)
			}
		}
		if end := matchKeyPrefix(s, i); end > 0 {
			return found(KindToken, end)
		}
		if c == 'b' || c == 'B' {
			if st, end := matchAuthScheme(s, i); end > 0 {
				return append(out, Finding{Kind: KindToken, Start: st, End: end}), end
			}
		}
		if isUpper(c) {
			if end := matchNINO(s, i); end > 0 {
				return found(KindNationalID, end)
			}
			if end := matchNIE(s, i); end > 0 {
				return found(KindNationalID, end)
			}
			if end := matchCodiceFiscale(s, i); end > 0 {
				return found(KindNationalID, end)
			}
		}
		if end := matchIBAN(s, i); end > 0 {
			return found(KindIBAN, end)
		}
		if out2, end, ok := sc.highEntropy(s, i, out); ok {
			return out2, end
		}
	case c == '+' || c == '/':
		if c == '+' && (i == 0 || s[i-1] != '+') {
			if end := matchIntlPhone(s, i+1, false); end > 0 {
				return found(KindPhone, end)
			}
		}
		if out2, end, ok := sc.highEntropy(s, i, out); ok { // base64 may start with '+' or '/'
			return out2, end
		}
	case c == '(':
		if end := matchNANP(s, i); end > 0 {
			return found(KindPhone, end)
		}
	case c == ':':
		if i+1 < len(s) && s[i+1] == ':' {
			if end := matchIPv6(s, i); end > 0 {
				return found(KindIP, end)
			}
		}
	}
	return out, i
}

// applyMasks returns s with every finding replaced by its mask. findings are sorted and disjoint.
func applyMasks(s string, findings []Finding) string {
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for _, f := range findings {
		b.WriteString(s[pos:f.Start])
		b.WriteByte('[')
		b.WriteString(f.Kind)
		b.WriteByte(']')
		pos = f.End
	}
	b.WriteString(s[pos:])
	return b.String()
}
