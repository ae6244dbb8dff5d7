package notes

import (
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/threadline/threadline/pkg/messages"
)

// Batch is a run of actions of one conversation to render as numbered lines, starting at FirstSeq.
type Batch struct {
	FirstSeq        int
	PreConversation bool
	Actions         []messages.Action
	// RefBase makes the notes' reference tokens: each note's Ref is RefBase, a dash and its first
	// line number.
	RefBase string
}

// RenderOptions bounds and localises rendered notes.
type RenderOptions struct {
	Location *time.Location // time zone of the times; nil means UTC
	MaxLines int            // most lines per note; 0 means no limit
	MaxBytes int            // largest body in bytes; 0 means no limit
}

// Note is one rendered internal note: Intercom note HTML that uses only p, br and b.
type Note struct {
	Ref             string
	PreConversation bool
	Lines           []messages.NoteLine
	HTML            string
}

// Render turns a batch into one note, or into several when it exceeds the line or byte limit. Every
// piece of product text is HTML-escaped; lines are numbered from FirstSeq on; times are written in
// the chosen time zone; each note ends with its reference token. Render is pure.
func Render(b Batch, opts RenderOptions) []Note {
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	var notes []Note
	seq := b.FirstSeq
	rest := b.Actions
	for len(rest) > 0 {
		n := renderOne(b, seq, rest, loc, opts)
		notes = append(notes, n)
		seq += len(n.Lines)
		rest = rest[len(n.Lines):]
	}
	return notes
}

// renderOne renders as many leading actions of rest as fit in one note (always at least one).
func renderOne(b Batch, firstSeq int, rest []messages.Action, loc *time.Location, opts RenderOptions) Note {
	ref := b.RefBase + "-" + strconv.Itoa(firstSeq)
	day := dayOf(rest[0].EventTime.In(loc))
	footer := "<p>ref: " + html.EscapeString(ref) + "</p>"

	var lines []string
	size := 0 // bytes of the lines joined with <br>
	for i, a := range rest {
		if opts.MaxLines > 0 && i >= opts.MaxLines {
			break
		}
		seq := firstSeq + i
		head := heading(b.PreConversation, firstSeq, seq, day, loc, rest[0].EventTime)
		fixed := len("<p>") + len(head) + len("</p><p>") + len("</p>") + len(footer)
		sep := 0
		if i > 0 {
			sep = len("<br>")
		}
		bounded := opts.MaxBytes > 0
		budget := opts.MaxBytes - fixed - size - sep // bytes left for this line when bounded
		line, fits := renderLine(seq, a, day, loc, bounded, budget, i == 0)
		if !fits {
			break
		}
		lines = append(lines, line)
		size += sep + len(line)
	}

	last := firstSeq + len(lines) - 1
	var sb strings.Builder
	sb.WriteString("<p>")
	sb.WriteString(heading(b.PreConversation, firstSeq, last, day, loc, rest[0].EventTime))
	sb.WriteString("</p><p>")
	sb.WriteString(strings.Join(lines, "<br>"))
	sb.WriteString("</p>")
	sb.WriteString(footer)

	nl := make([]messages.NoteLine, len(lines))
	for i := range lines {
		nl[i] = messages.NoteLine{Seq: firstSeq + i, Action: rest[i]}
	}
	return Note{Ref: ref, PreConversation: b.PreConversation, Lines: nl, HTML: sb.String()}
}

// heading is the note's bold first paragraph: what the lines are, their numbers, the day and zone.
func heading(pre bool, from, to int, day string, loc *time.Location, first time.Time) string {
	title := "User activity"
	if pre {
		title = "User activity before this conversation"
	}
	lines := fmt.Sprintf("line %d", from)
	if to > from {
		lines = fmt.Sprintf("lines %d–%d", from, to)
	}
	zone := first.In(loc).Format("MST")
	return "<b>" + title + "</b> (" + lines + ", " + day + ", times in " + html.EscapeString(zone) + ")"
}

func dayOf(t time.Time) string { return t.Format("2 Jan 2006") }

// renderLine renders "[seq] 15:04:05 text". A line whose day differs from the note's day carries
// its date. When bounded and the line is longer than budget, the first line of a note has its text
// shortened to fit; any later line reports that it does not fit.
func renderLine(seq int, a messages.Action, day string, loc *time.Location, bounded bool, budget int, first bool) (string, bool) {
	t := a.EventTime.In(loc)
	stamp := t.Format("15:04:05")
	if dayOf(t) != day {
		stamp = t.Format("2 Jan 15:04:05")
	}
	prefix := "[" + strconv.Itoa(seq) + "] " + stamp + " "
	text := cleanText(a)
	line := prefix + html.EscapeString(text)
	if !bounded || len(line) <= budget {
		return line, true
	}
	if !first {
		return "", false
	}
	return prefix + shorten(text, budget-len(prefix)), true
}

// cleanText is the action's sentence (or its event name), on one line, without control characters.
func cleanText(a messages.Action) string {
	text := a.Text
	if strings.TrimSpace(text) == "" {
		text = a.Event
	}
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r) || r == utf8.RuneError:
			return -1
		}
		return r
	}, text)
	return strings.TrimSpace(text)
}

// shorten escapes text and cuts it (at a rune boundary of the unescaped text) so that the escaped
// result, with an ellipsis, takes at most max bytes.
func shorten(text string, max int) string {
	const ellipsis = "…"
	if max < len(ellipsis) {
		return ""
	}
	runes := []rune(text)
	lo, hi := 0, len(runes)
	for lo < hi { // longest prefix whose escaped form plus the ellipsis fits
		mid := (lo + hi + 1) / 2
		if len(html.EscapeString(string(runes[:mid])))+len(ellipsis) <= max {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return html.EscapeString(string(runes[:lo])) + ellipsis
}

// RenderSummary renders a summary note: a heading naming the lines it covers, the summary text
// (escaped, one paragraph per blank-line-separated block, line breaks kept) and the reference token.
// A text too long for maxBytes (when positive) is shortened.
func RenderSummary(s messages.ConversationSummary, ref string, maxBytes int) string {
	head := "<p><b>Summary of the user's activity</b>"
	switch {
	case s.FromSeq > 0 && s.ToSeq > s.FromSeq:
		head += fmt.Sprintf(" (lines %d–%d)", s.FromSeq, s.ToSeq)
	case s.FromSeq > 0:
		head += fmt.Sprintf(" (line %d)", s.FromSeq)
	}
	head += "</p>"
	footer := "<p>ref: " + html.EscapeString(ref) + "</p>"

	text := strings.ReplaceAll(strings.ReplaceAll(s.Text, "\r\n", "\n"), "\r", "\n")
	var paras []string
	for _, block := range strings.Split(text, "\n\n") {
		var rows []string
		for _, row := range strings.Split(block, "\n") {
			row = strings.TrimSpace(strings.Map(func(r rune) rune {
				if r == '\t' {
					return ' '
				}
				if unicode.IsControl(r) {
					return -1
				}
				return r
			}, row))
			if row != "" {
				rows = append(rows, row)
			}
		}
		if len(rows) > 0 {
			paras = append(paras, strings.Join(rows, "\n"))
		}
	}
	body := renderParagraphs(paras)
	if maxBytes > 0 && len(head)+len(body)+len(footer) > maxBytes {
		joined := strings.Join(paras, " ")
		budget := maxBytes - len(head) - len(footer) - len("<p></p>")
		body = "<p>" + shorten(joined, budget) + "</p>"
	}
	return head + body + footer
}

func renderParagraphs(paras []string) string {
	var sb strings.Builder
	for _, p := range paras {
		sb.WriteString("<p>")
		rows := strings.Split(p, "\n")
		for i, r := range rows {
			if i > 0 {
				sb.WriteString("<br>")
			}
			sb.WriteString(html.EscapeString(r))
		}
		sb.WriteString("</p>")
	}
	return sb.String()
}
