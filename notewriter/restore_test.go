package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

const (
	testToken   = "restore-token"
	testAdminID = "991"
)

// restoreRig is a note writer on a real Redis and the fake Intercom behind the real REST client,
// with a notes.written topic on a kfake broker.
type restoreRig struct {
	t       *testing.T
	rdb     redis.UniversalClient
	fake    *fakeintercom.Server
	writer  *notes.Writer
	sink    *memorySink
	brokers []string
	topic   string
}

// memorySink records what the writer publishes.
type memorySink struct {
	mu      sync.Mutex
	written []messages.NoteWritten
}

func (s *memorySink) NoteWritten(_ context.Context, n messages.NoteWritten) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = append(s.written, n)
	return nil
}

func (s *memorySink) notes() []messages.NoteWritten {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]messages.NoteWritten(nil), s.written...)
}

func newRestoreRig(t *testing.T) *restoreRig {
	t.Helper()
	fake := fakeintercom.New(fakeintercom.Options{Token: testToken, AdminID: testAdminID})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	icfg := intercom.DefaultConfig()
	icfg.APIBase, icfg.Token, icfg.AdminID = api.URL, config.NewSecret(testToken), testAdminID
	adapter := NewIntercomNotes(intercom.NewClient(icfg, &http.Client{}, zap.NewNop()), testAdminID)

	cfg := notes.DefaultConfig()
	cfg.Debounce, cfg.MaxWait, cfg.PollInterval = 10*time.Millisecond, 50*time.Millisecond, 5*time.Millisecond
	rdb := redistest.Start(t).Client(t)
	sink := &memorySink{}
	w, err := notes.New(rdb, adapter, sink, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "notes.written")
	kafkatest.CreateTopic(t, brokers, topic, 3)
	return &restoreRig{t: t, rdb: rdb, fake: fake, writer: w, sink: sink, brokers: brokers, topic: topic}
}

func (r *restoreRig) restorer(cfg RestoreConfig) (*Restorer, *prometheus.Registry) {
	r.t.Helper()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = r.brokers
	reg := prometheus.NewRegistry()
	res, err := NewRestorer(cfg, kcfg, r.topic, r.writer, zaptest.NewLogger(r.t, zaptest.Level(zap.InfoLevel)), reg)
	if err != nil {
		r.t.Fatal(err)
	}
	return res, reg
}

// produce puts values on notes.written keyed by conversation, as the sink does.
func (r *restoreRig) produce(ns ...messages.NoteWritten) {
	r.t.Helper()
	var recs []*kgo.Record
	for _, n := range ns {
		b, err := json.Marshal(n)
		if err != nil {
			r.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: r.topic, Key: []byte(n.ConversationID), Value: b})
	}
	kafkatest.Produce(r.t, r.brokers, recs...)
}

// actionsNote is a notes.written record of lines from..to of conv.
func actionsNote(conv string, from, to int) messages.NoteWritten {
	n := messages.NoteWritten{Version: messages.Version, ConversationID: conv, PartID: fmt.Sprintf("p-%s-%d", conv, from),
		Ref: fmt.Sprintf("tln-%s-%d", conv, from), Kind: messages.NoteActions, WrittenAt: time.Now().UTC()}
	for seq := from; seq <= to; seq++ {
		n.Lines = append(n.Lines, messages.NoteLine{Seq: seq, Action: action(conv, seq)})
	}
	return n
}

func action(conv string, seq int) messages.Action {
	return messages.Action{ActionID: fmt.Sprintf("%s-a%d", conv, seq), SessionID: "s-" + conv, EventTime: time.Now().UTC(),
		Event: "$autocapture", Kind: messages.KindClick, Text: fmt.Sprintf("User clicked button %d", seq)}
}

func restoredCount(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "threadline_notewriter_restored_notes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestRestoreRebuildsTheDeliveryRecordBeforeAnyWrite(t *testing.T) {
	r := newRestoreRig(t)
	ctx := context.Background()
	convA := r.fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "u1", Role: "user"}, "<p>help</p>", "", nil)
	convB := r.fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "u2", Role: "user"}, "<p>help</p>", "", nil)
	summary := messages.ConversationSummary{Version: messages.Version, SummaryID: "sum_" + convA.ID + "_5",
		ConversationID: convA.ID, Text: "The user clicked five buttons.", FromSeq: 1, ToSeq: 5, ActionCount: 5,
		ReplacesParts: []string{"p-a-1", "p-a-4"}, Engine: "narrative", CreatedAt: time.Now().UTC()}
	r.produce(actionsNote(convA.ID, 1, 3), actionsNote(convB.ID, 1, 2), actionsNote(convA.ID, 4, 5),
		messages.NoteWritten{Version: messages.Version, ConversationID: convA.ID, PartID: "s-1", Ref: "tls-1",
			Kind: messages.NoteSummary, SummaryID: summary.SummaryID, WrittenAt: time.Now().UTC()},
		actionsNote(convB.ID, 3, 3))
	kafkatest.ProduceValues(t, r.brokers, r.topic, convB.ID, `not a note`)

	// A fresh Redis: nothing may be accepted before the restore.
	if err := r.writer.Enqueue(ctx, messages.ConversationActions{Version: messages.Version, ConversationID: convB.ID,
		SessionID: "s", Actions: []messages.Action{action(convB.ID, 1)}}); !errors.Is(err, notes.ErrNotRestored) {
		t.Fatalf("Enqueue before the restore = %v, want ErrNotRestored", err)
	}
	res, reg := r.restorer(DefaultRestoreConfig())
	if err := res.Ready(ctx); err == nil {
		t.Fatal("ready before the restore")
	}
	if err := res.RestoreIfNeeded(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := res.Ready(ctx); err != nil {
		t.Fatalf("not ready after the restore: %v", err)
	}
	if got := restoredCount(t, reg, restoreChanged); got != 5 {
		t.Errorf("restored %v notes, want 5", got)
	}
	if got := restoredCount(t, reg, restoreInvalid); got != 1 {
		t.Errorf("skipped %v records, want 1", got)
	}

	// The replayed summary makes no call; replayed actions are dropped; a new action is line 4.
	if err := r.writer.ExecuteSummary(ctx, summary); err != nil {
		t.Fatal(err)
	}
	replay := messages.ConversationActions{Version: messages.Version, ConversationID: convB.ID, SessionID: "s-" + convB.ID,
		Actions: []messages.Action{action(convB.ID, 1), action(convB.ID, 2), action(convB.ID, 3), action(convB.ID, 4)}}
	replay.Actions[3].ActionID = "new-action"
	if err := r.writer.Enqueue(ctx, replay); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.writer.Run(runCtx) }()
	kafkatest.Eventually(t, 20*time.Second, func() bool { return len(r.sink.notes()) > 0 }, "the new action to be written")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	written := r.sink.notes()
	if len(written) != 1 || len(written[0].Lines) != 1 {
		t.Fatalf("notes written after the restore: %+v", written)
	}
	if got := written[0].Lines[0]; got.Seq != 4 || got.Action.ActionID != "new-action" {
		t.Fatalf("the new action was written as line %d (%s), want line 4", got.Seq, got.Action.ActionID)
	}
	if n := r.fake.Requests(fakeintercom.EndpointReply); n != 1 {
		t.Errorf("%d notes posted, want only the new one", n)
	}
	if n := r.fake.Requests(fakeintercom.EndpointRedact); n != 0 {
		t.Errorf("%d redactions for a summary already done", n)
	}
	if notesA := r.fake.Notes(convA.ID); len(notesA) != 0 {
		t.Errorf("conversation A got notes: %+v", notesA)
	}
}

func TestRestoreRunsOnReplayAndWhenTheRecordIsMissingOnly(t *testing.T) {
	r := newRestoreRig(t)
	ctx := context.Background()
	r.produce(actionsNote("c1", 1, 2), actionsNote("c2", 1, 1))

	first, firstReg := r.restorer(DefaultRestoreConfig())
	if err := first.RestoreIfNeeded(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := restoredCount(t, firstReg, restoreChanged); got != 2 {
		t.Fatalf("first start restored %v notes, want 2", got)
	}

	// A restart on a Redis that holds the record goes straight to work.
	again, againReg := r.restorer(DefaultRestoreConfig())
	if err := again.RestoreIfNeeded(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := again.Ready(ctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	if got := restoredCount(t, againReg, restoreChanged) + restoredCount(t, againReg, restoreKnown); got != 0 {
		t.Fatalf("a start with the record in place read %v notes", got)
	}

	// A replay restores anyway, and finds everything known.
	replay, replayReg := r.restorer(DefaultRestoreConfig())
	if err := replay.RestoreIfNeeded(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, known := restoredCount(t, replayReg, restoreChanged), restoredCount(t, replayReg, restoreKnown); got != 0 || known != 2 {
		t.Fatalf("the replay's restore: %v restored, %v known; want 0 and 2", got, known)
	}
}

func TestRestoreOfAnEmptyTopicSetsTheMarkers(t *testing.T) {
	r := newRestoreRig(t)
	ctx := context.Background()
	res, _ := r.restorer(DefaultRestoreConfig())
	if err := res.RestoreIfNeeded(ctx, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.writer.Restored(ctx); err != nil || !ok {
		t.Fatalf("Restored after restoring an empty topic = %v, %v", ok, err)
	}
}

func TestWatchStopsTheNotewriterWhenRedisLosesTheRecord(t *testing.T) {
	r := newRestoreRig(t)
	ctx := context.Background()
	res, _ := r.restorer(RestoreConfig{CheckInterval: 10 * time.Millisecond})
	if err := res.RestoreIfNeeded(ctx, false); err != nil {
		t.Fatal(err)
	}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- res.Watch(watchCtx) }()
	if err := r.rdb.FlushAll(ctx).Err(); err != nil { // Redis restarted empty under the notewriter
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrStateLost) {
		t.Fatalf("Watch = %v, want ErrStateLost", err)
	}

	// With the record in place, Watch runs until its context ends.
	if err := r.writer.MarkRestored(ctx); err != nil {
		t.Fatal(err)
	}
	watchCtx, cancel = context.WithCancel(ctx)
	go func() { done <- res.Watch(watchCtx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel = %v", err)
	}
}

func TestRestoreConfigFromEnvironment(t *testing.T) {
	var cfg RestoreConfig
	fs := flag.NewFlagSet("notewriter", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{"THREADLINE_RESTORE_CHECK_INTERVAL": "3s"}
	if err := config.Parse(fs, nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if cfg.CheckInterval != 3*time.Second {
		t.Fatalf("check interval %s, want 3s", cfg.CheckInterval)
	}
	if err := DefaultRestoreConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if err := (RestoreConfig{}).Validate(); !errors.Is(err, ErrRestoreCheckInterval) {
		t.Fatalf("Validate of a zero interval = %v", err)
	}
	if _, err := NewRestorer(RestoreConfig{}, kafka.DefaultConfig(), "t", nil, zap.NewNop(), nil); !errors.Is(err, ErrRestoreCheckInterval) {
		t.Fatalf("NewRestorer with a zero interval = %v", err)
	}
}
