package redact

// Byte classes and token boundaries shared by the matchers. Everything works on bytes. The patterns
// are ASCII (an email's local part aside, which takes whole non-ASCII characters), and bytes of
// multi-byte UTF-8 characters (all >= 0x80) count as separators, so a mask never splits a
// character.

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

// isWord reports whether c belongs to a word: a pattern must not start or end inside one.
func isWord(c byte) bool { return isAlnum(c) || c == '_' }

// isKeyChar reports whether c may appear in an API key, a key name or a base64url string.
func isKeyChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// isB64Char reports whether c may appear in a base64 or base64url string.
func isB64Char(c byte) bool { return isKeyChar(c) || c == '+' || c == '/' || c == '=' }

// isSpace reports ASCII whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isPercentEscape reports whether s[i:] starts with a %XX escape.
func isPercentEscape(s string, i int) bool {
	return i+2 < len(s) && s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2])
}

// leftBoundary reports whether a pattern may start at s[i]: the byte before is not part of a word,
// nor a '.' or '-' that joins s[i] to a word ("v1.2.3.4", "ref-4111…"). A %XX escape (an encoded
// space or slash in a URL) counts as a separator.
func leftBoundary(s string, i int) bool {
	if i == 0 {
		return true
	}
	p := s[i-1]
	if i >= 3 && s[i-3] == '%' && isHex(s[i-2]) && isHex(p) {
		return true
	}
	if isWord(p) || maskEndsAt(s, i-1) {
		return false
	}
	if (p == '.' || p == '-') && i >= 2 && (isAlnum(s[i-2]) || maskEndsAt(s, i-2)) {
		return false
	}
	return true
}

// A mask written by an earlier pass stands where a match was, which began and ended with word
// characters; the boundary rules treat it as a word, so a second pass over masked text decides
// every boundary as the first pass did and finds nothing new.

// maskEndsAt reports whether a mask ("[email]", "[national-id]", …) ends with s[k].
func maskEndsAt(s string, k int) bool {
	if k < 3 || k >= len(s) || s[k] != ']' {
		return false
	}
	for b := k - 1; b >= 0 && k-b < len("[national-id]"); b-- {
		if s[b] == '[' {
			return maskLiteralLen(s, b) == k-b+1
		}
	}
	return false
}

// maskStartsAt reports whether a mask starts at s[j].
func maskStartsAt(s string, j int) bool { return maskLiteralLen(s, j) > 0 }

// rightBoundary reports whether a pattern may end before s[j]: the next byte does not continue a
// word or a number ("….4.5", "…-7"), and it is not an email's '@'.
func rightBoundary(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	c := s[j]
	if isWord(c) || c == '@' || maskStartsAt(s, j) {
		return false
	}
	if isPercentEscape(s, j) {
		return !(s[j+1] == '4' && s[j+2] == '0') // %40 is an encoded '@'
	}
	if (c == '.' || c == '-') && j+1 < len(s) && (isAlnum(s[j+1]) || maskStartsAt(s, j+1)) {
		return false
	}
	return true
}

// skipCluster returns the index after the word-like cluster that starts at s[i]: word bytes and the
// dots and dashes that join them ("2025-03-14T10", "01959426-703f-…", "jane.doe"). It always
// advances.
func skipCluster(s string, i int) int {
	j := i
	for j < len(s) {
		c := s[j]
		if isWord(c) || ((c == '.' || c == '-') && j > i && j+1 < len(s) && isAlnum(s[j+1])) {
			j++
			continue
		}
		break
	}
	if j == i {
		j++
	}
	return j
}

// countDigits returns the length of the run of ASCII digits at s[i:].
func countDigits(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// hasPrefixFold reports whether s starts with the lowercase ASCII prefix p, ignoring case.
func hasPrefixFold(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := s[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}
