package notes

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

var tagPattern = regexp.MustCompile(`</?([a-zA-Z0-9]+)[^>]*>`)

// checkTags fails unless body uses only the tags Intercom notes keep: p, br, b (ul/li allowed too).
func checkTags(t *testing.T, body string) {
	t.Helper()
	allowed := map[string]bool{"p": true, "br": true, "b": true, "ul": true, "li": true}
	for _, m := range tagPattern.FindAllStringSubmatch(body, -1) {
		if !allowed[m[1]] {
			t.Errorf("note uses tag <%s>: %s", m[1], body)
		}
	}
}

func at(hms string) time.Time {
	t, err := time.Parse(time.DateTime, "2026-11-24 "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

func TestRenderNumbersLinesFromFirstSeqWithTimes(t *testing.T) {
	notes := Render(Batch{
		FirstSeq: 7,
		RefBase:  "tln-abc",
		Actions: []messages.Action{
			{ActionID: "1", EventTime: at("10:15:31"), Text: "User clicked Pay $49.00 button on the checkout page"},
			{ActionID: "2", EventTime: at("10:15:40"), Text: "User hit an error on the checkout page: card validation failed"},
		},
	}, RenderOptions{})
	if len(notes) != 1 {
		t.Fatalf("got %d notes, want 1", len(notes))
	}
	n := notes[0]
	for _, want := range []string{
		"[7] 10:15:31 User clicked Pay $49.00 button on the checkout page<br>",
		"[8] 10:15:40 User hit an error on the checkout page: card validation failed</p>",
		"<b>User activity</b> (lines 7–8, 24 Nov 2026, times in UTC)",
		"<p>ref: tln-abc-7</p>",
	} {
		if !strings.Contains(n.HTML, want) {
			t.Errorf("note lacks %q:\n%s", want, n.HTML)
		}
	}
	if n.Ref != "tln-abc-7" || n.PreConversation {
		t.Errorf("ref %q pre %v", n.Ref, n.PreConversation)
	}
	if len(n.Lines) != 2 || n.Lines[0].Seq != 7 || n.Lines[1].Seq != 8 || n.Lines[1].Action.ActionID != "2" {
		t.Errorf("lines = %+v", n.Lines)
	}
	checkTags(t, n.HTML)
}

func TestRenderEscapesProductText(t *testing.T) {
	notes := Render(Batch{FirstSeq: 1, RefBase: "r", Actions: []messages.Action{
		{ActionID: "1", EventTime: at("09:00:00"), Text: `User clicked <script>alert("x")</script> & <b>bold</b> on the 'home' page`},
		{ActionID: "2", EventTime: at("09:00:01"), Event: "<img src=x onerror=alert(1)>"},
	}}, RenderOptions{})
	body := notes[0].HTML
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") || strings.Contains(body, "<b>bold") {
		t.Fatalf("product text is not escaped:\n%s", body)
	}
	for _, want := range []string{
		"User clicked &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; on the &#39;home&#39; page",
		"[2] 09:00:01 &lt;img src=x onerror=alert(1)&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("note lacks %q:\n%s", want, body)
		}
	}
	checkTags(t, body)
}

func TestRenderKeepsEachActionOnOneLine(t *testing.T) {
	notes := Render(Batch{FirstSeq: 1, RefBase: "r", Actions: []messages.Action{
		{ActionID: "1", EventTime: at("09:00:00"), Text: "User typed\nline two\r\tand\x00 a bell\a"},
	}}, RenderOptions{})
	if !strings.Contains(notes[0].HTML, "[1] 09:00:00 User typed line two  and a bell</p>") {
		t.Fatalf("control characters not cleaned:\n%q", notes[0].HTML)
	}
}

func TestRenderPreConversationHeading(t *testing.T) {
	notes := Render(Batch{FirstSeq: 1, PreConversation: true, RefBase: "r", Actions: []messages.Action{
		{ActionID: "1", EventTime: at("09:00:00"), Text: "User opened the pricing page"},
	}}, RenderOptions{})
	if !notes[0].PreConversation || !strings.Contains(notes[0].HTML, "<b>User activity before this conversation</b> (line 1,") {
		t.Fatalf("pre-conversation heading missing:\n%s", notes[0].HTML)
	}
}

func TestRenderTimeZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	notes := Render(Batch{FirstSeq: 1, RefBase: "r", Actions: []messages.Action{
		{ActionID: "1", EventTime: at("22:59:59"), Text: "User opened the pricing page"},
		{ActionID: "2", EventTime: at("23:00:01"), Text: "User opened the billing page"},
	}}, RenderOptions{Location: berlin})
	body := notes[0].HTML
	for _, want := range []string{
		"[1] 23:59:59 User opened the pricing page",
		"[2] 25 Nov 00:00:01 User opened the billing page", // a new day carries its date
		"24 Nov 2026, times in CET)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("note lacks %q:\n%s", want, body)
		}
	}
}

func manyActions(n int, textLen int) []messages.Action {
	out := make([]messages.Action, n)
	for i := range out {
		text := fmt.Sprintf("User did a%d ", i)
		text += strings.Repeat("x", max(0, textLen-len(text)))
		out[i] = messages.Action{ActionID: fmt.Sprint(i), EventTime: at("10:00:00").Add(time.Duration(i) * time.Second), Text: text}
	}
	return out
}

func checkSplit(t *testing.T, notes []Note, firstSeq, total int, opts RenderOptions) {
	t.Helper()
	seq := firstSeq
	refs := map[string]bool{}
	for i, n := range notes {
		if opts.MaxBytes > 0 && len(n.HTML) > opts.MaxBytes {
			t.Errorf("note %d has %d bytes, limit %d", i, len(n.HTML), opts.MaxBytes)
		}
		if opts.MaxLines > 0 && len(n.Lines) > opts.MaxLines {
			t.Errorf("note %d has %d lines, limit %d", i, len(n.Lines), opts.MaxLines)
		}
		if len(n.Lines) == 0 {
			t.Fatalf("note %d is empty", i)
		}
		if refs[n.Ref] {
			t.Errorf("ref %s repeats", n.Ref)
		}
		refs[n.Ref] = true
		if !strings.HasSuffix(n.HTML, "<p>ref: "+n.Ref+"</p>") {
			t.Errorf("note %d does not end with its ref %s", i, n.Ref)
		}
		for _, l := range n.Lines {
			if l.Seq != seq {
				t.Fatalf("note %d: line %d, want %d", i, l.Seq, seq)
			}
			if !strings.Contains(n.HTML, fmt.Sprintf("[%d] ", l.Seq)) {
				t.Errorf("note %d lacks line [%d]", i, l.Seq)
			}
			seq++
		}
		checkTags(t, n.HTML)
	}
	if seq-firstSeq != total {
		t.Errorf("notes hold %d lines, want %d", seq-firstSeq, total)
	}
}

func TestRenderSplitsByLineCount(t *testing.T) {
	opts := RenderOptions{MaxLines: 10}
	notes := Render(Batch{FirstSeq: 3, RefBase: "r", Actions: manyActions(25, 30)}, opts)
	if len(notes) != 3 || len(notes[0].Lines) != 10 || len(notes[2].Lines) != 5 {
		t.Fatalf("split into %d notes", len(notes))
	}
	checkSplit(t, notes, 3, 25, opts)
	if !strings.Contains(notes[1].HTML, "(lines 13–22,") {
		t.Errorf("second note heading: %s", notes[1].HTML[:120])
	}
}

func TestRenderSplitsBySize(t *testing.T) {
	opts := RenderOptions{MaxBytes: 1024}
	notes := Render(Batch{FirstSeq: 1, RefBase: "r", PreConversation: true, Actions: manyActions(40, 100)}, opts)
	if len(notes) < 4 {
		t.Fatalf("40 lines of ~120 bytes in 1 KiB notes gave %d notes", len(notes))
	}
	checkSplit(t, notes, 1, 40, opts)
	for _, n := range notes {
		if !n.PreConversation || !strings.Contains(n.HTML, "before this conversation") {
			t.Errorf("a part of a pre-conversation batch lost its heading: %s", n.HTML[:80])
		}
	}
}

func TestRenderShortensALineLongerThanANote(t *testing.T) {
	opts := RenderOptions{MaxBytes: 600}
	actions := manyActions(3, 5000)
	actions[0].Text = strings.Repeat("<&>", 2000) // escapes to five times its length
	notes := Render(Batch{FirstSeq: 1, RefBase: "r", Actions: actions}, opts)
	checkSplit(t, notes, 1, 3, opts)
	first := notes[0].HTML
	if len(notes) != 3 || !strings.Contains(first, "[1] 10:00:00 &lt;&amp;&gt;&lt;") || !strings.Contains(first, "…</p>") {
		t.Fatalf("long lines not shortened into their own notes: %d notes\n%s", len(notes), first)
	}
}

func TestRenderSummary(t *testing.T) {
	s := messages.ConversationSummary{
		FromSeq: 1, ToSeq: 20,
		Text: "The user opened <pricing> & chose Pro.\n\nThey hit an error.\nThen left.",
	}
	body := RenderSummary(s, "tls-1", 0)
	if !strings.HasPrefix(body, "<p><b>Summary of the user's activity</b> (lines 1–20)</p>") {
		t.Errorf("heading: %s", body)
	}
	for _, w := range []string{
		"<p>The user opened &lt;pricing&gt; &amp; chose Pro.</p>",
		"<p>They hit an error.<br>Then left.</p>",
		"<p>ref: tls-1</p>",
	} {
		if !strings.Contains(body, w) {
			t.Errorf("summary lacks %q:\n%s", w, body)
		}
	}
	checkTags(t, body)

	long := RenderSummary(messages.ConversationSummary{Text: strings.Repeat("word ", 1000)}, "tls-2", 600)
	if len(long) > 600 || !strings.HasSuffix(long, "<p>ref: tls-2</p>") || !strings.Contains(long, "…") {
		t.Errorf("long summary not shortened to fit (%d bytes): %s", len(long), long)
	}
}

func BenchmarkRender(b *testing.B) {
	actions := manyActions(50, 80)
	opts := RenderOptions{MaxLines: 50, MaxBytes: 8192}
	for b.Loop() {
		Render(Batch{FirstSeq: 1, RefBase: "r", Actions: actions}, opts)
	}
}
