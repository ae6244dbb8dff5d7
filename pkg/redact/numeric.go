package redact

import "net/netip"

// Matchers for patterns made mostly of digits: IP addresses, national ids, card numbers and phone
// numbers. Each takes the string and a start index at a left boundary and returns the end of the
// match, or -1. They do not allocate (an IPv6 candidate that passes the shape check and then
// fails to parse is the exception).

// matchIPv4 matches a dotted-quad IPv4 address. Leading zeros are not addresses ("01.02.03.04") and a
// last octet of 0 is a network or a product version, not a host ("Chrome/134.0.0.0").
func matchIPv4(s string, i int) int {
	j := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(s) || s[j] != '.' {
				return -1
			}
			j++
		}
		n := countDigits(s, j)
		if n == 0 || n > 3 || (n > 1 && s[j] == '0') {
			return -1
		}
		v := 0
		for k := j; k < j+n; k++ {
			v = v*10 + int(s[k]-'0')
		}
		if v > 255 || (part == 3 && v == 0) {
			return -1
		}
		j += n
	}
	if j < len(s) {
		c := s[j]
		if isWord(c) || c == '@' || maskStartsAt(s, j) ||
			(c == '.' && j+1 < len(s) && (isDigit(s[j+1]) || maskStartsAt(s, j+1))) {
			return -1
		}
	}
	return j
}

// matchIPv6 matches an IPv6 address (with an optional zone), validated by net/netip. It needs at
// least two colons and four hex digits, so times ("10:15:02") and C++ scopes ("a::b") are not
// addresses.
func matchIPv6(s string, i int) int {
	const maxLen = 45 // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
	j := i
	colons, hexDigits := 0, 0
	for j < len(s) {
		if j-i > maxLen {
			return -1
		}
		c := s[j]
		if c == ':' {
			colons++
		} else if isHex(c) {
			hexDigits++
		} else if c != '.' {
			break
		}
		j++
	}
	if colons < 2 || hexDigits < 4 {
		return -1
	}
	for j > i && (s[j-1] == '.' || (s[j-1] == ':' && (j-2 < i || s[j-2] != ':'))) {
		j-- // sentence punctuation after the address: "… fe80::1." or "fe80::1: error"
	}
	if !plausibleIPv6(s[i:j]) {
		return -1
	}
	end := j
	if end < len(s) && s[end] == '%' && end+1 < len(s) && isAlnum(s[end+1]) {
		end++ // zone, "fe80::1%eth0"
		for end < len(s) && (isAlnum(s[end]) || s[end] == '_' || s[end] == '.') {
			end++
		}
	}
	if end < len(s) && (isWord(s[end]) || s[end] == '@' || maskStartsAt(s, end)) {
		return -1
	}
	if _, err := netip.ParseAddr(s[i:j]); err != nil {
		return -1
	}
	return end
}

// plausibleIPv6 is a cheap shape check before parsing (a failed parse allocates its error): groups
// of at most four hex digits, and either "::" or seven colons (six before an IPv4 tail).
func plausibleIPv6(a string) bool {
	colons, group, dots := 0, 0, 0
	compressed := false
	for k := 0; k < len(a); k++ {
		switch c := a[k]; {
		case c == ':':
			colons++
			if k > 0 && a[k-1] == ':' {
				compressed = true
			}
			group = 0
		case c == '.':
			dots++
			group = 0
		default:
			group++
			if group > 4 {
				return false
			}
		}
	}
	if compressed {
		return colons <= 7
	}
	return colons == 7 || (colons == 6 && dots == 3)
}

// sepFollows reports whether s[j] is the separator sep followed by a digit: the number goes on.
func sepFollows(s string, j int, sep byte) bool {
	return j+1 < len(s) && s[j] == sep && isDigit(s[j+1])
}

// sepContinues is sepFollows that also counts a mask after the separator as the number going on
// (see maskEndsAt).
func sepContinues(s string, j int, sep byte) bool {
	return sepFollows(s, j, sep) || (j+1 < len(s) && s[j] == sep && maskStartsAt(s, j+1))
}

// matchSSN matches a US social security number, "123-45-6789" or "123 45 6789", with the ranges
// the SSA never issues (area 000, 666, 9xx; group 00; serial 0000) excluded.
func matchSSN(s string, i int) int {
	if countDigits(s, i) != 3 || i+3 >= len(s) {
		return -1
	}
	sep := s[i+3]
	if (sep != '-' && sep != ' ') || countDigits(s, i+4) != 2 || i+6 >= len(s) || s[i+6] != sep || countDigits(s, i+7) != 4 {
		return -1
	}
	end := i + 11
	area, group, serial := s[i:i+3], s[i+4:i+6], s[i+7:i+11]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return -1
	}
	if !rightBoundary(s, end) || sepContinues(s, end, sep) {
		return -1
	}
	return end
}

// matchSIN matches a Canadian social insurance number, "046-454-286" or "046 454 286", Luhn-checked.
func matchSIN(s string, i int) int {
	if countDigits(s, i) != 3 || i+3 >= len(s) {
		return -1
	}
	sep := s[i+3]
	if (sep != '-' && sep != ' ') || countDigits(s, i+4) != 3 || i+7 >= len(s) || s[i+7] != sep || countDigits(s, i+8) != 3 {
		return -1
	}
	end := i + 11
	if s[i] == '8' || !rightBoundary(s, end) || sepContinues(s, end, sep) {
		return -1
	}
	var d [9]byte
	copy(d[0:3], s[i:i+3])
	copy(d[3:6], s[i+4:i+7])
	copy(d[6:9], s[i+8:i+11])
	if !luhnValid(d[:]) {
		return -1
	}
	return end
}

// matchCPF matches a Brazilian CPF in its written form "123.456.789-09", check digits verified.
func matchCPF(s string, i int) int {
	if i+14 > len(s) || countDigits(s, i) != 3 || s[i+3] != '.' || countDigits(s, i+4) != 3 ||
		s[i+7] != '.' || countDigits(s, i+8) != 3 || s[i+11] != '-' || countDigits(s, i+12) != 2 {
		return -1
	}
	end := i + 14
	if !rightBoundary(s, end) {
		return -1
	}
	var d [11]byte
	copy(d[0:3], s[i:i+3])
	copy(d[3:6], s[i+4:i+7])
	copy(d[6:9], s[i+8:i+11])
	copy(d[9:11], s[i+12:i+14])
	if !cpfValid(d[:]) {
		return -1
	}
	return end
}

// matchDNI matches a Spanish DNI, eight digits and the check letter ("12345678Z", "12345678-Z").
func matchDNI(s string, i int) int {
	if countDigits(s, i) != 8 {
		return -1
	}
	j := i + 8
	if j < len(s) && s[j] == '-' {
		j++
	}
	if j >= len(s) || !isUpper(s[j]) || !rightBoundary(s, j+1) {
		return -1
	}
	if !dniValid(s[i:i+8], s[j]) {
		return -1
	}
	return j + 1
}

// matchAadhaar matches an Indian Aadhaar number written in groups, "2345 6789 0124", Verhoeff-checked.
func matchAadhaar(s string, i int) int {
	if s[i] < '2' || countDigits(s, i) != 4 || i+4 >= len(s) {
		return -1
	}
	sep := s[i+4]
	if (sep != ' ' && sep != '-') || countDigits(s, i+5) != 4 || i+9 >= len(s) || s[i+9] != sep || countDigits(s, i+10) != 4 {
		return -1
	}
	end := i + 14
	if !rightBoundary(s, end) || sepContinues(s, end, sep) {
		return -1
	}
	var d [12]byte
	copy(d[0:4], s[i:i+4])
	copy(d[4:8], s[i+5:i+9])
	copy(d[8:12], s[i+10:i+14])
	if !verhoeffValid(d[:]) {
		return -1
	}
	return end
}

// plausibleBareCard reports whether an unseparated run of digits has the length its issuer uses:
// Visa 13/16/19, Mastercard and Mir 16, Amex 15, Diners and JCB 14-19, Maestro, Discover and
// UnionPay 16-19. Runs of other shapes (millisecond timestamps, 15-digit platform ids) are not
// cards even when they pass Luhn by chance.
func plausibleBareCard(d string) bool {
	n := len(d)
	switch d[0] {
	case '4':
		return n == 13 || n == 16 || n == 19
	case '2':
		return n == 16
	case '3':
		if d[1] == '4' || d[1] == '7' {
			return n == 15
		}
		return n >= 14 && n <= 19
	case '5', '6':
		return n >= 16 && n <= 19
	}
	return false
}

// matchCard matches a payment card number: 13-19 digits, bare or written in groups separated by
// single spaces or dashes ("4242 4242 4242 4242", "3782-822463-10005"), Luhn-valid.
func matchCard(s string, i int) int {
	n0 := countDigits(s, i)
	if n0 >= 13 && n0 <= 19 {
		end := i + n0
		if rightBoundary(s, end) && plausibleBareCard(s[i:end]) && luhnValid(s[i:end]) {
			return end
		}
		return -1
	}
	if n0 != 4 || s[i] == '0' || i+5 >= len(s) {
		return -1 // no issuer number starts with 0
	}
	sep := s[i+4]
	if sep != ' ' && sep != '-' {
		return -1
	}
	var digits [19]byte
	copy(digits[:], s[i:i+4])
	total := 4
	var ends [16]int // ends[k]: the end of the candidate with total digits totals[k]
	var totals [16]int
	candidates := 0
	j := i + 4
	for sepFollows(s, j, sep) && candidates < len(ends) {
		g := countDigits(s, j+1)
		if g > 6 || total+g > 19 {
			break
		}
		copy(digits[total:], s[j+1:j+1+g])
		total += g
		j += 1 + g
		if total >= 13 {
			ends[candidates], totals[candidates] = j, total
			candidates++
		}
	}
	for k := candidates - 1; k >= 0; k-- {
		end := ends[k]
		if !(sepFollows(s, end, sep) || rightBoundary(s, end)) {
			continue
		}
		if luhnValid(digits[:totals[k]]) {
			return end
		}
	}
	return -1
}

// phoneRightBoundary is rightBoundary that also refuses a following ":<digit>", so the date and hour
// of "01 02 2025 14:30" are not read as a phone number.
func phoneRightBoundary(s string, j int) bool {
	if !rightBoundary(s, j) {
		return false
	}
	return !(j+1 < len(s) && s[j] == ':' && isDigit(s[j+1]))
}

func isPhoneSep(c byte) bool { return c == ' ' || c == '-' || c == '.' }

// matchNANP matches a North American number in its written forms: "415-555-0132", "415.555.0132",
// "415 555 0132", "(415) 555-0132", "1-415-555-0132". Area code and exchange start with 2-9. An
// unseparated run of ten digits is not matched: it is as likely a timestamp or an id.
func matchNANP(s string, i int) int {
	j := i
	if s[j] == '1' && j+2 < len(s) && isPhoneSep(s[j+1]) && (isDigit(s[j+2]) || s[j+2] == '(') {
		j += 2
	}
	var area byte
	if s[j] == '(' {
		if countDigits(s, j+1) != 3 || j+4 >= len(s) || s[j+4] != ')' {
			return -1
		}
		area = s[j+1]
		j += 5
		if j < len(s) && (s[j] == ' ' || s[j] == '-') {
			j++
		}
	} else {
		if countDigits(s, j) != 3 || j+3 >= len(s) || !isPhoneSep(s[j+3]) {
			return -1
		}
		area = s[j]
		j += 4
	}
	if area < '2' || countDigits(s, j) != 3 || s[j] < '2' || j+3 >= len(s) || !isPhoneSep(s[j+3]) {
		return -1
	}
	j += 4
	if countDigits(s, j) != 4 {
		return -1
	}
	j += 4
	if !phoneRightBoundary(s, j) {
		return -1
	}
	return j
}

// matchIntlPhone matches an international number after its prefix ("+" or "00"); from is the index
// of the country code. Groups are separated by single spaces, dashes or dots, with an optional
// parenthesised group ("+44 (0)20 7946 0958"); 8 to 15 digits. With needSep, a number without any
// separator is refused (a bare "00…" run is an order number more often than a phone).
func matchIntlPhone(s string, from int, needSep bool) int {
	j := from
	if j >= len(s) || s[j] < '1' || s[j] > '9' {
		return -1
	}
	digits, seps, best := 0, 0, -1
	for j < len(s) {
		c := s[j]
		switch {
		case isDigit(c):
			n := countDigits(s, j)
			digits += n
			j += n
			if digits > 15 {
				return best
			}
			if digits >= 8 && (!needSep || seps > 0) &&
				(phoneRightBoundary(s, j) || (j+1 < len(s) && isPhoneSep(s[j]) && isDigit(s[j+1]))) {
				best = j
			}
		case isPhoneSep(c) && j+1 < len(s) && (isDigit(s[j+1]) || s[j+1] == '('):
			seps++
			j++
		case c == '(':
			n := countDigits(s, j+1)
			if n < 1 || n > 4 || j+1+n >= len(s) || s[j+1+n] != ')' {
				return best
			}
			digits += n
			seps++
			j += n + 2
			if j < len(s) && s[j] == ' ' {
				j++
			}
			if j >= len(s) || !isDigit(s[j]) {
				return best
			}
		default:
			return best
		}
	}
	return best
}

// matchNationalPhone matches a number in a European national format: a trunk 0, then groups with one
// kind of separator ("030 1234567", "06 12 34 56 78", "020 7946 0958", "030/1234567"), 10 to 12
// digits in all.
func matchNationalPhone(s string, i int) int {
	if i+1 >= len(s) || s[i] != '0' || s[i+1] < '1' || s[i+1] > '9' {
		return -1
	}
	n0 := countDigits(s, i)
	if n0 < 2 || n0 > 5 || i+n0 >= len(s) {
		return -1
	}
	sep := s[i+n0]
	if sep != ' ' && sep != '-' && sep != '/' {
		return -1
	}
	j, total, best := i+n0, n0, -1
	for sepFollows(s, j, sep) {
		g := countDigits(s, j+1)
		if g < 2 || g > 8 || total+g > 12 {
			break
		}
		total += g
		j += 1 + g
		if total >= 10 && (sepFollows(s, j, sep) || phoneRightBoundary(s, j)) {
			best = j
		}
	}
	return best
}
