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
