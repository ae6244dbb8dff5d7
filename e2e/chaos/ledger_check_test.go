package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
)

// conversationFixture is one conversation as a clean run leaves it: four actions in two notes, the
// first note replaced by a summary posted before it was redacted.
type conversationFixture struct {
	facts     conversationFacts
	written   []messages.NoteWritten
	summaries []messages.ConversationSummary
}

func newConversationFixture() *conversationFixture {
	t0 := time.Date(2025, 3, 14, 10, 15, 0, 0, time.UTC)
	action := func(id, text string) messages.Action { return messages.Action{ActionID: id, Text: text} }
	line := func(seq int, id, text string) messages.NoteLine {
		return messages.NoteLine{Seq: seq, Action: action(id, text)}
	}
	note := func(part string, lines ...messages.NoteLine) messages.NoteWritten {
		return messages.NoteWritten{Version: 1, ConversationID: "c1", PartID: part, Kind: messages.NoteActions, Lines: lines}
	}
	f := &conversationFixture{
		written: []messages.NoteWritten{
			note("p1", line(1, "a1", "User opened the pricing page"), line(2, "a2", "User clicked Select Pro button")),
			note("p2", line(3, "a3", "User opened the checkout page"), line(4, "a4", "User hit an error <b>")),
			{Version: 1, ConversationID: "c1", PartID: "p3", Kind: messages.NoteSummary, SummaryID: "s1"},
		},
		summaries: []messages.ConversationSummary{
			{Version: 1, SummaryID: "s1", ConversationID: "c1", FromSeq: 1, ToSeq: 2, ReplacesParts: []string{"p1"}},
		},
	}
	f.facts = conversationFacts{
		ID:       "c1",
		Expected: []string{"a1", "a2", "a3", "a4"},
		Parts: []fakeintercom.Part{
			{ID: "p1", PartType: "note", Body: fakeintercom.RedactedBody, Redacted: true, CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Second)},
			{ID: "p2", PartType: "note", Body: "<p><b>User activity</b></p><p>[3] 10:15:01 User opened the checkout page<br>[4] 10:15:02 User hit an error &lt;b&gt;</p><p>ref: x-3</p>", CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)},
			{ID: "p3", PartType: "note", Body: "<p><b>Summary</b></p>", CreatedAt: t0.Add(2 * time.Second), UpdatedAt: t0.Add(2 * time.Second)},
		},
		ReplyCalls: 3,
	}
	return f
}

func (f *conversationFixture) check() deliveryReport {
	return checkDelivery([]conversationFacts{f.facts}, f.written, f.summaries)
}

func wantProblem(t *testing.T, rep deliveryReport, fragment string) {
	t.Helper()
	for _, p := range rep.Problems {
		if strings.Contains(p, fragment) {
			return
		}
	}
	t.Errorf("no problem mentions %q; problems: %q", fragment, rep.Problems)
}

// The delivery check passes a clean conversation and names every way of losing, doubling or
// redacting too early that the chaos run must catch.
func TestCheckDeliveryCatchesLossDuplicationAndEarlyRedaction(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		f := newConversationFixture()
		f.written = append(f.written, f.written[1]) // a repeated notes.written record is not a duplicate note
		rep := f.check()
		if len(rep.Problems) != 0 || rep.Delivered != 4 || rep.Summarised != 2 || rep.Duplicates != 0 || rep.Lost != 0 {
			t.Fatalf("clean conversation: %s; problems %q", rep.Summary(), rep.Problems)
		}
	})
	t.Run("action in two notes", func(t *testing.T) {
		f := newConversationFixture()
		f.written = append(f.written, messages.NoteWritten{Version: 1, ConversationID: "c1", PartID: "p4", Kind: messages.NoteActions,
			Lines: []messages.NoteLine{{Seq: 5, Action: messages.Action{ActionID: "a4"}}}})
		f.facts.Parts = append(f.facts.Parts, fakeintercom.Part{ID: "p4", PartType: "note", Body: "<p>[5] 10:15:02 again</p>"})
		f.facts.ReplyCalls++
		rep := f.check()
		if rep.Duplicates != 1 {
			t.Errorf("duplicates %d, want 1", rep.Duplicates)
		}
		wantProblem(t, rep, "action a4 is in 2 notes")
	})
	t.Run("note posted twice", func(t *testing.T) {
		f := newConversationFixture()
		f.facts.Parts = append(f.facts.Parts, fakeintercom.Part{ID: "p9", PartType: "note", Body: f.facts.Parts[1].Body})
		rep := f.check()
		if rep.Duplicates != 1 {
			t.Errorf("duplicates %d, want 1", rep.Duplicates)
		}
		wantProblem(t, rep, "note p9 is in Intercom but on no notes.written record")
		wantProblem(t, rep, "3 reply calls took effect but it holds 4 notes")
	})
	t.Run("summary posted twice", func(t *testing.T) {
		f := newConversationFixture()
		f.written = append(f.written, messages.NoteWritten{Version: 1, ConversationID: "c1", PartID: "p5", Kind: messages.NoteSummary, SummaryID: "s1"})
		f.facts.Parts = append(f.facts.Parts, fakeintercom.Part{ID: "p5", PartType: "note", Body: "<p>Summary</p>"})
		f.facts.ReplyCalls++
		rep := f.check()
		if rep.Duplicates != 1 {
			t.Errorf("duplicates %d, want 1", rep.Duplicates)
		}
		wantProblem(t, rep, "summary s1 was posted 2 times")
	})
	t.Run("action lost", func(t *testing.T) {
		f := newConversationFixture()
		f.facts.Expected = append(f.facts.Expected, "a5")
		rep := f.check()
		if rep.Lost != 1 || rep.Delivered != 4 {
			t.Errorf("lost %d delivered %d, want 1 and 4", rep.Lost, rep.Delivered)
		}
		wantProblem(t, rep, "action a5 is in no note")
	})
	t.Run("redacted without a summary", func(t *testing.T) {
		f := newConversationFixture()
		f.facts.Parts[1].Redacted, f.facts.Parts[1].Body = true, fakeintercom.RedactedBody
		rep := f.check()
		if rep.Lost != 2 {
			t.Errorf("lost %d, want 2", rep.Lost)
		}
		wantProblem(t, rep, "part p2 was redacted, but no summary replaces it")
	})
	t.Run("redacted before the summary", func(t *testing.T) {
		f := newConversationFixture()
		f.facts.Parts[0].UpdatedAt = f.facts.Parts[2].CreatedAt.Add(-time.Millisecond)
		wantProblem(t, f.check(), "part p1 was redacted at")
	})
	t.Run("summary never posted", func(t *testing.T) {
		f := newConversationFixture()
		f.summaries = append(f.summaries, messages.ConversationSummary{Version: 1, SummaryID: "s2", ConversationID: "c1", FromSeq: 1, ToSeq: 4})
		wantProblem(t, f.check(), "summary s2 (lines 1–4) was never posted")
	})
	t.Run("note differs from its record", func(t *testing.T) {
		f := newConversationFixture()
		f.facts.Parts[1].Body = strings.Replace(f.facts.Parts[1].Body, "checkout", "billing", 1)
		wantProblem(t, f.check(), "line 3 reads")
	})
	t.Run("line numbers", func(t *testing.T) {
		f := newConversationFixture()
		f.written[1].Lines[1].Seq = 3
		wantProblem(t, f.check(), "line 3 is held by 2 actions")
	})
	t.Run("foreign conversation", func(t *testing.T) {
		f := newConversationFixture()
		f.written = append(f.written, messages.NoteWritten{Version: 1, ConversationID: "c9", PartID: "p7", Kind: messages.NoteActions})
		wantProblem(t, f.check(), "conversation c9, which no journey opened")
	})
}
