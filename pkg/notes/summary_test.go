package notes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// withRawNotes writes n one-action notes to conversation c1 and returns their part ids.
func withRawNotes(t *testing.T, h *harness, n int) []string {
	t.Helper()
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	for i := range n {
		enqueueAll(t, w, actionsMsg("c1", false, act(fmt.Sprintf("a%d", i), clock.Now())))
		clock.Advance(2 * time.Second)
		flushNow(t, context.Background(), w)
	}
	var parts []string
	for _, nw := range h.sink.notes() {
		parts = append(parts, nw.PartID)
	}
	if len(parts) != n {
		t.Fatalf("wrote %d raw notes, want %d", len(parts), n)
	}
	return parts
}

func summaryFor(parts []string) messages.ConversationSummary {
	return messages.ConversationSummary{
		Version:        messages.Version,
		SummaryID:      "c1:1-3",
		ConversationID: "c1",
		WorkspaceID:    "ws1",
		Text:           "The user opened the pricing page, chose Pro and hit a <card> error.",
		FromSeq:        1,
		ToSeq:          len(parts),
		ActionCount:    len(parts),
		ReplacesParts:  parts,
		Engine:         "narrative",
		CreatedAt:      time.Date(2026, 11, 24, 10, 20, 0, 0, time.UTC),
	}
}

// summaryPosts counts stored notes that are summaries.
func summaryPosts(h *harness) int {
	n := 0
	for _, note := range h.ic.notesOf("c1") {
		if strings.Contains(note.Body, "Summary of the user") {
			n++
		}
	}
	return n
}

func TestSummaryIsPostedBeforeTheRawNotesAreRedacted(t *testing.T) {
	h := newHarness(t)
	parts := withRawNotes(t, h, 3)
	w := h.writer(testConfig(), nil)
	before := len(h.ic.callLog())

	if err := w.ExecuteSummary(context.Background(), summaryFor(parts)); err != nil {
		t.Fatal(err)
	}
	calls := h.ic.callLog()[before:]
	var ops []string
	for _, c := range calls {
		ops = append(ops, c.Op+" "+c.Arg)
	}
	want := "reply ,redact " + strings.Join(parts, ",redact ")
	if strings.Join(ops, ",") != want {
		t.Fatalf("calls %q, want %q", strings.Join(ops, ","), want)
	}
	stored := h.ic.notesOf("c1")
	for _, n := range stored[:3] {
		if !n.Redacted {
			t.Errorf("raw note %s not redacted", n.PartID)
		}
	}
	summary := stored[3]
	if summary.Redacted || !strings.Contains(summary.Body, "hit a &lt;card&gt; error") {
		t.Errorf("summary note: %+v", summary)
	}
	written := h.sink.notes()
	last := written[len(written)-1]
	if last.Kind != messages.NoteSummary || last.SummaryID != "c1:1-3" || last.PartID != summary.PartID ||
		!strings.Contains(summary.Body, "ref: "+last.Ref+"<") || len(last.Lines) != 0 {
		t.Errorf("notes.written for the summary: %+v", last)
	}
	if got := metricValue(t, w.m.redactions.WithLabelValues("redacted")); got != 3 {
		t.Errorf("redactions metric = %v", got)
	}

	// A replay of the summary message does nothing.
	calledBefore := len(h.ic.callLog())
	if err := w.ExecuteSummary(context.Background(), summaryFor(parts)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.ic.callLog()) - calledBefore; n != 0 {
		t.Errorf("a replayed summary made %d calls", n)
	}
}

func TestCrashBetweenSummaryAndRedactionResumesWithoutASecondSummary(t *testing.T) {
	h := newHarness(t)
	parts := withRawNotes(t, h, 3)
	ctx, crash := context.WithCancel(context.Background())
	h.ic.setFault(func(op string, n int) fault {
		if op == "redact" && n == 2 {
			return fault{Err: context.Canceled, Then: crash} // the process dies mid-redaction
		}
		return fault{}
	})
	dying := h.writer(testConfig(), nil)
	if err := dying.ExecuteSummary(ctx, summaryFor(parts)); err == nil {
		t.Fatal("the crashed run reported success")
	}
	if summaryPosts(h) != 1 {
		t.Fatalf("%d summaries before the restart", summaryPosts(h))
	}

	restarted := h.writer(testConfig(), nil)
	if err := restarted.ExecuteSummary(context.Background(), summaryFor(parts)); err != nil {
		t.Fatal(err)
	}
	if n := summaryPosts(h); n != 1 {
		t.Fatalf("%d summaries after the restart, want 1", n)
	}
	for _, n := range h.ic.notesOf("c1")[:3] {
		if !n.Redacted {
			t.Errorf("raw note %s not redacted", n.PartID)
		}
	}
	var summaries int
	for _, nw := range h.sink.notes() {
		if nw.Kind == messages.NoteSummary {
			summaries++
		}
	}
	if summaries != 1 {
		t.Errorf("notes.written got %d summary messages, want 1", summaries)
	}
	// The first part, redacted before the crash, is not redacted again.
	redacts := map[string]int{}
	for _, c := range h.ic.callLog() {
		if c.Op == "redact" {
			redacts[c.Arg]++
		}
	}
	if redacts[parts[0]] != 1 || redacts[parts[2]] != 1 {
		t.Errorf("redact calls per part: %v", redacts)
	}
}

func TestSummaryOfUnknownOutcomeIsFoundNotReposted(t *testing.T) {
	h := newHarness(t)
	parts := withRawNotes(t, h, 2)
	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 3 { // the summary's POST: stored, answer lost
			return fault{Store: true, Err: ErrOutcomeUnknown}
		}
		return fault{}
	})
	w := h.writer(testConfig(), nil)
	s := summaryFor(parts)
	if err := w.ExecuteSummary(context.Background(), s); err == nil {
		t.Fatal("unknown outcome reported as success")
	}
	if err := w.ExecuteSummary(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if n := summaryPosts(h); n != 1 {
		t.Fatalf("%d summaries, want 1", n)
	}
	if n := h.ic.count("find"); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
}

func TestAlreadyRedactedPartIsDone(t *testing.T) {
	h := newHarness(t)
	parts := withRawNotes(t, h, 2)
	if err := h.ic.Redact(context.Background(), "c1", parts[0]); err != nil { // redacted by someone else
		t.Fatal(err)
	}
	w := h.writer(testConfig(), nil)
	if err := w.ExecuteSummary(context.Background(), summaryFor(parts)); err != nil {
		t.Fatalf("an already redacted part failed the job: %v", err)
	}
	if got := metricValue(t, w.m.redactions.WithLabelValues("already")); got != 1 {
		t.Errorf("already-redacted metric = %v", got)
	}
	if !h.ic.notesOf("c1")[1].Redacted {
		t.Error("second part not redacted")
	}
	if w.BreakerOpen() {
		t.Error("already redacted counted as a failure")
	}
}

func TestRefusedRedactionIsGivenUpAndRejectedSummaryIsPermanent(t *testing.T) {
	h := newHarness(t)
	parts := withRawNotes(t, h, 2)
	h.ic.setFault(func(op string, n int) fault {
		if op == "redact" && n == 1 {
			return fault{Err: fmt.Errorf("conversation_part_not_redactable: %w", ErrRejected)}
		}
		return fault{}
	})
	w := h.writer(testConfig(), nil)
	if err := w.ExecuteSummary(context.Background(), summaryFor(parts)); err != nil {
		t.Fatalf("a part Intercom will not redact blocked the job: %v", err)
	}
	if got := metricValue(t, w.m.redactions.WithLabelValues("rejected")); got != 1 {
		t.Errorf("rejected redactions = %v", got)
	}
	if !h.ic.notesOf("c1")[1].Redacted {
		t.Error("the other part was not redacted")
	}

	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" {
			return fault{Err: fmt.Errorf("422: %w", ErrRejected)}
		}
		return fault{}
	})
	s := summaryFor(parts)
	s.SummaryID = "c1:again"
	if err := w.ExecuteSummary(context.Background(), s); !IsPermanent(err) {
		t.Fatalf("a rejected summary = %v, want permanent", err)
	}
}

func TestSummaryForAGoneConversationIsPermanent(t *testing.T) {
	h := newHarness(t)
	h.ic.mu.Lock()
	h.ic.gone["c1"] = true
	h.ic.mu.Unlock()
	w := h.writer(testConfig(), nil)
	err := w.ExecuteSummary(context.Background(), summaryFor([]string{"1"}))
	if !IsPermanent(err) || !errors.Is(err, ErrConversationGone) {
		t.Fatalf("ExecuteSummary = %v, want permanent", err)
	}
	if err := w.Enqueue(context.Background(), actionsMsg("c1", false, act("a1", time.Now()))); !IsPermanent(err) {
		t.Errorf("Enqueue after the summary found the conversation gone = %v", err)
	}
	if err := w.ExecuteSummary(context.Background(), messages.ConversationSummary{ConversationID: "c1"}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("summary without id: %v", err)
	}
}

func TestSummaryHeldByAnotherReplicaIsBusy(t *testing.T) {
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	s := summaryFor([]string{"1"})
	k := keysFor(s.ConversationID)
	if err := h.rdb.Set(context.Background(), k.summaryLock(s.SummaryID), "other", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	err := w.ExecuteSummary(context.Background(), s)
	if !errors.Is(err, ErrBusy) || IsPermanent(err) {
		t.Fatalf("ExecuteSummary = %v, want transient ErrBusy", err)
	}
	if n := len(h.ic.callLog()); n != 0 {
		t.Errorf("%d calls while another replica held the job", n)
	}
}
