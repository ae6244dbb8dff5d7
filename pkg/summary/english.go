package summary

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds the small pieces of English the narrative is assembled from: number words,
// "once/twice/three times", Oxford-comma lists, articles, durations and clock times.

// numberWord spells out zero to ten and writes larger numbers in digits, as style guides do.
func numberWord(n int) string {
	words := [...]string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	if n >= 0 && n < len(words) {
		return words[n]
	}
	return strconv.Itoa(n)
}

// times says how often something happened: "once", "twice", "three times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return numberWord(n) + " times"
}

// moreTimes says how often something happened again: "once more", "twice more", "three more times".
func moreTimes(n int) string {
	switch n {
	case 1:
		return "once more"
	case 2:
		return "twice more"
	}
	return numberWord(n) + " more times"
}

// oxfordJoin joins items as an English list with a serial comma: "a", "a and b", "a, b, and c".
func oxfordJoin(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	case 2:
		return items[0] + " and " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + ", and " + items[len(items)-1]
}

// withArticle puts "a" or "an" before a noun phrase, by how its first word sounds.
func withArticle(phrase string) string {
	if phrase == "" {
		return ""
	}
	lower := strings.ToLower(phrase)
	an := strings.ContainsRune("aeiou", rune(lower[0]))
	for _, exception := range []string{"us", "uni", "eu", "one", "uti"} {
		if strings.HasPrefix(lower, exception) {
			an = false
		}
	}
	if an {
		return "an " + phrase
	}
	return "a " + phrase
}

// capitalise upper-cases the first letter of a sentence.
func capitalise(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// spanDuration says how long a session lasted: "52 seconds", "3 minutes", "1 hour 20 minutes".
// Durations are written in digits, like "over 40 seconds".
func spanDuration(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return plural(int(d.Round(time.Second)/time.Second), "second")
	case d < time.Hour:
		return plural(int(d.Round(time.Minute)/time.Minute), "minute")
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	if m == 0 {
		return plural(h, "hour")
	}
	return plural(h, "hour") + " " + plural(m, "minute")
}

// gapPhrase says how long after the previous step something happened: "Four minutes later".
func gapPhrase(d time.Duration) string {
	if d < time.Hour {
		m := int(d.Round(time.Minute) / time.Minute)
		return capitalise(numberWord(m)) + " " + pluralNoun(m, "minute") + " later"
	}
	h := int(d.Round(time.Hour) / time.Hour)
	if h == 1 {
		return "An hour later"
	}
	return capitalise(numberWord(h)) + " hours later"
}

func plural(n int, noun string) string {
	return fmt.Sprintf("%d %s", n, pluralNoun(n, noun))
}

func pluralNoun(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// clock formats clock times for one summary: to the second for short sessions, to the minute
// for long ones, with the date when the session crosses midnight.
type clock struct {
	layout string
}

func newClock(first, last time.Time) clock {
	layout := "15:04:05"
	if last.Sub(first) >= 10*time.Minute {
		layout = "15:04"
	}
	y1, m1, d1 := first.UTC().Date()
	y2, m2, d2 := last.UTC().Date()
	if y1 != y2 || m1 != m2 || d1 != d2 {
		layout = "Jan 2 " + layout
	}
	return clock{layout: layout}
}

func (c clock) format(t time.Time) string { return t.UTC().Format(c.layout) }
