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
