package redact

import "strings"

// Check-digit algorithms of the numbers the detector recognises. Each takes the characters of one
// candidate (digits, or digits and letters for IBAN and tax codes) with separators already removed.

// luhnValid reports whether digits (ASCII '0'-'9' only) pass the Luhn (mod 10) check used by
// payment cards and Canadian social insurance numbers.
func luhnValid[T ~string | ~[]byte](digits T) bool {
	if len(digits) == 0 {
		return false
	}
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ibanValid reports whether the compact IBAN s (country code, check digits, BBAN; letters in either
// case) passes the ISO 13616 mod-97 check.
func ibanValid[T ~string | ~[]byte](s T) bool {
	if len(s) < 5 {
		return false
	}
	rem := 0
	add := func(c byte) bool {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A') + 10) % 97
		case c >= 'a' && c <= 'z':
			rem = (rem*100 + int(c-'a') + 10) % 97
		default:
			return false
		}
		return true
	}
	for i := 4; i < len(s); i++ {
		if !add(s[i]) {
			return false
		}
	}
	for i := 0; i < 4; i++ {
		if !add(s[i]) {
			return false
		}
	}
	return rem == 1
}

// verhoeffValid reports whether digits pass the Verhoeff check used by Indian Aadhaar numbers.
func verhoeffValid(digits []byte) bool {
	const (
		// d is the dihedral group D5 multiplication table, p the permutation table, both flattened.
		d = "0123456789" + "1234067895" + "2340178956" + "3401289567" + "4012395678" +
			"5987604321" + "6598710432" + "7659821043" + "8765932104" + "9876543210"
		p = "0123456789" + "1576283094" + "5803796142" + "8916043527" +
			"9453126870" + "4286573901" + "2793806415" + "7046913258"
	)
	c := 0
	for i := 0; i < len(digits); i++ {
		n := int(digits[len(digits)-1-i] - '0')
		pi := int(p[(i%8)*10+n] - '0')
		c = int(d[c*10+pi] - '0')
	}
	return c == 0
}

// dniLetters maps a Spanish DNI/NIE number modulo 23 to its check letter.
const dniLetters = "TRWAGMYFPDXBNJZSQVHLCKE"

// dniValid reports whether eight digits and a letter form a valid Spanish DNI.
func dniValid(digits string, letter byte) bool {
	n := 0
	for i := 0; i < len(digits); i++ {
		n = n*10 + int(digits[i]-'0')
	}
	return dniLetters[n%23] == letter
}

// cpfValid reports whether eleven digits form a valid Brazilian CPF (two mod-11 check digits).
func cpfValid(d []byte) bool {
	if len(d) != 11 {
		return false
	}
	same := true
	for _, c := range d[1:] {
		if c != d[0] {
			same = false
			break
		}
	}
	if same { // 000.000.000-00, 111.111.111-11 … pass the arithmetic but are never issued
		return false
	}
	check := func(n int) byte {
		sum := 0
		for i := 0; i < n; i++ {
			sum += int(d[i]-'0') * (n + 1 - i)
		}
		r := sum * 10 % 11
		if r == 10 {
			r = 0
		}
		return byte('0' + r)
	}
	return check(9) == d[9] && check(10) == d[10]
}

// codiceFiscaleValid reports whether s (16 uppercase characters) is an Italian tax code with a
// correct check character, including the letter substitutions used for homonyms (omocodia).
func codiceFiscaleValid(s string) bool {
	if len(s) != 16 {
		return false
	}
	const omocodia = "LMNPQRSTUV"
	isDigitOrSub := func(c byte) bool {
		return isDigit(c) || (c >= 'A' && c <= 'Z' && strings.IndexByte(omocodia, c) >= 0)
	}
	for i := 0; i < 15; i++ {
		c := s[i]
		switch i {
		case 6, 7, 9, 10, 12, 13, 14:
			if !isDigitOrSub(c) {
				return false
			}
		default:
			if c < 'A' || c > 'Z' {
				return false
			}
		}
	}
	// Values of characters in odd (1st, 3rd, …) positions, for '0'-'9' and then 'A'-'Z'.
	oddDigits := [10]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21}
	oddLetters := [26]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}
	sum := 0
	for i := 0; i < 15; i++ {
		c := s[i]
		if i%2 == 0 {
			if isDigit(c) {
				sum += oddDigits[c-'0']
			} else {
				sum += oddLetters[c-'A']
			}
		} else {
			if isDigit(c) {
				sum += int(c - '0')
			} else {
				sum += int(c - 'A')
			}
		}
	}
	return s[15] == byte('A'+sum%26)
}
