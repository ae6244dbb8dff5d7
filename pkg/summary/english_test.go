package summary

import (
	"testing"
	"time"
)

func TestCounting(t *testing.T) {
	tests := []struct {
		n                      int
		word, times, moreTimes string
	}{
		{1, "one", "once", "once more"},
		{2, "two", "twice", "twice more"},
		{3, "three", "three times", "three more times"},
		{10, "ten", "ten times", "ten more times"},
		{11, "11", "11 times", "11 more times"},
	}
	for _, tt := range tests {
		if got := numberWord(tt.n); got != tt.word {
			t.Errorf("numberWord(%d) = %q, want %q", tt.n, got, tt.word)
		}
		if got := times(tt.n); got != tt.times {
			t.Errorf("times(%d) = %q, want %q", tt.n, got, tt.times)
		}
		if got := moreTimes(tt.n); got != tt.moreTimes {
			t.Errorf("moreTimes(%d) = %q, want %q", tt.n, got, tt.moreTimes)
		}
	}
}

func TestOxfordJoin(t *testing.T) {
	tests := []struct {
		items []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b"}, "a and b"},
		{[]string{"a", "b", "c"}, "a, b, and c"},
		{[]string{"a", "b", "c", "d"}, "a, b, c, and d"},
	}
	for _, tt := range tests {
		if got := oxfordJoin(tt.items); got != tt.want {
			t.Errorf("oxfordJoin(%q) = %q, want %q", tt.items, got, tt.want)
		}
	}
}

func TestWithArticle(t *testing.T) {
	for phrase, want := range map[string]string{
		"payment validation error":     "a payment validation error",
		"integration connection error": "an integration connection error",
		"upload error":                 "an upload error",
		"user update error":            "a user update error",
		"unique constraint error":      "a unique constraint error",
		"one-time code error":          "a one-time code error",
		"api error":                    "an api error",
	} {
		if got := withArticle(phrase); got != want {
			t.Errorf("withArticle(%q) = %q, want %q", phrase, got, want)
		}
	}
}

func TestDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second:                     "1 second",
		52 * time.Second:                "52 seconds",
		95 * time.Second:                "95 seconds",
		3*time.Minute + 20*time.Second:  "3 minutes",
		34*time.Minute + 40*time.Second: "35 minutes",
		time.Hour:                       "1 hour",
		80 * time.Minute:                "1 hour 20 minutes",
		2*time.Hour + time.Minute:       "2 hours 1 minute",
	} {
		if got := spanDuration(d); got != want {
			t.Errorf("spanDuration(%s) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		2 * time.Minute:                "Two minutes later",
		8*time.Minute + 10*time.Second: "Eight minutes later",
		25 * time.Minute:               "25 minutes later",
		70 * time.Minute:               "An hour later",
		3 * time.Hour:                  "Three hours later",
	} {
		if got := gapPhrase(d); got != want {
			t.Errorf("gapPhrase(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestClock(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		first, last string
		want        string
	}{
		{"2025-03-04T10:15:02Z", "2025-03-04T10:15:54Z", "10:15:02"},
		{"2025-03-04T09:02:10Z", "2025-03-04T09:36:02Z", "09:02"},
		{"2025-03-04T23:55:00Z", "2025-03-05T00:03:00Z", "Mar 4 23:55:00"},
		{"2025-03-04T12:15:02+02:00", "2025-03-04T12:15:03+02:00", "10:15:02"},
	}
	for _, tt := range tests {
		first := at(tt.first)
		if got := newClock(first, at(tt.last)).format(first); got != tt.want {
			t.Errorf("clock for %s to %s formats the start as %q, want %q", tt.first, tt.last, got, tt.want)
		}
	}
}

func TestCapitalise(t *testing.T) {
	for in, want := range map[string]string{"over 52 seconds": "Over 52 seconds", "": "", "élan": "Élan", "Already": "Already"} {
		if got := capitalise(in); got != want {
			t.Errorf("capitalise(%q) = %q, want %q", in, got, want)
		}
	}
}
