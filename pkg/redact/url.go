package redact

import (
	"net/netip"
	"net/url"
	"strings"
)

// URL redaction: the fragment and every query parameter not on the allowlist are dropped,
// credentials before the host are dropped, an IPv6 host becomes "[ip]", and what remains (path and
// kept values included) is then masked like free text by the caller. Parsing is by hand so that
// relative URLs and garbage are handled the same way as well-formed ones and the result is stable
// (redacting twice changes nothing).

// maxURLDepth bounds URLs nested in parameter values ("?plan=https://…?plan=https://…"): a kept
// parameter whose value holds a URL nested deeper is dropped, which keeps the work linear.
const maxURLDepth = 3

// allowFunc reports whether a query parameter (by its decoded name) is kept.
type allowFunc func(name string) bool

// defaultQueryParams are the parameters kept by default: they name a place in the product or a
// campaign, never a person.
const defaultQueryParams = "plan tab step page utm_source utm_medium utm_campaign"

// defaultAllowQueryParams returns defaultQueryParams as a list.
func defaultAllowQueryParams() []string { return strings.Fields(defaultQueryParams) }

// isDefaultAllowed is allowFunc for the default allowlist.
func isDefaultAllowed(name string) bool { return listHasFold(defaultQueryParams, name) }

// decodeParamName returns the query parameter name as a server would read it.
func decodeParamName(name string) string {
	if strings.IndexByte(name, '%') < 0 && strings.IndexByte(name, '+') < 0 {
		return name
	}
	if d, err := url.QueryUnescape(name); err == nil {
		return d
	}
	return name
}

// validScheme reports whether s is a URL scheme: a letter, then letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// authorityBounds returns the start and end of the authority (userinfo@host:port) of u, or -1, -1
// when u has none ("/path", "mailto:x", garbage).
func authorityBounds(u string) (start, end int) {
	switch k := strings.Index(u, "://"); {
	case k > 0 && validScheme(u[:k]):
		start = k + 3
	case strings.HasPrefix(u, "//"):
		start = 2
	default:
		return -1, -1
	}
	end = start
	for end < len(u) && u[end] != '/' && u[end] != '?' && u[end] != '#' && !isURLStop(u[end]) {
		end++
	}
	return start, end
}

// userinfoEnd returns the end (after '@') of the credentials in the authority u[start:end], or -1.
func userinfoEnd(u string, start, end int) int {
	if at := strings.LastIndexByte(u[start:end], '@'); at >= 0 {
		return start + at + 1
	}
	return -1
}

// bracketIPHost returns the end of a bracketed IPv6 literal host ("[2001:db8::1]") at u[start:], or
// -1 when the host is not one.
func bracketIPHost(u string, start, end int) int {
	if start >= end || u[start] != '[' {
		return -1
	}
	rb := strings.IndexByte(u[start:end], ']')
	if rb < 0 {
		return -1
	}
	host := u[start+1 : start+rb]
	if z := strings.IndexByte(host, '%'); z >= 0 {
		host = host[:z]
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return -1
	}
	return start + rb + 1
}

// stripURL drops the fragment, the query parameters allow refuses, credentials and an IPv6 literal
// host of u; URLs in kept parameter values are stripped in turn. depth counts the URLs u is nested
// in.
func stripURL(u string, allow allowFunc, depth int) string {
	if k := strings.IndexByte(u, '#'); k >= 0 {
		u = u[:k]
	}
	whole := u // without the fragment
	query, hasQuery := "", false
	if k := strings.IndexByte(u, '?'); k >= 0 {
		u, query, hasQuery = u[:k], u[k+1:], true
	}
	head := u
	if as, ae := authorityBounds(u); as >= 0 {
		hostStart := as
		if ue := userinfoEnd(u, as, ae); ue >= 0 {
			hostStart = ue
		}
		if he := bracketIPHost(u, hostStart, ae); he >= 0 {
			u = u[:as] + "[ip]" + u[he:]
		} else if hostStart != as {
			u = u[:as] + u[hostStart:]
		}
	}
	if !hasQuery {
		return u
	}
	keptQuery := filterQuery(query, allow, depth)
	switch {
	case keptQuery == "":
		return u
	case keptQuery == query && u == head:
		return whole // nothing changed: no need to build a new string
	}
	return u + "?" + keptQuery
}

// filterQuery returns the parameters of query that allow keeps, in order, with the URLs in their
// values stripped. It allocates only when it drops or changes something.
func filterQuery(query string, allow allowFunc, depth int) string {
	var kept strings.Builder
	unchanged := true // so far, the kept query is query[:pos]
	pos := 0
	for p := 0; p <= len(query); {
		e := p + strings.IndexByte(query[p:], '&')
		if e < p {
			e = len(query)
		}
		param := query[p:e]
		name, value, hasValue := strings.Cut(param, "=")
		keep := name != "" && allow(decodeParamName(name))
		newValue := value
		if keep && hasValue && strings.Contains(value, "://") {
			if depth+1 >= maxURLDepth {
				keep = false
			} else {
				newValue = stripEmbeddedURLs(value, allow, depth+1)
			}
		}
		if unchanged && keep && newValue == value && p == pos {
			pos = e + 1 // still a prefix of the input
		} else {
			if unchanged {
				unchanged = false
				if pos > 0 {
					kept.WriteString(query[:pos-1])
				}
			}
			if keep {
				if kept.Len() > 0 {
					kept.WriteByte('&')
				}
				kept.WriteString(name)
				if hasValue {
					kept.WriteByte('=')
					kept.WriteString(newValue)
				}
			}
		}
		p = e + 1
	}
	if unchanged {
		return query
	}
	return kept.String()
}

// isURLStop reports the bytes that end a URL written in free text.
func isURLStop(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '\\'
}

// embeddedURLAt returns the start and end of the absolute URL whose "://" is at s[k:], or -1, -1.
// Trailing sentence punctuation is not part of the URL.
func embeddedURLAt(s string, k int) (start, end int) {
	st := k
	for st > 0 && (isAlnum(s[st-1]) || s[st-1] == '+' || s[st-1] == '-' || s[st-1] == '.') {
		st--
	}
	for st < k && !isAlpha(s[st]) {
		st++
	}
	if st == k {
		return -1, -1
	}
	end = k + 3
	for end < len(s) && !isURLStop(s[end]) {
		end++
	}
	for end > k+3 && strings.IndexByte(".,;:!?)]}*", s[end-1]) >= 0 {
		end--
	}
	return st, end
}

// nextEmbeddedURL returns the bounds of the first absolute URL in s at or after from, and where
// to search for the next one; st is -1 when there is none. A URL inside another (in a parameter
// value) is the outer URL's business and is not returned.
func nextEmbeddedURL(s string, from int) (st, end, next int) {
	for search := from; search < len(s); {
		k := strings.Index(s[search:], "://")
		if k < 0 {
			break
		}
		k += search
		st, end := embeddedURLAt(s, k)
		if st < search || st < 0 {
			search = k + 3
			continue
		}
		return st, end, max(end, k+3)
	}
	return -1, -1, len(s)
}

// stripEmbeddedURLs applies stripURL to every absolute URL in the free text s, which is nested in
// depth URLs.
func stripEmbeddedURLs(s string, allow allowFunc, depth int) string {
	var b strings.Builder
	pos := 0
	for st, end, next := nextEmbeddedURL(s, 0); st >= 0; st, end, next = nextEmbeddedURL(s, next) {
		u := s[st:end]
		su := stripURL(u, allow, depth)
		if su == u {
			continue
		}
		b.WriteString(s[pos:st])
		b.WriteString(su)
		pos = end
	}
	if pos == 0 {
		return s
	}
	b.WriteString(s[pos:])
	return b.String()
}

// urlFindings appends a finding for each part of each absolute URL in s that stripURL would drop:
// credentials (KindToken), an IPv6 literal host (KindIP), the fragment and refused query
// parameters (KindURLQuery); kept parameter values are searched for URLs of their own. depth is
// as for stripEmbeddedURLs.
func urlFindings(s string, offset int, allow allowFunc, depth int, out []Finding) []Finding {
	for st, end, next := nextEmbeddedURL(s, 0); st >= 0; st, end, next = nextEmbeddedURL(s, next) {
		out = urlPartFindings(s[st:end], offset+st, allow, depth, out)
	}
	return out
}

// urlPartFindings is urlFindings for the single URL u, found at offset.
func urlPartFindings(u string, offset int, allow allowFunc, depth int, out []Finding) []Finding {
	rest := u
	if k := strings.IndexByte(u, '#'); k >= 0 {
		rest = u[:k]
	}
	head := rest
	qs := -1
	if k := strings.IndexByte(rest, '?'); k >= 0 {
		head, qs = rest[:k], k+1
	}
	if as, ae := authorityBounds(head); as >= 0 {
		hostStart := as
		if ue := userinfoEnd(head, as, ae); ue >= 0 {
			out = append(out, Finding{Kind: KindToken, Start: offset + as, End: offset + ue})
			hostStart = ue
		}
		if he := bracketIPHost(head, hostStart, ae); he >= 0 {
			out = append(out, Finding{Kind: KindIP, Start: offset + hostStart, End: offset + he})
		}
	}
	if qs >= 0 {
		for p := qs; p <= len(rest); {
			e := p + strings.IndexByte(rest[p:], '&')
			if e < p {
				e = len(rest)
			}
			name, value, hasValue := strings.Cut(rest[p:e], "=")
			switch {
			case name == "" && !hasValue:
			case name == "" || !allow(decodeParamName(name)),
				hasValue && depth+1 >= maxURLDepth && strings.Contains(value, "://"):
				out = append(out, Finding{Kind: KindURLQuery, Start: offset + p, End: offset + e})
			case hasValue && strings.Contains(value, "://"):
				out = urlFindings(value, offset+p+len(name)+1, allow, depth+1, out)
			}
			p = e + 1
		}
	}
	if len(rest) < len(u) {
		out = append(out, Finding{Kind: KindURLQuery, Start: offset + len(rest), End: offset + len(u)})
	}
	return out
}
