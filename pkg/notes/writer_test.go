package notes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// clockedWriter is a writer whose clock the test moves, with production debounce and max wait.
func clockedWriter(h *harness, clock *fakeClock, reg prometheus.Registerer) *Writer {
	cfg := testConfig()
	cfg.Debounce = time.Second
	cfg.MaxWait = 5 * time.Second
	cfg.RetryMin = 100 * time.Millisecond
	w := h.writer(cfg, reg)
	w.now = clock.Now
	return w
}

func TestManyActionsCoalesceIntoOneNoteAfterTheDebounce(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	w := clockedWriter(h, clock, reg)
	ctx := context.Background()

	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("a%d", i)
		ids = append(ids, id)
		enqueueAll(t, w, actionsMsg("c1", false, act(id, clock.Now())))
		clock.Advance(10 * time.Millisecond)
		flushNow(t, ctx, w)
	}
	if n := h.ic.count("reply"); n != 0 {
		t.Fatalf("%d notes written while the user was still active", n)
	}
	clock.Advance(time.Second - 20*time.Millisecond) // 10 ms short of the debounce after the last action
	flushNow(t, ctx, w)
	if n := h.ic.count("reply"); n != 0 {
		t.Fatalf("%d notes written before the debounce passed", n)
	}
	clock.Advance(10 * time.Millisecond)
	flushNow(t, ctx, w)
	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("%d notes written, want 1", n)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": ids})
	written := h.sink.notes()
	if len(written) != 1 || len(written[0].Lines) != 30 || written[0].Kind != messages.NoteActions ||
		written[0].PartID != h.ic.notesOf("c1")[0].PartID || written[0].ConversationID != "c1" ||
		!strings.Contains(h.ic.notesOf("c1")[0].Body, "ref: "+written[0].Ref+"<") {
		t.Fatalf("notes.written = %+v", written)
	}
	if got := written[0].ActionIDs(); got[0] != "a0" || got[29] != "a29" {
		t.Errorf("action ids %v", got)
	}
	if n := metricValue(t, w.m.notesPosted.WithLabelValues(messages.NoteActions)); n != 1 {
		t.Errorf("notes posted metric = %v", n)
	}
	if n := histogramCount(t, reg, "threadline_notes_actions_per_note"); n != 1 {
		t.Errorf("actions per note histogram has %d observations, want 1", n)
	}

	// Nothing is left to do: the conversation is out of the due set.
	if n, err := h.rdb.ZCard(ctx, dueKey(shardOf("c1"))).Result(); err != nil || n != 0 {
		t.Errorf("due set holds %d (%v)", n, err)
	}
}

func TestMaxWaitBoundsABusyConversation(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()

	// An action every 500 ms never leaves a one-second quiet gap; max wait (5 s) writes anyway.
	for i := range 10 {
		enqueueAll(t, w, actionsMsg("c1", false, act(fmt.Sprintf("a%d", i), clock.Now())))
		flushNow(t, ctx, w)
		if n := h.ic.count("reply"); n != 0 {
			t.Fatalf("note written %d ms after the first action", i*500)
		}
		clock.Advance(500 * time.Millisecond)
	}
	// 5 s after the first action, 500 ms after the last: due by max wait.
	flushNow(t, ctx, w)
	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("%d notes after max wait, want 1", n)
	}
	written := h.sink.notes()
	if len(written[0].Lines) != 10 {
		t.Fatalf("max-wait note has %d lines, want 10", len(written[0].Lines))
	}
	// The next action starts a new batch, numbered on.
	enqueueAll(t, w, actionsMsg("c1", false, act("a10", clock.Now())))
	clock.Advance(time.Second)
	flushNow(t, ctx, w)
	written = h.sink.notes()
	if len(written) != 2 || written[1].Lines[0].Seq != 11 {
		t.Fatalf("second note: %+v", written)
	}
}

func TestNumberingContinuesAcrossNotesAndRestarts(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	ctx := context.Background()
	first := clockedWriter(h, clock, nil)

	enqueueAll(t, first, actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now()), act("a3", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, first)
	enqueueAll(t, first, actionsMsg("c1", false, act("a4", clock.Now()), act("a5", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, first)

	restarted := clockedWriter(h, clock, nil) // a new process on the same Redis
	enqueueAll(t, restarted, actionsMsg("c1", false, act("a6", clock.Now()), act("a7", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, restarted)

	stored := h.ic.notesOf("c1")
	if len(stored) != 3 {
		t.Fatalf("%d notes, want 3", len(stored))
	}
	for i, want := range []string{"[1] ", "[4] ", "[6] "} {
		if !strings.Contains(stored[i].Body, want) {
			t.Errorf("note %d lacks %q: %s", i, want, stored[i].Body)
		}
	}
	if !strings.Contains(stored[2].Body, "(lines 6–7,") {
		t.Errorf("heading of the note after the restart: %s", stored[2].Body)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1", "a2", "a3", "a4", "a5", "a6", "a7"}})
}

func TestPreConversationBatchGetsItsOwnNoteAndHeading(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()

	enqueueAll(t, w,
		actionsMsg("c1", true, act("p1", clock.Now()), act("p2", clock.Now()), act("p3", clock.Now())),
		actionsMsg("c1", false, act("a1", clock.Now())),
	)
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)

	stored := h.ic.notesOf("c1")
	if len(stored) != 2 {
		t.Fatalf("%d notes, want the pre-conversation batch and the live action apart", len(stored))
	}
	if !strings.Contains(stored[0].Body, "User activity before this conversation</b> (lines 1–3,") {
		t.Errorf("pre-conversation heading missing: %s", stored[0].Body)
	}
	if strings.Contains(stored[1].Body, "before this conversation") || !strings.Contains(stored[1].Body, "[4] ") {
		t.Errorf("live note: %s", stored[1].Body)
	}
	written := h.sink.notes()
	if !written[0].PreConversation || written[1].PreConversation {
		t.Errorf("pre_conversation flags: %v %v", written[0].PreConversation, written[1].PreConversation)
	}
}

func TestDuplicateActionsAreDropped(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()

	msg := actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now()), act("a1", clock.Now()))
	enqueueAll(t, w, msg, msg, actionsMsg("c1", false, act("a2", clock.Now()), act("a3", clock.Now())))
	if got := metricValue(t, w.m.duplicatesDropped); got != 5 {
		t.Errorf("duplicates dropped = %v, want 5", got)
	}
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)
	// Actions of a written note are still recognised.
	enqueueAll(t, w, msg)
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)
	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("%d notes, want 1", n)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1", "a2", "a3"}})
}

func TestEnqueueRejectsInvalidInputPermanently(t *testing.T) {
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	ctx := context.Background()
	for _, m := range []messages.ConversationActions{
		{Version: 1, Actions: []messages.Action{act("a1", time.Now())}},
		actionsMsg("c1", false, messages.Action{Text: "no id"}),
	} {
		if err := w.Enqueue(ctx, m); !IsPermanent(err) || !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Enqueue(%+v) = %v, want a permanent invalid-input error", m, err)
		}
	}
	if err := w.Enqueue(ctx, actionsMsg("c1", false)); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
}

func TestEnqueueBatchStopsAtTheFirstRefusedMessage(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()
	now := clock.Now()

	// Redis lost its scripts (a restart): the batch loads them again.
	if err := h.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	batch := []messages.ConversationActions{
		actionsMsg("c1", false, act("a1", now)),
		actionsMsg("c2", false, act("a21", now), act("a22", now)),
		actionsMsg("c1", false),                                 // nothing to do
		actionsMsg("c1", false, messages.Action{Text: "no id"}), // refused before anything is sent
		actionsMsg("c2", false, act("a23", now)),
	}
	done, err := w.EnqueueBatch(ctx, batch)
	if done != 3 || !errors.Is(err, ErrInvalidInput) || !IsPermanent(err) {
		t.Fatalf("EnqueueBatch = %d, %v; want 3 done and a permanent invalid-input error", done, err)
	}
	// The rest after the refused message, given again with what went before: duplicates dropped.
	if done, err := w.EnqueueBatch(ctx, append(batch[:3:3], batch[4])); done != 4 || err != nil {
		t.Fatalf("EnqueueBatch again = %d, %v; want all 4", done, err)
	}
	if got := metricValue(t, w.m.duplicatesDropped); got != 3 {
		t.Errorf("duplicates dropped = %v, want 3", got)
	}
	clock.Advance(6 * time.Second)
	flushNow(t, ctx, w)
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1"}, "c2": {"a21", "a22", "a23"}})

	// A gone conversation refuses its message; the one before it is accepted.
	if err := h.rdb.Set(ctx, keysFor("c3").gone, "1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	done, err = w.EnqueueBatch(ctx, []messages.ConversationActions{
		actionsMsg("c1", false, act("a12", now)), actionsMsg("c3", false, act("a31", now)),
	})
	if done != 1 || !errors.Is(err, ErrConversationGone) {
		t.Fatalf("EnqueueBatch with a gone conversation = %d, %v; want 1 done and ErrConversationGone", done, err)
	}
}

func TestBacklogCapPushesBack(t *testing.T) {
	h := newHarness(t)
	cfg := testConfig()
	cfg.MaxLinesPerNote = 2
	cfg.MaxPending = 3
	w := h.writer(cfg, nil)
	ctx := context.Background()
	now := time.Now()
	if err := w.Enqueue(ctx, actionsMsg("c1", false, act("a1", now), act("a2", now), act("a3", now))); err != nil {
		t.Fatal(err)
	}
	err := w.Enqueue(ctx, actionsMsg("c1", false, act("a4", now)))
	if !errors.Is(err, ErrBacklogFull) || IsPermanent(err) {
		t.Fatalf("Enqueue over the cap = %v, want transient ErrBacklogFull", err)
	}
	// A replay of accepted actions is not refused.
	if err := w.Enqueue(ctx, actionsMsg("c1", false, act("a1", now))); err != nil {
		t.Fatalf("replay at the cap: %v", err)
	}
}

func TestUnknownOutcomeIsResolvedWithoutARepost(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()
	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 1 {
			return fault{Store: true, Err: ErrOutcomeUnknown} // stored, but the answer was lost
		}
		return fault{}
	})

	enqueueAll(t, w, actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)
	if len(h.sink.notes()) != 0 {
		t.Fatal("a note of unknown outcome was published")
	}
	clock.Advance(time.Second) // past the backoff
	flushNow(t, ctx, w)

	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("note posted %d times, want once", n)
	}
	if n := h.ic.count("find"); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	written := h.sink.notes()
	if len(written) != 1 || written[0].PartID != h.ic.notesOf("c1")[0].PartID {
		t.Fatalf("notes.written = %+v", written)
	}
	if got := metricValue(t, w.m.unknownResolutions.WithLabelValues("found")); got != 1 {
		t.Errorf("unknown-outcome resolutions = %v", got)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1", "a2"}})
}

func TestTimeoutAfterTheNoteWasStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 1 {
			return fault{Store: true, Hang: true} // stored, then no answer until the call times out
		}
		return fault{}
	})
	run(t, w)
	enqueueAll(t, w, actionsMsg("c1", false, act("a1", time.Now())))
	waitFor(t, "the note to be published", func() bool { return len(h.sink.notes()) == 1 })
	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("note posted %d times, want once", n)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1"}})
}

func TestCrashBetweenPostAndBookkeeping(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	ctx, crash := context.WithCancel(context.Background())
	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 1 {
			// The POST reaches Intercom; the process dies before it reads the answer.
			return fault{Store: true, Err: context.Canceled, Then: crash}
		}
		return fault{}
	})
	dying := clockedWriter(h, clock, nil)
	enqueueAll(t, dying, actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, dying)
	if n := len(h.ic.notesOf("c1")); n != 1 || len(h.sink.notes()) != 0 {
		t.Fatalf("after the crash: %d stored notes, %d published", n, len(h.sink.notes()))
	}

	restarted := clockedWriter(h, clock, nil)
	enqueueAll(t, restarted, actionsMsg("c1", false, act("a2", clock.Now()), act("a3", clock.Now()))) // the uncommitted record again, plus news
	clock.Advance(2 * time.Second)
	flushNow(t, context.Background(), restarted)

	if n := h.ic.count("reply"); n != 2 {
		t.Fatalf("%d posts, want the crashed one and one for a3", n)
	}
	written := h.sink.notes()
	if len(written) != 2 || written[0].Lines[0].Seq != 1 || written[1].Lines[0].Seq != 3 {
		t.Fatalf("notes.written after the restart: %+v", written)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1", "a2", "a3"}})
}

func TestCrashBeforeNotesWrittenIsPublishedAfterRestart(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	h.sink.fail = func(messages.NoteWritten) error { return errors.New("kafka is down") }
	first := clockedWriter(h, clock, nil)
	enqueueAll(t, first, actionsMsg("c1", false, act("a1", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, context.Background(), first)

	h.sink.mu.Lock()
	h.sink.fail = nil
	h.sink.mu.Unlock()
	restarted := clockedWriter(h, clock, nil)
	clock.Advance(time.Minute)
	flushNow(t, context.Background(), restarted)

	if n := h.ic.count("reply"); n != 1 {
		t.Fatalf("%d posts, want 1", n)
	}
	if n := h.ic.count("find"); n != 0 {
		t.Errorf("%d lookups for a note whose part id was already booked", n)
	}
	if written := h.sink.notes(); len(written) != 1 || written[0].PartID == "" {
		t.Fatalf("notes.written = %+v", written)
	}
}

func TestReplayFromTheBeginningPostsNothingNew(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	ctx := context.Background()
	var log []messages.ConversationActions
	want := map[string][]string{}
	for i := range 12 {
		conv := fmt.Sprintf("c%d", i%3)
		id := fmt.Sprintf("a%d", i)
		log = append(log, actionsMsg(conv, i < 3, act(id, clock.Now())))
		want[conv] = append(want[conv], id)
	}
	first := clockedWriter(h, clock, nil)
	for _, m := range log {
		enqueueAll(t, first, m)
		clock.Advance(700 * time.Millisecond)
		flushNow(t, ctx, first)
	}
	clock.Advance(10 * time.Second)
	flushNow(t, ctx, first)
	posts := h.ic.count("reply")
	checkExactlyOnce(t, h.ic, want)

	replay := clockedWriter(h, clock, nil)
	for _, m := range log {
		enqueueAll(t, replay, m)
	}
	clock.Advance(10 * time.Second)
	flushNow(t, ctx, replay)
	if n := h.ic.count("reply"); n != posts {
		t.Fatalf("the replay posted %d new notes", n-posts)
	}
	if got := metricValue(t, replay.m.duplicatesDropped); got != 12 {
		t.Errorf("replay dropped %v duplicates, want 12", got)
	}
	checkExactlyOnce(t, h.ic, want)
}

func TestTwoWritersNeverPostTheSameActionTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	a, b := h.writer(cfg, nil), h.writer(cfg, nil)
	run(t, a)
	run(t, b)

	want := map[string][]string{}
	var wg sync.WaitGroup
	for c := range 10 {
		conv := fmt.Sprintf("c%d", c)
		for i := range 20 {
			want[conv] = append(want[conv], fmt.Sprintf("a%d-%d", c, i))
		}
		ids := want[conv]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, id := range ids {
				m := actionsMsg(conv, false, act(id, time.Now()))
				// Both replicas receive every record (a rebalance replays it to the new owner).
				enqueueAll(t, a, m)
				enqueueAll(t, b, m)
				if i%5 == 4 {
					time.Sleep(30 * time.Millisecond) // let some notes go out mid-stream
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every action to be written", func() bool {
		n := 0
		for _, ls := range h.ic.delivered() {
			n += len(ls)
		}
		return n >= 200
	})
	checkExactlyOnce(t, h.ic, want)
}

func TestGoneConversationIsDeadLetteredAndPermanent(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	w := clockedWriter(h, clock, nil)
	ctx := context.Background()
	h.ic.mu.Lock()
	h.ic.gone["c1"] = true
	h.ic.mu.Unlock()

	enqueueAll(t, w, actionsMsg("c1", true, act("p1", clock.Now())), actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now())))
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)

	dead, reasons := h.sink.deadLetters()
	var ids []string
	for i, d := range dead {
		if reasons[i] != DeadLetterNotFound || d.ConversationID != "c1" {
			t.Errorf("dead letter %d: %s %+v", i, reasons[i], d)
		}
		for _, a := range d.Actions {
			ids = append(ids, a.ActionID)
		}
	}
	if strings.Join(ids, ",") != "p1,a1,a2" || len(dead) != 2 || !dead[0].PreConversation {
		t.Fatalf("dead-lettered %v in %d batches", ids, len(dead))
	}
	err := w.Enqueue(ctx, actionsMsg("c1", false, act("a3", clock.Now())))
	if !IsPermanent(err) || !errors.Is(err, ErrConversationGone) {
		t.Fatalf("Enqueue for a gone conversation = %v, want permanent", err)
	}
	if n := h.ic.totalNotes(); n != 0 {
		t.Errorf("%d notes stored", n)
	}
	if w.BreakerOpen() {
		t.Error("a gone conversation opened the breaker")
	}
	if n, _ := h.rdb.ZCard(ctx, dueKey(shardOf("c1"))).Result(); n != 0 {
		t.Errorf("gone conversation still scheduled")
	}
}

// notesOnlySink publishes notes and has no dead-letter topic.
type notesOnlySink struct{}

func (notesOnlySink) NoteWritten(context.Context, messages.NoteWritten) error { return nil }

func TestGoneActionsAreLoggedWhenTheSinkHasNoDeadLetterTopic(t *testing.T) {
	h := newHarness(t)
	h.ic.gone["c1"] = true
	core, logs := observer.New(zap.ErrorLevel)
	w, err := New(h.rdb, h.ic, notesOnlySink{}, testConfig(), zap.New(core), nil)
	if err != nil {
		t.Fatal(err)
	}
	markRestored(t, w)
	enqueueAll(t, w, actionsMsg("c1", false, act("a1", time.Now()), act("a2", time.Now())))
	run(t, w)
	waitFor(t, "the actions to be logged", func() bool { return logs.Len() > 0 })
	entry := logs.All()[0]
	ids, _ := entry.ContextMap()["action_ids"].([]any)
	if entry.ContextMap()["reason"] != DeadLetterNotFound || len(ids) != 2 || ids[0] != "a1" {
		t.Fatalf("logged %s %v", entry.Message, entry.ContextMap())
	}
}

func TestRejectedNoteIsDeadLetteredAndItsNumbersReused(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	cfg := testConfig()
	w := h.writer(cfg, nil)
	w.now = clock.Now
	ctx := context.Background()
	h.ic.setFault(func(op string, n int) fault {
		if op == "reply" && n == 1 {
			return fault{Err: fmt.Errorf("400 parameter_invalid: %w", ErrRejected)}
		}
		return fault{}
	})
	enqueueAll(t, w, actionsMsg("c1", false, act("a1", clock.Now()), act("a2", clock.Now())))
	clock.Advance(time.Second)
	flushNow(t, ctx, w)
	enqueueAll(t, w, actionsMsg("c1", false, act("a3", clock.Now())))
	clock.Advance(time.Second)
	flushNow(t, ctx, w)

	dead, reasons := h.sink.deadLetters()
	if len(dead) != 1 || reasons[0] != DeadLetterRejected || len(dead[0].Actions) != 2 || dead[0].Actions[1].ActionID != "a2" {
		t.Fatalf("dead letters %v %+v", reasons, dead)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a3"}})
	if w.BreakerOpen() {
		t.Error("a rejected request opened the breaker")
	}
	// The rejected actions stay known: a replay does not bring them back.
	enqueueAll(t, w, actionsMsg("c1", false, act("a1", clock.Now())))
	clock.Advance(time.Second)
	flushNow(t, ctx, w)
	if n := h.ic.count("reply"); n != 2 {
		t.Errorf("%d posts, want the rejected one and one for a3", n)
	}
}

func TestUnauthorizedStopsWritingLoudly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	h.ic.setFault(func(op string, n int) fault { return fault{Err: ErrUnauthorized} })
	stop := run(t, w)

	enqueueAll(t, w, actionsMsg("c1", false, act("a1", time.Now())))
	waitFor(t, "writing to stop", func() bool { return w.Err() != nil })
	if err := stop(); !IsUnauthorized(err) {
		t.Fatalf("Run returned %v, want the unauthorized error", err)
	}
	if !w.BreakerOpen() {
		t.Error("breaker not open after a 401")
	}
	if err := w.Enqueue(context.Background(), actionsMsg("c1", false, act("a2", time.Now()))); !IsUnauthorized(err) || IsPermanent(err) {
		t.Errorf("Enqueue after a 401 = %v", err)
	}
	if err := w.ExecuteSummary(context.Background(), messages.ConversationSummary{ConversationID: "c1", SummaryID: "s"}); !IsUnauthorized(err) {
		t.Errorf("ExecuteSummary after a 401 = %v", err)
	}
	if got := metricValue(t, w.m.breakerState.WithLabelValues("ws1")); got != 2 {
		t.Errorf("breaker gauge = %v, want 2 (open)", got)
	}
	time.Sleep(2 * testConfig().BreakerOpenTimeout) // an ordinary breaker would probe by now
	if n := h.ic.count("reply"); n != 1 {
		t.Errorf("%d posts after a 401, want 1 (no retries)", n)
	}
}

func TestBreakerOpensOnFailuresAndClosesByItself(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := testConfig()
	cfg.BreakerOpenTimeout = 2 * time.Second // long enough to observe the open state
	w := h.writer(cfg, nil)
	var mu sync.Mutex
	failing := true
	h.ic.setFault(func(op string, n int) fault {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return fault{Err: errors.New("503 service unavailable")}
		}
		return fault{}
	})
	run(t, w)
	enqueueAll(t, w, actionsMsg("c1", false, act("a1", time.Now())))
	waitFor(t, "the breaker to open", w.BreakerOpen)

	err := w.Enqueue(context.Background(), actionsMsg("c1", false, act("a2", time.Now())))
	if !errors.Is(err, ErrBreakerOpen) || IsPermanent(err) {
		t.Fatalf("Enqueue while open = %v, want transient ErrBreakerOpen", err)
	}
	if got := metricValue(t, w.m.breakerState.WithLabelValues("ws1")); got != 2 {
		t.Errorf("breaker gauge = %v, want 2", got)
	}

	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, "the note after recovery", func() bool { return len(h.sink.notes()) == 1 })
	enqueueAll(t, w, actionsMsg("c1", false, act("a2", time.Now())))
	waitFor(t, "the second note", func() bool { return len(h.sink.notes()) == 2 })
	if w.BreakerOpen() {
		t.Error("breaker still open")
	}
	if got := metricValue(t, w.m.breakerState.WithLabelValues("ws1")); got != 0 {
		t.Errorf("breaker gauge = %v, want 0 (closed)", got)
	}
	checkExactlyOnce(t, h.ic, map[string][]string{"c1": {"a1", "a2"}})
}

func TestNewRejectsBadInput(t *testing.T) {
	h := newHarness(t)
	if _, err := New(nil, h.ic, h.sink, testConfig(), nil, nil); !errors.Is(err, ErrMissingDependency) {
		t.Errorf("nil redis: %v", err)
	}
	bad := testConfig()
	bad.MaxLinesPerNote = 0
	if _, err := New(h.rdb, h.ic, h.sink, bad, nil, nil); !errors.Is(err, ErrMaxLinesPerNote) {
		t.Errorf("bad config: %v", err)
	}
	reg := prometheus.NewRegistry()
	h.writer(testConfig(), reg)
	if _, err := New(h.rdb, h.ic, h.sink, testConfig(), nil, reg); err == nil {
		t.Error("registering the metrics twice on one registry did not fail")
	}
}

func BenchmarkEnqueue(b *testing.B) {
	rdb := redistest.Start(b).Client(b)
	w, err := New(rdb, newFakeIntercom(), &recordingSink{}, testConfig(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	markRestored(b, w)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		m := actionsMsg(fmt.Sprintf("c%d", i%100), false, act(fmt.Sprintf("a%d", i), time.Now()))
		if err := w.Enqueue(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("metric is neither a counter nor a gauge")
	return 0
}

// histogramCount reads the observation count of a histogram from a registry.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
