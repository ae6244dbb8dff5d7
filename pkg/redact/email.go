package redact

// Email addresses are found from their '@' (or a URL-encoded "%40"): the local part is read
// backwards, the domain forwards.

// isLocalChar reports whether c may appear in the local part of an address. Bytes of non-ASCII
// characters are accepted (internationalised addresses).
func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80
}

// notTLDs are file extensions that follow an '@' in asset names ("logo@2x.png") and are not
// top-level domains.
const notTLDs = "png jpg jpeg gif svg webp avif ico bmp tif tiff css js mjs cjs map json html htm txt"

// validTLD reports whether label can end an email domain: two or more letters (or a punycode
// label), and not a file extension.
func validTLD(label string) bool {
	if len(label) < 2 {
		return false
	}
	if len(label) > 4 && hasPrefixFold(label, "xn--") {
		return true
	}
	for i := 0; i < len(label); i++ {
		if !isAlpha(label[i]) {
			return false
		}
	}
	return !listHasFold(notTLDs, label)
}

// listHasFold reports whether the space-separated lowercase word list has w, ignoring case.
func listHasFold(list, w string) bool {
	for start := 0; start < len(list); {
		for start < len(list) && list[start] == ' ' {
			start++
		}
		end := start
		for end < len(list) && list[end] != ' ' {
			end++
		}
		if end-start == len(w) && hasPrefixFold(w, list[start:end]) {
			return true
		}
		start = end
	}
	return false
}

// maxLocalPart is the longest local part an address may have (RFC 5321); the matcher reads no
// further back, which keeps a string of many '@' linear to scan.
const maxLocalPart = 64

// matchEmail matches the address around the '@' at s[at:after] (after is past "%40" when encoded).
// The local part does not reach back before floor (the end of the previous finding). It returns the
// start and end of the address, or -1, -1.
func matchEmail(s string, floor, at, after int) (start, end int) {
	st := at
	for st > floor && at-st < maxLocalPart && isLocalChar(s[st-1]) {
		st--
	}
	for st < at && s[st] == '.' {
		st++
	}
	if st == at {
		return -1, -1
	}
	j := after
	labels, best := 0, -1
	for {
		ls := j
		for j < len(s) && (isAlnum(s[j]) || s[j] == '-') {
			j++
		}
		if j == ls {
			break
		}
		labels++
		if labels >= 2 && validTLD(s[ls:j]) {
			best = j
		}
		if j+1 < len(s) && s[j] == '.' && isAlnum(s[j+1]) {
			j++
			continue
		}
		break
	}
	if best < 0 {
		return -1, -1
	}
	return st, best
}
