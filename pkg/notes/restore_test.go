package notes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
)

// writeHistory writes, through w, notes for three conversations (a pre-conversation batch then
// live actions) and one summary of c0, the way the pipeline would; it returns the
// conversation.actions log, the summary and, per conversation, the action ids in order.
func writeHistory(t *testing.T, h *harness, w *Writer, clock *fakeClock) ([]messages.ConversationActions, messages.ConversationSummary, map[string][]string) {
	t.Helper()
	ctx := context.Background()
	var log []messages.ConversationActions
	want := map[string][]string{}
	for i := range 15 {
		conv := fmt.Sprintf("c%d", i%3)
		id := fmt.Sprintf("a%d", i)
		log = append(log, actionsMsg(conv, i < 3, act(id, clock.Now())))
		want[conv] = append(want[conv], id)
	}
	for _, m := range log {
		enqueueAll(t, w, m)
		clock.Advance(700 * time.Millisecond)
		flushNow(t, ctx, w)
	}
	clock.Advance(10 * time.Second)
	flushNow(t, ctx, w)
	checkExactlyOnce(t, h.ic, want)

	var parts []string
	for _, n := range h.sink.notes() {
		if n.ConversationID == "c0" {
			parts = append(parts, n.PartID)
		}
	}
	s := messages.ConversationSummary{
		Version: messages.Version, SummaryID: "sum_c0_5", ConversationID: "c0", WorkspaceID: "ws1",
		Text: "The user did five things.", FromSeq: 1, ToSeq: 5, ActionCount: 5, ReplacesParts: parts,
		Engine: "narrative", CreatedAt: clock.Now(),
	}
	if err := w.ExecuteSummary(ctx, s); err != nil {
		t.Fatal(err)
	}
	return log, s, want
}

// restoreAll feeds notes to w.Restore like the notewriter's restore pass and returns how many
// changed the state.
func restoreAll(t *testing.T, w *Writer, notes []messages.NoteWritten) int {
	t.Helper()
	changed := 0
	for _, n := range notes {
		ok, err := w.Restore(context.Background(), n)
		if err != nil {
			t.Fatalf("Restore %s/%s: %v", n.ConversationID, n.Ref, err)
		}
		if ok {
			changed++
		}
	}
	return changed
}

func TestRestoreAfterLosingRedisPostsNothingTwiceAndNumbersOn(t *testing.T) {
	h := newHarness(t)
	clock := newFakeClock()
	ctx := context.Background()
	log, summary, want := writeHistory(t, h, clockedWriter(h, clock, nil), clock)
	written := h.sink.notes()
	calls := len(h.ic.callLog())

	w := clockedWriter(h, clock, nil)
	if err := h.rdb.FlushAll(ctx).Err(); err != nil { // Redis lost everything
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || ok {
		t.Fatalf("Restored on an empty Redis = %v, %v; want false", ok, err)
	}
	// Until the record is back, the writer accepts and posts nothing.
	for _, err := range []error{w.Enqueue(ctx, log[0]), w.ExecuteSummary(ctx, summary)} {
		if !errors.Is(err, ErrNotRestored) || IsPermanent(err) {
			t.Fatalf("work on a Redis that lost the record = %v, want transient ErrNotRestored", err)
		}
	}
	if n := restoreAll(t, w, written); n != len(written) {
		t.Fatalf("%d of %d notes changed the state of an empty Redis", n, len(written))
	}
	if err := w.MarkRestored(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || !ok {
		t.Fatalf("Restored after MarkRestored = %v, %v; want true", ok, err)
	}

	// Replaying both input topics from the beginning makes no Intercom call at all.
	for _, m := range log {
		enqueueAll(t, w, m)
	}
	if err := w.ExecuteSummary(ctx, summary); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	flushNow(t, ctx, w)
	if got := h.ic.callLog()[calls:]; len(got) != 0 {
		t.Fatalf("the replay after the restore made %d calls: %+v", len(got), got)
	}
	if got := metricValue(t, w.m.duplicatesDropped); got != float64(len(log)) {
		t.Errorf("replay dropped %v duplicates, want %d", got, len(log))
	}
	if len(h.sink.notes()) != len(written) {
		t.Errorf("the replay published %d notes", len(h.sink.notes())-len(written))
	}

	// New actions are numbered on from each conversation's last line.
	for _, conv := range []string{"c0", "c1"} {
		id := "anew-" + conv
		enqueueAll(t, w, actionsMsg(conv, false, act(id, clock.Now())))
		want[conv] = append(want[conv], id)
	}
	clock.Advance(2 * time.Second)
	flushNow(t, ctx, w)
	summarized := want["c0"]
	delete(want, "c0") // its raw notes are redacted: the stored bodies no longer show their lines
	checkExactlyOnce(t, h.ic, want)
	want["c0"] = summarized
	for _, conv := range []string{"c0", "c1"} {
		stored := h.ic.notesOf(conv)
		last := stored[len(stored)-1].Body
		if line := fmt.Sprintf("[%d] ", len(want[conv])); !strings.Contains(last, line) {
			t.Errorf("%s: the note after the restore lacks %q: %s", conv, line, last)
		}
	}
}

func TestRestoreIsIdempotentAndNeverLowersTheCounter(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	w := h.writer(testConfig(), nil)
	note := func(ref string, seqs ...int) messages.NoteWritten {
		n := messages.NoteWritten{Version: messages.Version, ConversationID: "c1", PartID: "p-" + ref, Ref: ref,
			Kind: messages.NoteActions, WrittenAt: time.Now()}
		for _, s := range seqs {
			n.Lines = append(n.Lines, messages.NoteLine{Seq: s, Action: act(fmt.Sprintf("a%d", s), time.Now())})
		}
		return n
	}
	later, earlier := note("r2", 4, 5), note("r1", 1, 2, 3)
	for i, tc := range []struct {
		n    messages.NoteWritten
		want bool
	}{{later, true}, {later, false}, {earlier, true}, {earlier, false}} {
		got, err := w.Restore(ctx, tc.n)
		if err != nil || got != tc.want {
			t.Fatalf("restore %d (%s) = %v, %v; want %v", i, tc.n.Ref, got, err, tc.want)
		}
	}
	k := keysFor("c1")
	if seq, err := h.rdb.HGet(ctx, k.meta, "seq").Int(); err != nil || seq != 5 {
		t.Fatalf("line counter %d (%v), want 5", seq, err)
	}
	if n, err := h.rdb.SCard(ctx, k.accepted).Result(); err != nil || n != 5 {
		t.Fatalf("accepted %d (%v), want 5", n, err)
	}
	for _, key := range []string{k.meta, k.accepted} {
		if ttl := h.rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > testConfig().DeliveredTTL {
			t.Errorf("%s has TTL %s, want up to the delivered TTL", key, ttl)
		}
	}
}

func TestRestoreLeavesAJobInProgressToExecuteSummary(t *testing.T) {
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
	s := summaryFor(parts)
	if err := dying.ExecuteSummary(ctx, s); err == nil {
		t.Fatal("the crashed run reported success")
	}
	var summaryNote messages.NoteWritten
	for _, n := range h.sink.notes() {
		if n.Kind == messages.NoteSummary {
			summaryNote = n
		}
	}
	if summaryNote.SummaryID != s.SummaryID {
		t.Fatalf("summary note not published: %+v", h.sink.notes())
	}

	// Redis still has the job: a restore (say, on a replay) must not mark it done, or the
	// redactions left would never happen.
	w := h.writer(testConfig(), nil)
	if changed, err := w.Restore(context.Background(), summaryNote); err != nil || changed {
		t.Fatalf("Restore of a job in progress = %v, %v; want no change", changed, err)
	}
	if err := w.ExecuteSummary(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if n := summaryPosts(h); n != 1 {
		t.Fatalf("%d summaries, want 1", n)
	}
	for _, n := range h.ic.notesOf("c1")[:3] {
		if !n.Redacted {
			t.Errorf("raw note %s not redacted after the restore", n.PartID)
		}
	}
}

func TestRestoredSummaryJobMakesNoCall(t *testing.T) {
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	s := summaryFor([]string{"1", "2"})
	changed, err := w.Restore(context.Background(), messages.NoteWritten{Version: messages.Version,
		ConversationID: s.ConversationID, PartID: "9", Ref: "tls-abc", Kind: messages.NoteSummary, SummaryID: s.SummaryID})
	if err != nil || !changed {
		t.Fatalf("Restore = %v, %v", changed, err)
	}
	if err := w.ExecuteSummary(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if calls := h.ic.callLog(); len(calls) != 0 {
		t.Fatalf("a restored summary made calls: %+v", calls)
	}
	if n := len(h.sink.notes()); n != 0 {
		t.Fatalf("a restored summary was published again (%d)", n)
	}
}

func TestRestoreRejectsNotesItCannotRecord(t *testing.T) {
	h := newHarness(t)
	w := h.writer(testConfig(), nil)
	line := messages.NoteLine{Seq: 1, Action: act("a1", time.Now())}
	for name, n := range map[string]messages.NoteWritten{
		"no conversation":      {Kind: messages.NoteActions, Lines: []messages.NoteLine{line}},
		"actions without line": {ConversationID: "c1", Kind: messages.NoteActions},
		"line without action":  {ConversationID: "c1", Kind: messages.NoteActions, Lines: []messages.NoteLine{{Seq: 1}}},
		"summary without id":   {ConversationID: "c1", Kind: messages.NoteSummary, PartID: "1"},
		"unknown kind":         {ConversationID: "c1", Kind: "poem", Lines: []messages.NoteLine{line}},
	} {
		if _, err := w.Restore(context.Background(), n); !errors.Is(err, ErrInvalidInput) || !IsPermanent(err) {
			t.Errorf("%s: Restore = %v, want ErrInvalidInput", name, err)
		}
	}
	if keys := h.rdb.Keys(context.Background(), keyPrefix+"*:c:*").Val(); len(keys) != 0 {
		t.Errorf("invalid notes left keys: %v", keys)
	}
}

func TestLosingOneShardClearsTheRestoreMark(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	w := h.writer(testConfig(), nil)
	if err := w.MarkRestored(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || !ok {
		t.Fatalf("Restored = %v, %v", ok, err)
	}
	// A Redis Cluster node that lost its data takes the markers of its slots with it.
	if err := h.rdb.Del(ctx, restoredKey(7)).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || ok {
		t.Fatalf("Restored with one shard's marker gone = %v, %v; want false", ok, err)
	}
}

// TestRestoreWorksOnRedisCluster restores notes and sets the markers on Redis in cluster mode:
// every script must keep to one hash slot.
func TestRestoreWorksOnRedisCluster(t *testing.T) {
	t.Parallel()
	rdb := clusterClient(t)
	ctx := context.Background()
	w, err := New(rdb, newFakeIntercom(), &recordingSink{}, testConfig(), zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || ok {
		t.Fatalf("Restored on a new cluster = %v, %v; want false", ok, err)
	}
	var notes []messages.NoteWritten
	for i := range 20 {
		conv := fmt.Sprintf("c%d", i)
		notes = append(notes,
			messages.NoteWritten{Version: messages.Version, ConversationID: conv, PartID: "p" + conv, Ref: "r" + conv,
				Kind: messages.NoteActions, Lines: []messages.NoteLine{{Seq: 3, Action: act("a"+conv, time.Now())}}},
			messages.NoteWritten{Version: messages.Version, ConversationID: conv, PartID: "s" + conv, Ref: "t" + conv,
				Kind: messages.NoteSummary, SummaryID: "sum_" + conv + "_3"})
	}
	if n := restoreAll(t, w, notes); n != len(notes) {
		t.Fatalf("%d of %d notes restored", n, len(notes))
	}
	if err := w.MarkRestored(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Restored(ctx); err != nil || !ok {
		t.Fatalf("Restored = %v, %v", ok, err)
	}
	if err := w.Enqueue(ctx, actionsMsg("c4", false, act("ac4", time.Now()))); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, w.m.duplicatesDropped); n != 1 {
		t.Errorf("a restored action was accepted again (%v duplicates dropped)", n)
	}
}
