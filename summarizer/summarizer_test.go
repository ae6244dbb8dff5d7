package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/summary"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

type recordingProducer struct {
	mu   sync.Mutex
	recs []*kgo.Record
	fail error
}

func (p *recordingProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out kgo.ProduceResults
	for _, r := range rs {
		if p.fail == nil {
			p.recs = append(p.recs, r)
		}
		out = append(out, kgo.ProduceResult{Record: r, Err: p.fail})
	}
	return out
}

func (p *recordingProducer) summaries(t *testing.T) []messages.ConversationSummary {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []messages.ConversationSummary
	for _, r := range p.recs {
		var s messages.ConversationSummary
		if err := messages.Decode(r.Value, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func newSummarizer(t *testing.T, threshold int) (*Summarizer, *recordingProducer) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	p := &recordingProducer{}
	s := NewSummarizer(Config{Threshold: threshold, StateTTL: time.Hour}, rdb, summary.NewNarrative(), p,
		"conversation.summaries", zap.NewNop(), prometheus.NewRegistry())
	return s, p
}

var t0 = time.Date(2025, 3, 14, 10, 15, 2, 0, time.UTC)

// note builds a notes.written record of lines from..to, each a click on the checkout page.
func note(t *testing.T, conv, part string, from, to int) *kgo.Record {
	t.Helper()
	n := messages.NoteWritten{Version: messages.Version, ConversationID: conv, PartID: part, Ref: "ref-" + part,
		Kind: messages.NoteActions, WrittenAt: t0}
	for seq := from; seq <= to; seq++ {
		n.Lines = append(n.Lines, messages.NoteLine{Seq: seq, Action: messages.Action{
			ActionID: fmt.Sprintf("a%d", seq), SessionID: "s1", EventTime: t0.Add(time.Duration(seq) * time.Second),
			Event: "$autocapture", Kind: messages.KindClick, Page: "checkout page", Path: "/checkout",
			Target: "Pay $49.00 button", Text: "User clicked Pay $49.00 button on the checkout page",
		}})
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "notes.written", Value: b}
}

func TestSummaryAtThresholdCoversTheFullyWrittenNotes(t *testing.T) {
	s, p := newSummarizer(t, 5)
	ctx := context.Background()
	for _, rec := range []*kgo.Record{note(t, "c1", "p1", 1, 3), note(t, "c1", "p2", 4, 4)} {
		if err := s.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.summaries(t); len(got) != 0 {
		t.Fatalf("summary before the threshold: %+v", got)
	}
	if err := s.Handle(ctx, note(t, "c1", "p3", 5, 6)); err != nil {
		t.Fatal(err)
	}
	got := p.summaries(t)
	if len(got) != 1 {
		t.Fatalf("summaries = %d, want 1", len(got))
	}
	sum := got[0]
	if sum.SummaryID != "sum_c1_6" || sum.FromSeq != 1 || sum.ToSeq != 6 || sum.ActionCount != 6 {
		t.Fatalf("summary range = %+v", sum)
	}
	if fmt.Sprint(sum.ReplacesParts) != "[p1 p2 p3]" {
		t.Fatalf("replaces %v, want [p1 p2 p3]", sum.ReplacesParts)
	}
	if sum.Text == "" || sum.Engine != summary.EngineNarrative {
		t.Fatalf("summary text %q engine %q", sum.Text, sum.Engine)
	}
}

func TestReplayingNotesWrittenMakesNoSecondSummary(t *testing.T) {
	s, p := newSummarizer(t, 3)
	ctx := context.Background()
	recs := []*kgo.Record{note(t, "c1", "p1", 1, 2), note(t, "c1", "p2", 3, 3)}
	for round := 0; round < 3; round++ {
		for _, rec := range recs {
			if err := s.Handle(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := p.summaries(t); len(got) != 1 {
		t.Fatalf("summaries after replays = %d, want 1", len(got))
	}
}

func TestNextSummaryFoldsInThePreviousAndReplacesItsNote(t *testing.T) {
	s, p := newSummarizer(t, 2)
	ctx := context.Background()
	if err := s.Handle(ctx, note(t, "c1", "p1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	first := p.summaries(t)[0]
	written := messages.NoteWritten{Version: messages.Version, ConversationID: "c1", PartID: "sp1", Ref: "r",
		Kind: messages.NoteSummary, SummaryID: first.SummaryID, WrittenAt: t0}
	b, _ := json.Marshal(written)
	if err := s.Handle(ctx, &kgo.Record{Value: b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(ctx, note(t, "c1", "p2", 3, 4)); err != nil {
		t.Fatal(err)
	}
	got := p.summaries(t)
	if len(got) != 2 {
		t.Fatalf("summaries = %d, want 2", len(got))
	}
	second := got[1]
	if second.FromSeq != 1 || second.ToSeq != 4 || second.ActionCount != 4 {
		t.Fatalf("second summary covers %d..%d (%d actions), want 1..4 (4)", second.FromSeq, second.ToSeq, second.ActionCount)
	}
	if fmt.Sprint(second.ReplacesParts) != "[p2 sp1]" {
		t.Fatalf("second summary replaces %v, want [p2 sp1]", second.ReplacesParts)
	}
}

func TestFailedProduceLeavesStateForTheRetry(t *testing.T) {
	s, p := newSummarizer(t, 2)
	ctx := context.Background()
	p.fail = fmt.Errorf("broker down")
	if err := s.Handle(ctx, note(t, "c1", "p1", 1, 2)); err == nil {
		t.Fatal("want the produce error")
	}
	p.fail = nil
	if err := s.Handle(ctx, note(t, "c1", "p1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	got := p.summaries(t)
	if len(got) != 1 || got[0].SummaryID != "sum_c1_2" {
		t.Fatalf("after retry: %+v", got)
	}
}

func TestBadRecordsArePermanent(t *testing.T) {
	s, _ := newSummarizer(t, 2)
	for _, v := range []string{`not json`, `{"version":2}`, `{"version":1,"kind":"actions"}`, `{"version":1,"conversation_id":"c","kind":"weird"}`} {
		err := s.Handle(context.Background(), &kgo.Record{Value: []byte(v)})
		if _, ok := kafka.IsPermanent(err); !ok {
			t.Fatalf("%s: error %v is not permanent", v, err)
		}
	}
}

// summaryNote is the notes.written record of a posted summary.
func summaryNote(t *testing.T, conv, part, summaryID string) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(messages.NoteWritten{Version: messages.Version, ConversationID: conv, PartID: part,
		Ref: "ref-" + part, Kind: messages.NoteSummary, SummaryID: summaryID, WrittenAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "notes.written", Value: b}
}

// TestRebuildAfterLosingRedisRepeatsTheSameSummaries replays notes.written from the beginning into
// an emptied Redis: every summary comes out again with the id, range and parts it had, so the
// notewriter, whose restored record has those ids done, executes none of them twice.
func TestRebuildAfterLosingRedisRepeatsTheSameSummaries(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	run := func() []messages.ConversationSummary {
		p := &recordingProducer{}
		s := NewSummarizer(Config{Threshold: 5, StateTTL: time.Hour}, rdb, summary.NewNarrative(), p,
			"conversation.summaries", zap.NewNop(), prometheus.NewRegistry())
		// The log as the pipeline writes it: each summary note follows the notes that called for it,
		// and a second conversation's notes interleave.
		log := []*kgo.Record{
			note(t, "c1", "p1", 1, 3), note(t, "c2", "q1", 1, 4), note(t, "c1", "p2", 4, 4), note(t, "c1", "p3", 5, 6),
			note(t, "c2", "q2", 5, 5), summaryNote(t, "c1", "sp1", "sum_c1_6"), note(t, "c1", "p4", 7, 9),
			summaryNote(t, "c2", "sq1", "sum_c2_5"), note(t, "c1", "p5", 10, 12), summaryNote(t, "c1", "sp2", "sum_c1_12"),
			note(t, "c1", "p6", 13, 13),
		}
		for _, rec := range log {
			if err := s.Handle(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		return p.summaries(t)
	}
	first := run()
	if len(first) != 3 {
		t.Fatalf("first pass made %d summaries, want 3", len(first))
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil { // Redis lost everything
		t.Fatal(err)
	}
	rebuilt := run()
	if len(rebuilt) != len(first) {
		t.Fatalf("the rebuild made %d summaries, want %d", len(rebuilt), len(first))
	}
	for i := range first {
		a, b := first[i], rebuilt[i]
		b.CreatedAt = a.CreatedAt
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("summary %d differs after the rebuild:\n got %+v\nwant %+v", i, b, a)
		}
	}
	if got := []string{first[0].SummaryID, first[1].SummaryID, first[2].SummaryID}; fmt.Sprint(got) != "[sum_c1_6 sum_c2_5 sum_c1_12]" {
		t.Errorf("summary ids %v", got)
	}
	if fmt.Sprint(first[2].ReplacesParts) != "[p4 p5 sp1]" {
		t.Errorf("second summary of c1 replaces %v, want [p4 p5 sp1]", first[2].ReplacesParts)
	}
}

func TestIdleConversationIsSummarizedBelowTheThreshold(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	p := &recordingProducer{}
	clock := t0
	s := NewSummarizer(Config{Threshold: 20, IdleAfter: time.Minute, IdleMinActions: 3, StateTTL: time.Hour}, rdb,
		summary.NewNarrative(), p, "conversation.summaries", zap.NewNop(), prometheus.NewRegistry())
	s.now = func() time.Time { return clock }
	ctx := context.Background()
	if err := s.Handle(ctx, note(t, "busy", "p1", 1, 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(ctx, note(t, "short", "q1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(30 * time.Second)
	if err := s.SummarizeIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.summaries(t); len(got) != 0 {
		t.Fatalf("summarized before the session went quiet: %+v", got)
	}
	clock = clock.Add(time.Minute)
	if err := s.SummarizeIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := p.summaries(t)
	if len(got) != 1 || got[0].SummaryID != "sum_busy_4" || fmt.Sprint(got[0].ReplacesParts) != "[p1]" {
		t.Fatalf("idle summaries = %+v, want one of busy's four lines (short has too few)", got)
	}
	// Nothing new: a later tick makes no second summary.
	clock = clock.Add(time.Hour)
	if err := s.SummarizeIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(p.summaries(t)); n != 1 {
		t.Fatalf("summaries after another tick = %d", n)
	}
}

// A summary the idle trigger made is adopted when its note comes by on notes.written, so a replay
// of notes.written into empty state goes on exactly as the original run did.
func TestReplayAdoptsAnIdleSummaryAndGoesOnFromIt(t *testing.T) {
	s, p := newSummarizer(t, 5)
	ctx := context.Background()
	summaryNote := messages.NoteWritten{Version: messages.Version, ConversationID: "c1", PartID: "sp1", Ref: "r",
		Kind: messages.NoteSummary, SummaryID: "sum_c1_3", WrittenAt: t0}
	b, _ := json.Marshal(summaryNote)
	// As notes.written holds them: lines 1-3, the idle summary of 1-3, lines 4-8.
	for _, rec := range []*kgo.Record{note(t, "c1", "p1", 1, 3), {Value: b}, note(t, "c1", "p2", 4, 8)} {
		if err := s.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	got := p.summaries(t)
	if len(got) != 1 {
		t.Fatalf("summaries = %d, want 1 (the threshold after the adopted range)", len(got))
	}
	if got[0].SummaryID != "sum_c1_8" || got[0].FromSeq != 1 || got[0].ActionCount != 8 ||
		fmt.Sprint(got[0].ReplacesParts) != "[p2 sp1]" {
		t.Fatalf("summary after adoption = %+v", got[0])
	}
}
