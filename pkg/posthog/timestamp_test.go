package posthog

import (
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2025, 3, 14, 10, 15, 2, 203000000, time.UTC)
	for _, in := range []string{
		"2025-03-14T10:15:02.203Z",
		"2025-03-14T10:15:02.203000+00:00",
		"2025-03-14 10:15:02.203000", // ClickHouse DateTime64(6), UTC
		"2025-03-14T10:15:02.203",    // no zone: UTC
		"2025-03-14T13:15:02.203+03", // short offset
		"2025-03-14T13:15:02.203+0300",
		"2025-03-14T05:15:02.203-05:00",
		"1741947302203",  // epoch milliseconds
		"1741947302.203", // epoch seconds
		" 2025-03-14T10:15:02.203Z ",
	} {
		got, err := ParseTimestamp(in)
		if err != nil {
			t.Errorf("ParseTimestamp(%q): %v", in, err)
			continue
		}
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %s, want %s in UTC", in, got, want)
		}
	}
	if got, err := ParseTimestamp("2025-03-14"); err != nil || !got.Equal(time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date only: %s, %v", got, err)
	}
	for _, bad := range []string{"", "yesterday", "2025-13-40T99:00:00Z", "12:00", "NaN", "1e400"} {
		if got, err := ParseTimestamp(bad); err == nil {
			t.Errorf("ParseTimestamp(%q) = %s, want an error", bad, got)
		}
	}
}

func TestClientTimeResolve(t *testing.T) {
	now := time.Date(2025, 3, 14, 10, 15, 34, 85000000, time.UTC)
	ts := time.Date(2025, 3, 14, 10, 15, 31, 0, time.UTC)
	for _, c := range []struct {
		name string
		in   ClientTime
		want time.Time
	}{
		{"offset wins", ClientTime{Timestamp: ts, Offset: 2388 * time.Millisecond, HasOffset: true, SentAt: ts}, now.Add(-2388 * time.Millisecond)},
		{"zero offset is an offset", ClientTime{Timestamp: ts, HasOffset: true}, now},
		// the client clock is 10 minutes behind: its sent_at reads 10:05:34, so the event
		// happened 3.085 s before the server received the request
		{"skew corrected", ClientTime{Timestamp: ts.Add(-10 * time.Minute), SentAt: now.Add(-10*time.Minute - 85*time.Millisecond)}, ts.Add(85 * time.Millisecond)},
		{"$ignore_sent_at", ClientTime{Timestamp: ts, SentAt: now.Add(-time.Hour), IgnoreSentAt: true}, ts},
		{"timestamp alone", ClientTime{Timestamp: ts}, ts},
		{"nothing", ClientTime{}, now},
		{"far future clamped", ClientTime{Timestamp: now.Add(24 * time.Hour)}, now},
		{"near future kept", ClientTime{Timestamp: now.Add(22 * time.Hour)}, now.Add(22 * time.Hour)},
		{"year 10000 clamped as future", ClientTime{Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, now},
		{"negative year", ClientTime{Timestamp: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), SentAt: now.Add(200 * 365 * 24 * time.Hour)}, time.Unix(0, 0).UTC()},
	} {
		if got := c.in.Resolve(now); !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("%s: Resolve = %s, want %s", c.name, got.Format(time.RFC3339Nano), c.want.Format(time.RFC3339Nano))
		}
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2025-03-14T10:15:02.203Z", "2025-03-14 10:15:02.203000", "1741947302203", "+03", "-1e11", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTimestamp(s)
		if err != nil {
			return
		}
		if ts.Location() != time.UTC {
			t.Fatalf("%q: %s not in UTC", s, ts)
		}
		got := ClientTime{Timestamp: ts, SentAt: now.Add(-time.Second)}.Resolve(now)
		if y := got.Year(); y < 0 || y > 9999 || got.After(now.Add(MaxFutureSkew)) {
			t.Fatalf("%q resolved to %s", s, got)
		}
	})
}

// commonTimes are times in the forms parseCommonTime reads, and near misses it must leave alone.
var commonTimes = []string{
	"2025-03-14T10:15:02.203Z", "2025-03-14 10:15:02.203000", "2025-03-14T10:15:02", "2025-03-14T10:15:02Z",
	"2025-03-14T10:15:02.1234567891234Z", "2025-03-14T13:15:02.203+03:00", "2025-03-14T05:15:02-05:30",
	"2025-03-14 13:15:02.2+23:59", "2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z", "2000-02-29 23:59:59",
	"1900-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-00:00",
	"2025-03-14T24:00:00Z", "2025-03-14T10:60:00Z", "2025-03-14T10:15:60Z", "2025-00-14T10:15:02Z",
	"2025-03-00T10:15:02Z", "2025-04-31T10:15:02Z", "2025-03-14T10:15:02.Z", "2025-03-14T10:15:02,203Z",
	"2025-03-14T10:15:02.203z", "2025-03-14T10:15:02+24:00", "2025-03-14T10:15:02+03:60",
	"2025-03-14T10:15:02+0300", "2025-03-14T10:15:02+03", "2025-03-14t10:15:02Z", "2025-3-14T10:15:02Z",
	"2025-03-14T1:15:02Z", "2025-03-14T10:15:02 Z", "2025-03-14T10:15:02.203 +03:00", "2025-03-14T10:15:02.2x",
	"2025-03-14 10:15:02.203000 ", "+025-03-14T10:15:02Z", "2025-03-14T10:15:0aZ",
}

// TestParseCommonTime checks that the fast path reads every time it accepts to the time the lenient
// layouts read it to.
func TestParseCommonTime(t *testing.T) {
	for _, s := range commonTimes {
		checkCommonTime(t, s)
	}
}

func checkCommonTime(t *testing.T, s string) {
	t.Helper()
	got, ok := parseCommonTime(s)
	if !ok {
		return
	}
	if got != got.UTC() {
		t.Fatalf("%q: %s not in UTC", s, got)
	}
	want, err := parseLenient(s)
	if err != nil || got != want {
		t.Fatalf("%q: fast path %s, layouts %s (%v)", s, got, want, err)
	}
	if fromBytes, ok := parseCommonTime([]byte(s)); !ok || fromBytes != got {
		t.Fatalf("%q: from bytes %s %v, from a string %s", s, fromBytes, ok, got)
	}
}

func FuzzParseCommonTime(f *testing.F) {
	for _, s := range commonTimes {
		f.Add(s)
	}
	f.Fuzz(checkCommonTime)
}
