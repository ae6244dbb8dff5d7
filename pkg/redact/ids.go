package redact

import "strings"

// Matchers for identifiers that start with letters: IBANs and the lettered national ids (UK
// National Insurance numbers, Spanish NIE, Italian codice fiscale). Like the numeric matchers they
// take a start at a left boundary and return the end of the match or -1.

// ibanCountries lists the two-letter codes of the countries that issue IBANs (the SWIFT IBAN
// registry, plus partial members that use the format).
const ibanCountries = "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO DZ EE EG ES FI FK FO FR GB GE " +
	"GI GL GR GT HN HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO " +
	"OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"

func ibanCountry(a, b byte) bool {
	if isLower(a) {
		a -= 'a' - 'A'
	}
	if isLower(b) {
		b -= 'a' - 'A'
	}
	for k := 0; k+1 < len(ibanCountries); k += 3 {
		if ibanCountries[k] == a && ibanCountries[k+1] == b {
			return true
		}
	}
	return false
}

// matchIBAN matches an IBAN, compact ("DE89370400440532013000") or in groups of four separated by
// single spaces ("DE89 3704 0044 0532 0130 00"), of an IBAN country, 15-34 characters, mod-97 valid.
// The compact form must be upper case: lower-case hex ids ("ae19fdc2a9962ae5") would otherwise pass
// the mod-97 check one time in 97.
func matchIBAN(s string, i int) int {
	if i+4 > len(s) || !isAlpha(s[i]) || !isAlpha(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) ||
		!ibanCountry(s[i], s[i+1]) {
		return -1
	}
	j := i + 4
	upper := isUpper(s[i]) && isUpper(s[i+1])
	for j < len(s) && isAlnum(s[j]) {
		upper = upper && !isLower(s[j])
		j++
	}
	if n := j - i; n != 4 {
		if upper && n >= 15 && n <= 34 && rightBoundary(s, j) && ibanValid(s[i:j]) {
			return j
		}
		return -1
	}
	var buf [34]byte
	copy(buf[:], s[i:i+4])
	n := 4
	best := -1
	for j+1 < len(s) && s[j] == ' ' && isAlnum(s[j+1]) {
		g := 0
		for j+1+g < len(s) && isAlnum(s[j+1+g]) {
			g++
		}
		if g > 4 || n+g > 34 {
			break
		}
		copy(buf[n:], s[j+1:j+1+g])
		n += g
		j += 1 + g
		if n >= 15 && (rightBoundary(s, j) || (j+1 < len(s) && s[j] == ' ' && isAlnum(s[j+1]))) && ibanValid(buf[:n]) {
			best = j
		}
		if g < 4 {
			break
		}
	}
	return best
}

// matchNINO matches a UK National Insurance number: two prefix letters HMRC allocates, six digits
// (together or in pairs) and a suffix A-D: "AB123456C", "AB 12 34 56 C", "AB 123456 C". The
// documented placeholder prefix QQ is matched too.
func matchNINO(s string, i int) int {
	if i+9 > len(s) || !isUpper(s[i]) || !isUpper(s[i+1]) {
		return -1
	}
	a, b := s[i], s[i+1]
	if a != 'Q' || b != 'Q' {
		if strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIOQUV", b) >= 0 {
			return -1
		}
		switch uint16(a)<<8 | uint16(b) {
		case 'B'<<8 | 'G', 'G'<<8 | 'B', 'K'<<8 | 'N', 'N'<<8 | 'K', 'N'<<8 | 'T', 'T'<<8 | 'N', 'Z'<<8 | 'Z':
			return -1
		}
	}
	j := i + 2
	switch {
	case countDigits(s, j) == 6:
		j += 6
	case s[j] == ' ' && countDigits(s, j+1) == 6:
		j += 7
	case s[j] == ' ' && countDigits(s, j+1) == 2 && j+9 < len(s) && s[j+3] == ' ' && countDigits(s, j+4) == 2 &&
		s[j+6] == ' ' && countDigits(s, j+7) == 2:
		j += 9
	default:
		return -1
	}
	if j < len(s) && s[j] == ' ' && i+2 < len(s) && s[i+2] == ' ' {
		j++ // the spaced forms put a space before the suffix as well
	}
	if j >= len(s) || s[j] < 'A' || s[j] > 'D' || !rightBoundary(s, j+1) {
		return -1
	}
	return j + 1
}

// matchNIE matches a Spanish foreigner id: X, Y or Z, seven digits and the check letter.
func matchNIE(s string, i int) int {
	c := s[i]
	if (c != 'X' && c != 'Y' && c != 'Z') || countDigits(s, i+1) != 7 {
		return -1
	}
	j := i + 8
	if j < len(s) && s[j] == '-' {
		j++
	}
	if j >= len(s) || !isUpper(s[j]) || !rightBoundary(s, j+1) {
		return -1
	}
	n := int(c - 'X')
	for k := i + 1; k < i+8; k++ {
		n = n*10 + int(s[k]-'0')
	}
	if dniLetters[n%23] != s[j] {
		return -1
	}
	return j + 1
}

// matchCodiceFiscale matches an Italian tax code ("RSSMRA85T10A562S") with a valid check letter.
func matchCodiceFiscale(s string, i int) int {
	if i+16 > len(s) {
		return -1
	}
	for k := i; k < i+6; k++ {
		if !isUpper(s[k]) {
			return -1
		}
	}
	if i+16 < len(s) && isAlnum(s[i+16]) {
		return -1
	}
	if !rightBoundary(s, i+16) || !codiceFiscaleValid(s[i:i+16]) {
		return -1
	}
	return i + 16
}
