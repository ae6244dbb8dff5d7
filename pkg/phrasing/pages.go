package phrasing

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PathOf returns the path of a URL or path, without query or fragment ("" when there is none).
func PathOf(rawURL string) string {
	s := strings.TrimSpace(rawURL)
	if s == "" {
		return ""
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return ""
		}
		s = u.EscapedPath()
	}
	if s == "" {
		return "/"
	}
	if p, err := url.PathUnescape(s); err == nil {
		s = p
	}
	return s
}

// PageName names the page at path as a person would: "/pricing" is the "pricing page",
// "/settings/billing" the "billing settings page", "/orders/1182" the "orders page" (ids dropped),
// "/" the "home page". It returns "" for an empty path.
func PageName(path string) string {
	path = PathOf(path)
	if path == "" {
		return ""
	}
	var words [][]string
	for _, seg := range strings.Split(path, "/") {
		seg = strings.TrimSpace(seg)
		if seg == "" || isIDSegment(seg) {
			continue
		}
		seg = stripExtension(seg)
		if w := identifierWords(seg); len(w) > 0 {
			words = append(words, w)
		}
	}
	if n := len(words); n > 0 && len(words[n-1]) == 1 && (words[n-1][0] == "index" || words[n-1][0] == "home") {
		words = words[:n-1]
	}
	if len(words) == 0 {
		return "home page"
	}
	last := words[len(words)-1]
	name := strings.Join(last, " ")
	if len(words) > 1 {
		parent := words[len(words)-2]
		if len(parent) == 1 && isSectionWord(parent[0]) && parent[0] != last[len(last)-1] {
			// "/settings/billing": the billing settings
			name += " " + parent[0]
		}
	}
	name = truncate(name, DefaultMaxLabelLength)
	if strings.HasSuffix(name, " page") || name == "page" {
		return name
	}
	return name + " page"
}

// isSectionWord reports words that name a section whose pages people name child first: "billing
// settings", "team admin".
func isSectionWord(w string) bool {
	switch w {
	case "settings", "preferences", "admin", "docs", "help", "account":
		return true
	}
	return false
}

// stripExtension drops a file extension from a path segment ("index.html" → "index").
func stripExtension(seg string) string {
	if i := strings.LastIndexByte(seg, '.'); i > 0 {
		switch strings.ToLower(seg[i+1:]) {
		case "html", "htm", "php", "asp", "aspx", "jsp":
			return seg[:i]
		}
	}
	return seg
}

// isIDSegment reports path segments that identify a record rather than name a page: numbers, uuids and
// hashes, tokens mixing letters and digits ("usr_2Qm8xK4p"), emails and redaction masks.
func isIDSegment(seg string) bool {
	if strings.ContainsAny(seg, "@[]<>*{}:") {
		return true
	}
	digits, letters, hex := 0, 0, 0
	for _, r := range seg {
		switch {
		case r >= '0' && r <= '9':
			digits++
			hex++
		case unicode.IsLetter(r):
			letters++
			if (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F') {
				hex++
			}
		}
	}
	if digits == 0 {
		return false
	}
	if letters == 0 {
		return true // 1182, 2025-03-14
	}
	n := utf8.RuneCountInString(seg)
	if n >= 8 && hex+strings.Count(seg, "-") == n {
		return true // uuid, hash
	}
	// a word mixing letters and digits, long enough not to be "v2" or "2fa"
	for _, w := range splitWords(seg) {
		if utf8.RuneCountInString(w) >= 6 && strings.IndexFunc(w, unicode.IsDigit) >= 0 && strings.IndexFunc(w, unicode.IsLetter) >= 0 {
			return true
		}
	}
	return false
}

// splitWords splits an identifier at separators: "react_native" → [react native].
func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == '-' || r == '_' || r == '.' || r == '+' || r == '~' || unicode.IsSpace(r)
	})
}

// identifierWords turns an identifier into lower-case words: "select-plan-pro" → [select plan pro],
// "firstName" → [first name], "user[email]" → [user email]. All-capital words (acronyms) keep their case.
func identifierWords(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		for _, part := range splitCamel(w) {
			if isAcronym(part) {
				out = append(out, part)
			} else {
				out = append(out, strings.ToLower(part))
			}
		}
	}
	return out
}

// splitCamel splits "firstName" into [first Name] and "CardValidationError" into [Card Validation
// Error]; runs of capitals stay together ("HTTPError" → [HTTP Error]).
func splitCamel(s string) []string {
	runes := []rune(s)
	var out []string
	start := 0
	for i := 1; i < len(runes); i++ {
		prev, cur := runes[i-1], runes[i]
		next := rune(0)
		if i+1 < len(runes) {
			next = runes[i+1]
		}
		boundary := (unicode.IsLower(prev) && unicode.IsUpper(cur)) ||
			(unicode.IsUpper(prev) && unicode.IsUpper(cur) && unicode.IsLower(next))
		if boundary {
			out = append(out, string(runes[start:i]))
			start = i
		}
	}
	return append(out, string(runes[start:]))
}

func isAcronym(w string) bool {
	if utf8.RuneCountInString(w) < 2 {
		return false
	}
	for _, r := range w {
		if !unicode.IsUpper(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return strings.IndexFunc(w, unicode.IsUpper) >= 0
}

// Humanize turns an identifier or event name into words: "payment_validation_failed" → "payment
// validation failed", "Signed Up" → "signed up".
func Humanize(s string) string { return strings.Join(identifierWords(s), " ") }

// truncate cuts s to at most n characters, at a word boundary when one is near, marking the cut with
// an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	cut := runes[:n-1]
	if !unicode.IsSpace(runes[n-1]) {
		for i := len(cut) - 1; i > len(cut)/2; i-- {
			if unicode.IsSpace(cut[i]) {
				cut = cut[:i]
				break
			}
		}
	}
	return strings.TrimRightFunc(string(cut), unicode.IsSpace) + "…"
}

// cleanText collapses whitespace in text taken from the page.
func cleanText(s string) string { return strings.Join(strings.Fields(s), " ") }
