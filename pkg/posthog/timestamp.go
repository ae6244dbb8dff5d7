package posthog

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// MaxFutureSkew is how far in the future an event time may be before it is clamped to the server
// time, as PostHog does.
const MaxFutureSkew = 23 * time.Hour

// errBadTimestamp is returned by ParseTimestamp; callers treat an unparseable time as absent.
var errBadTimestamp = errors.New("posthog: unrecognised timestamp")

// ParseTimestamp parses a time the way PostHog ingestion does, leniently: RFC 3339 with any fraction,
// zone offsets written +03, +0300 or +03:00, a space instead of the T (ClickHouse DateTime64 text), no
// zone (UTC), a bare date, and numeric epochs in seconds or milliseconds. The result is in UTC.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, ok := parseCommonTime(s); ok {
		return t, nil
	}
	return parseLenient(s)
}

// parseLenient is ParseTimestamp by time.Parse and the layouts, for a trimmed s.
func parseLenient(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errBadTimestamp
	}
	if len(s) > 10 && s[10] == ' ' {
		// ClickHouse text: neither RFC 3339 nor a number (each failed attempt costs an error value),
		// so go straight to the T form
		return parseSpaced(s)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, ok := parseEpoch(s); ok {
		return t, nil
	}
	return parseLayouts(s)
}

// timestampOf is ParseTimestamp for a raw JSON value (scalarText's text of it), without making a
// string of the time for the common forms.
func timestampOf(raw []byte) (time.Time, error) {
	if n := len(raw); n > 2 && raw[0] == '"' && raw[n-1] == '"' {
		if t, ok := parseCommonTime(raw[1 : n-1]); ok {
			return t, nil
		}
	}
	return ParseTimestamp(scalarText(raw))
}

// parseCommonTime reads, in UTC, the forms of time nearly every event carries:
// "2006-01-02T15:04:05", a fraction of any length ('.' and digits) after it, then "Z", a ±hh:mm
// offset or no zone (UTC), with a space in place of the T allowed. It reports false for anything
// else, and for a field out of range, leaving those to ParseTimestamp's layouts; what it reads it
// reads to the same time they would, fraction digits past the ninth dropped as time.Parse drops
// them. s holds no escapes: its bytes are the text.
func parseCommonTime[S string | []byte](s S) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05") || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
		s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	century, ok1 := twoDigits(s[0], s[1], 99)
	years, ok2 := twoDigits(s[2], s[3], 99)
	month, ok3 := twoDigits(s[5], s[6], 12)
	day, ok4 := twoDigits(s[8], s[9], 31)
	hour, ok5 := twoDigits(s[11], s[12], 23)
	minute, ok6 := twoDigits(s[14], s[15], 59)
	sec, ok7 := twoDigits(s[17], s[18], 59)
	year := century*100 + years
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || day < 1 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) >= 2 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' {
		n := 1
		for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
			if n <= 9 {
				nsec = nsec*10 + int(rest[n]-'0')
			}
		}
		for digits := n - 1; digits < 9; digits++ {
			nsec *= 10
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 0 || (len(rest) == 1 && rest[0] == 'Z'):
	case len(rest) == len("-07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		hh, okH := twoDigits(rest[1], rest[2], 23)
		mm, okM := twoDigits(rest[4], rest[5], 59)
		if !okH || !okM {
			return time.Time{}, false
		}
		offset = (hh*60 + mm) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, true
}

// twoDigits reads two decimal digits as a number, and reports whether they are digits and the
// number is at most max.
func twoDigits(hi, lo byte, max int) (int, bool) {
	hi, lo = hi-'0', lo-'0'
	n := int(hi)*10 + int(lo)
	return n, hi <= 9 && lo <= 9 && n <= max
}

// daysIn returns the number of days of month in year.
func daysIn(month time.Month, year int) int {
	switch month {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// parseSpaced parses a time with a space instead of the T.
func parseSpaced(s string) (time.Time, error) {
	s = s[:10] + "T" + s[11:]
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return parseLayouts(s)
}

// parseLayouts tries the lenient layouts: no zone, short zones, a spaced zone, a bare date.
func parseLayouts(s string) (time.Time, error) {
	for _, layout := range []string{
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04:05.999999999Z07",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999 Z07:00",
		"2006-01-02",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errBadTimestamp
}

// parseEpoch reads a numeric epoch: milliseconds when it is large enough to be (after the year
// 5138 in seconds), seconds otherwise; fractions allowed.
func parseEpoch(s string) (time.Time, bool) {
	c := s[0]
	if c != '-' && (c < '0' || c > '9') {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f > 1e17 || f < -1e17 {
		return time.Time{}, false
	}
	if f >= 1e11 || f <= -1e11 {
		f /= 1000
	}
	sec := int64(f)
	nsec := int64((f - float64(sec)) * 1e9)
	// round to the microsecond: float seconds carry noise below it
	nsec = (nsec + 500) / 1000 * 1000
	return time.Unix(sec, nsec).UTC(), true
}

// ClientTime is what a client said about an event's time, and when it sent it.
type ClientTime struct {
	Timestamp    time.Time     // the event's own timestamp; zero when absent or unparseable
	Offset       time.Duration // how long before the send the event happened
	HasOffset    bool          // Offset was given; it wins over Timestamp
	SentAt       time.Time     // when the request was sent, by the client's clock; zero when unknown
	IgnoreSentAt bool          // properties.$ignore_sent_at: no skew correction
}

// Resolve computes the event time from now (the server's receive time) by PostHog's rules:
//  1. an offset gives now − offset;
//  2. else a timestamp and a sent_at give timestamp corrected for the client's clock skew,
//     timestamp − (sent_at − now), unless IgnoreSentAt;
//  3. else the timestamp as given; 4. else now.
//
// A result more than MaxFutureSkew after now becomes now; a year outside 0–9999 becomes the Unix
// epoch. The result is in UTC.
func (c ClientTime) Resolve(now time.Time) time.Time {
	var t time.Time
	switch {
	case c.HasOffset:
		t = now.Add(-c.Offset)
	case !c.Timestamp.IsZero() && !c.SentAt.IsZero() && !c.IgnoreSentAt:
		t = c.Timestamp.Add(now.Sub(c.SentAt))
	case !c.Timestamp.IsZero():
		t = c.Timestamp
	default:
		t = now
	}
	if t.After(now.Add(MaxFutureSkew)) {
		t = now
	}
	if y := t.Year(); y < 0 || y > 9999 {
		t = time.Unix(0, 0)
	}
	return t.UTC()
}
