package notes

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// fakeIntercom implements Intercom in memory, with notes kept per conversation and faults
// programmable per operation and call number.
type fakeIntercom struct {
	mu       sync.Mutex
	notes    map[string][]*fakeNote // conversation id → notes, oldest first
	gone     map[string]bool
	nextPart int
	calls    []fakeCall
	counts   map[string]int
	fault    func(op string, n int) fault // n counts calls of op from 1

	// Intercom's fixed-window rate limit: limit calls per window (0: none).
	limit    int
	window   time.Duration
	windows  map[int64]int
	rejected int // 429 answers
}

type fakeNote struct {
	PartID   string
	Body     string
	Redacted bool
}

type fakeCall struct {
	Op   string // reply, find, redact
	Conv string
	Arg  string // part id for redact
	At   time.Time
}

// fault is what one call does instead of succeeding.
type fault struct {
	Err   error  // returned error
	Store bool   // reply: the note is stored although Err is returned
	Hang  bool   // block until the caller's context ends and return its error (after storing if Store)
	Then  func() // called before returning (a crash, for instance)
}

func newFakeIntercom() *fakeIntercom {
	return &fakeIntercom{
		notes:   map[string][]*fakeNote{},
		gone:    map[string]bool{},
		counts:  map[string]int{},
		windows: map[int64]int{},
	}
}

func (f *fakeIntercom) setFault(fn func(op string, n int) fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

func (f *fakeIntercom) setRateLimit(limit int, window time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit, f.window = limit, window
}

// begin records a call and decides its fault; the caller holds f.mu.
func (f *fakeIntercom) begin(op, conv, arg string) (fault, error) {
	now := time.Now()
	f.calls = append(f.calls, fakeCall{Op: op, Conv: conv, Arg: arg, At: now})
	f.counts[op]++
	if f.limit > 0 {
		w := now.UnixNano() / int64(f.window)
		f.windows[w]++
		if f.windows[w] > f.limit {
			f.rejected++
			reset := time.Unix(0, (w+1)*int64(f.window))
			return fault{}, &RateLimitedError{RetryAfter: time.Until(reset)}
		}
	}
	var flt fault
	if f.fault != nil {
		flt = f.fault(op, f.counts[op])
	}
	if f.gone[conv] {
		return flt, ErrConversationGone
	}
	return flt, nil
}

func (f *fakeIntercom) finish(ctx context.Context, flt fault) error {
	if flt.Hang {
		<-ctx.Done()
		if flt.Then != nil {
			flt.Then()
		}
		return ctx.Err()
	}
	if flt.Then != nil {
		flt.Then()
	}
	return flt.Err
}

var refPattern = regexp.MustCompile(`ref: ([A-Za-z0-9-]+)</p>`)

func (f *fakeIntercom) ReplyNote(ctx context.Context, conv, body string) (string, error) {
	f.mu.Lock()
	flt, err := f.begin("reply", conv, "")
	if err != nil {
		f.mu.Unlock()
		return "", err
	}
	var partID string
	if (flt.Err == nil && !flt.Hang) || flt.Store {
		f.nextPart++
		partID = strconv.Itoa(1000 + f.nextPart)
		f.notes[conv] = append(f.notes[conv], &fakeNote{PartID: partID, Body: body})
	}
	f.mu.Unlock()
	if err := f.finish(ctx, flt); err != nil {
		return "", err
	}
	return partID, nil
}

func (f *fakeIntercom) FindNote(ctx context.Context, conv, ref string) (string, bool, error) {
	f.mu.Lock()
	flt, err := f.begin("find", conv, ref)
	var partID string
	var found bool
	if err == nil {
		for _, n := range f.notes[conv] {
			if m := refPattern.FindStringSubmatch(n.Body); m != nil && m[1] == ref {
				partID, found = n.PartID, true
			}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return "", false, err
	}
	if err := f.finish(ctx, flt); err != nil {
		return "", false, err
	}
	return partID, found, nil
}

func (f *fakeIntercom) Redact(ctx context.Context, conv, partID string) error {
	f.mu.Lock()
	flt, err := f.begin("redact", conv, partID)
	if err == nil && flt.Err == nil && !flt.Hang {
		err = fmt.Errorf("part %s: %w", partID, ErrConversationGone)
		for _, n := range f.notes[conv] {
			if n.PartID != partID {
				continue
			}
			if n.Redacted {
				err = ErrAlreadyRedacted
			} else {
				n.Redacted, err = true, nil
				n.Body = "<p><i>This message was deleted</i></p>"
			}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.finish(ctx, flt)
}

func (f *fakeIntercom) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

func (f *fakeIntercom) callLog() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func (f *fakeIntercom) notesOf(conv string) []fakeNote {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fakeNote, len(f.notes[conv]))
	for i, n := range f.notes[conv] {
		out[i] = *n
	}
	return out
}

func (f *fakeIntercom) totalNotes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ns := range f.notes {
		n += len(ns)
	}
	return n
}

// noteLinePattern reads "[seq] time User did <id>" lines back out of stored note bodies.
var noteLinePattern = regexp.MustCompile(`\[(\d+)\] [0-9: A-Za-z]+? User did (a[\w.-]+)`)

// delivered returns, per conversation, the action ids in the stored notes with their line numbers.
func (f *fakeIntercom) delivered() map[string][]deliveredLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]deliveredLine{}
	for conv, ns := range f.notes {
		for _, n := range ns {
			for _, m := range noteLinePattern.FindAllStringSubmatch(n.Body, -1) {
				seq, _ := strconv.Atoi(m[1])
				out[conv] = append(out[conv], deliveredLine{Seq: seq, ActionID: m[2], PartID: n.PartID})
			}
		}
	}
	return out
}

type deliveredLine struct {
	Seq      int
	ActionID string
	PartID   string
}

// recordingSink records what the writer publishes; fail, when set, decides an error per call.
type recordingSink struct {
	mu      sync.Mutex
	written []messages.NoteWritten
	dead    []messages.ConversationActions
	reasons []string
	fail    func(n messages.NoteWritten) error
}

func (s *recordingSink) NoteWritten(_ context.Context, n messages.NoteWritten) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return err
		}
	}
	s.written = append(s.written, n)
	return nil
}

func (s *recordingSink) DeadLetter(_ context.Context, b messages.ConversationActions, reason string, _ error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, b)
	s.reasons = append(s.reasons, reason)
	return nil
}

func (s *recordingSink) notes() []messages.NoteWritten {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]messages.NoteWritten(nil), s.written...)
}

func (s *recordingSink) deadLetters() ([]messages.ConversationActions, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]messages.ConversationActions(nil), s.dead...), append([]string(nil), s.reasons...)
}

// fakeClock is a controllable clock for debounce and max-wait tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 24, 10, 15, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is a configuration with short durations and a generous rate budget.
func testConfig() Config {
	c := DefaultConfig()
	c.Debounce = 20 * time.Millisecond
	c.MaxWait = 200 * time.Millisecond
	c.PollInterval = 5 * time.Millisecond
	c.CallTimeout = 200 * time.Millisecond
	c.LeaseTTL = 5 * time.Second // far above any stall of a loaded test machine
	c.RetryMin = 10 * time.Millisecond
	c.RetryMax = 100 * time.Millisecond
	c.BreakerFailures = 3
	c.BreakerOpenTimeout = 100 * time.Millisecond
	c.RatePerMinute = 600000
	return c
}

type harness struct {
	t     *testing.T
	redis *redistest.Server
	rdb   redis.UniversalClient
	ic    *fakeIntercom
	sink  *recordingSink
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := redistest.Start(t)
	return &harness{t: t, redis: srv, rdb: srv.Client(t), ic: newFakeIntercom(), sink: &recordingSink{}}
}

// writer builds a Writer on the harness's Redis, fake Intercom and sink, with the restore markers
// set as the notewriter sets them at start-up; reg may be nil.
func (h *harness) writer(cfg Config, reg prometheus.Registerer) *Writer {
	h.t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	w, err := New(h.rdb, h.ic, h.sink, cfg, zaptest.NewLogger(h.t, zaptest.Level(zap.InfoLevel)), reg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	markRestored(h.t, w)
	return w
}

// markRestored sets w's restore markers: its Redis holds the (empty) delivery record.
func markRestored(t testing.TB, w *Writer) {
	t.Helper()
	if err := w.MarkRestored(context.Background()); err != nil {
		t.Fatalf("MarkRestored: %v", err)
	}
}

// run starts w.Run and returns a function that stops it and returns Run's error.
func run(t *testing.T, w *Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// flushNow runs one poll of the flusher and waits for the flushes it started.
func flushNow(t *testing.T, ctx context.Context, w *Writer) {
	t.Helper()
	sem := make(chan struct{}, w.cfg.FlushConcurrency)
	var wg sync.WaitGroup
	_, err := w.poll(ctx, sem, make(chan struct{}, 1), &wg)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		t.Fatalf("poll: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// act returns an action whose sentence names its id, so notes can be read back.
func act(id string, at time.Time) messages.Action {
	return messages.Action{
		ActionID:  id,
		SessionID: "s1",
		EventTime: at,
		Event:     "$autocapture",
		Kind:      messages.KindClick,
		Text:      "User did " + id,
	}
}

func actionsMsg(conv string, pre bool, actions ...messages.Action) messages.ConversationActions {
	return messages.ConversationActions{
		Version:         messages.Version,
		ConversationID:  conv,
		WorkspaceID:     "ws1",
		SessionID:       "s1",
		PreConversation: pre,
		Actions:         actions,
	}
}

// enqueueAll enqueues msg like a consumer does: transient errors are retried after a short pause.
func enqueueAll(t *testing.T, w *Writer, msgs ...messages.ConversationActions) {
	t.Helper()
	for _, m := range msgs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := w.Enqueue(context.Background(), m)
			if err == nil {
				break
			}
			if IsPermanent(err) || IsUnauthorized(err) || time.Now().After(deadline) {
				t.Fatalf("Enqueue %s: %v", m.ConversationID, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// checkExactlyOnce checks that every expected action of every conversation is in exactly one stored
// note, and that the line numbers of each conversation run 1, 2, 3 … without gaps or repeats.
func checkExactlyOnce(t *testing.T, ic *fakeIntercom, want map[string][]string) {
	t.Helper()
	got := ic.delivered()
	for conv, ids := range want {
		lines := got[conv]
		count := map[string]int{}
		for _, l := range lines {
			count[l.ActionID]++
		}
		for _, id := range ids {
			if count[id] != 1 {
				t.Errorf("conversation %s: action %s is in %d notes, want 1", conv, id, count[id])
			}
		}
		if len(lines) != len(ids) {
			t.Errorf("conversation %s: %d lines written, want %d", conv, len(lines), len(ids))
		}
		seqs := make([]int, len(lines))
		for i, l := range lines {
			seqs[i] = l.Seq
		}
		sort.Ints(seqs)
		for i, s := range seqs {
			if s != i+1 {
				t.Errorf("conversation %s: line numbers %v are not 1..%d", conv, seqs, len(seqs))
				break
			}
		}
	}
}

// registerFlags returns cfg as parsed from args over the defaults.
func parseFlags(t *testing.T, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}
