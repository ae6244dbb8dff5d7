package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// The shared journey: the user browses anonymously, signs in, opens a conversation and goes on.
// Everything before the conversation arrives as one pre-conversation note, the rest as live
// notes numbered on from it; after the threshold a summary is posted and then the raw notes it
// covers are redacted.
func TestJourneyBecomesNumberedNotesThenASummaryReplacesThem(t *testing.T) {
	const threshold = 12
	p := start(t, "THREADLINE_SUMMARY_THRESHOLD=12")
	// The journey happens a minute ago, with fresh ids: the linker keeps the actions of the two
	// minutes before a conversation opens. A whole-second shift keeps the golden times exact.
	rec, err := demo.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	first := rec.Events[0].Time
	startAt := time.Now().UTC().Truncate(time.Second).Add(-time.Minute).Add(first.Sub(first.Truncate(time.Second)))
	j, err := demo.Fresh(startAt, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := shiftGolden(t, readGolden(t, "journey_notes.golden"), startAt.Sub(first))
	before, after := j.Events[:demo.IdentifyIndex+1], j.Events[demo.IdentifyIndex+1:]
	for _, ev := range before {
		p.produceRaw(t, j.AnonID, ev.Value)
	}
	// ingest has turned them into actions (noise dropped) before the user writes to support.
	kafkatest.Consume(t, p.Brokers, p.Topics.ProductActions, 7, 30*time.Second)

	conv := p.Fake.CreateConversation(fakeintercom.ContactSpec{
		ExternalID: j.UserID, Email: j.Email, Name: "Jane Doe", Role: "user",
	}, "<p>I can't change my plan, the payment keeps failing.</p>", "https://app.acme.dev/checkout?plan=pro", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Fake.DeliverWebhook(ctx, p.IngestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
		t.Fatal(err)
	}
	for _, ev := range after {
		p.produceRaw(t, j.UserID, ev.Value)
	}

	// Follow notes.written and conversation.summaries until every line is written and the
	// summary's redactions are done.
	cl := kafkatest.Client(t, p.Brokers, kgo.ConsumeTopics(p.Topics.NotesWritten, p.Topics.ConversationSummaries),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	var (
		written   []messages.NoteWritten
		summaries []messages.ConversationSummary
	)
	done := func() bool {
		lines := 0
		for _, n := range written {
			lines += len(n.Lines)
		}
		if lines < len(want) || len(summaries) == 0 {
			return false
		}
		redacted := 0
		for _, part := range p.Fake.Notes(conv.ID) {
			if part.Redacted {
				redacted++
			}
		}
		return redacted >= len(summaries[0].ReplacesParts)
	}
	for !done() {
		pollCtx, pollCancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pollCtx)
		pollCancel()
		if ctx.Err() != nil {
			t.Fatalf("pipeline did not finish: %d notes written, %d summaries\nnotes in Intercom: %+v\n%s", len(written), len(summaries), p.Fake.Notes(conv.ID), p.dump(t))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case p.Topics.NotesWritten:
				var n messages.NoteWritten
				if err := messages.Decode(r.Value, &n); err != nil {
					t.Fatal(err)
				}
				written = append(written, n)
			case p.Topics.ConversationSummaries:
				var s messages.ConversationSummary
				if err := messages.Decode(r.Value, &s); err != nil {
					t.Fatal(err)
				}
				summaries = append(summaries, s)
			}
		})
	}

	// Every action is a numbered line, once, in order, across the notes.
	var lines []messages.NoteLine
	var summaryNotes []messages.NoteWritten
	for _, n := range written {
		if n.ConversationID != conv.ID {
			t.Fatalf("note for conversation %s, want %s", n.ConversationID, conv.ID)
		}
		if n.Kind == messages.NoteSummary {
			summaryNotes = append(summaryNotes, n)
			continue
		}
		lines = append(lines, n.Lines...)
	}
	sort.Slice(lines, func(a, b int) bool { return lines[a].Seq < lines[b].Seq })
	var got []string
	for i, l := range lines {
		if l.Seq != i+1 {
			t.Fatalf("line %d has number %d: lines are not numbered once each from 1", i+1, l.Seq)
		}
		got = append(got, noteLine{Seq: l.Seq, Time: l.Action.EventTime.UTC().Format("15:04:05"), Text: l.Action.Text}.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("note lines:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("note lines:\n%s", strings.Join(got, "\n"))

	// The first note is the pre-conversation batch and holds at least what happened before the
	// user wrote.
	firstNote := written[0]
	if !firstNote.PreConversation || len(firstNote.Lines) < 6 {
		t.Fatalf("first note: pre-conversation %v with %d lines, want the pre-conversation batch of at least 6", firstNote.PreConversation, len(firstNote.Lines))
	}

	// What Intercom holds matches what notes.written says, line for line, for notes not redacted.
	parts := map[string]fakeintercom.Part{}
	for _, part := range p.Fake.Notes(conv.ID) {
		parts[part.ID] = part
	}
	if !strings.Contains(parts[firstNote.PartID].Body, "before this conversation") && !parts[firstNote.PartID].Redacted {
		t.Fatalf("pre-conversation note has no such heading: %s", parts[firstNote.PartID].Body)
	}

	// One summary, posted before the notes it replaces were redacted; exactly those are redacted.
	if len(summaries) != 1 || len(summaryNotes) != 1 {
		t.Fatalf("summaries requested %d, summary notes %d; want 1 each", len(summaries), len(summaryNotes))
	}
	sum := summaries[0]
	if sum.ToSeq < threshold || sum.FromSeq != 1 {
		t.Fatalf("summary covers lines %d..%d, want 1..≥%d", sum.FromSeq, sum.ToSeq, threshold)
	}
	summaryPart, ok := parts[summaryNotes[0].PartID]
	if !ok || summaryPart.Redacted || !strings.Contains(summaryPart.Body, htmlEscapeForCheck(sum.Text[:40])) {
		t.Fatalf("summary note %s not in the conversation as posted: %+v", summaryNotes[0].PartID, summaryPart)
	}
	replaced := map[string]bool{}
	for _, id := range sum.ReplacesParts {
		replaced[id] = true
		part := parts[id]
		if !part.Redacted {
			t.Fatalf("part %s is replaced by the summary but not redacted", id)
		}
		if part.UpdatedAt.Before(summaryPart.CreatedAt) {
			t.Fatalf("part %s was redacted (%s) before the summary was posted (%s)", id, part.UpdatedAt, summaryPart.CreatedAt)
		}
	}
	for _, n := range written {
		if n.Kind != messages.NoteActions {
			continue
		}
		covered := n.Lines[len(n.Lines)-1].Seq <= sum.ToSeq
		if covered != replaced[n.PartID] {
			t.Fatalf("note %s (lines %d..%d): replaced=%v, want %v", n.PartID, n.Lines[0].Seq, n.Lines[len(n.Lines)-1].Seq, replaced[n.PartID], covered)
		}
		if !covered {
			var in []string
			for _, l := range parseLines(parts[n.PartID].Body) {
				in = append(in, l.String())
			}
			if strings.Join(in, "\n") != strings.Join(want[n.Lines[0].Seq-1:n.Lines[len(n.Lines)-1].Seq], "\n") {
				t.Fatalf("note %s in Intercom reads:\n%s", n.PartID, strings.Join(in, "\n"))
			}
		}
	}
	t.Logf("summary (lines %d–%d, %d parts replaced): %s", sum.FromSeq, sum.ToSeq, len(sum.ReplacesParts), sum.Text)
}

// shiftGolden moves the hh:mm:ss of every "[n] hh:mm:ss text" line by d.
func shiftGolden(t *testing.T, lines []string, d time.Duration) []string {
	t.Helper()
	out := make([]string, len(lines))
	for i, l := range lines {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("golden line %q", l)
		}
		at, err := time.Parse("15:04:05", m[2])
		if err != nil {
			t.Fatal(err)
		}
		out[i] = fmt.Sprintf("[%s] %s %s", m[1], at.Add(d).Format("15:04:05"), m[3])
	}
	return out
}

func htmlEscapeForCheck(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func readGolden(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out
}
