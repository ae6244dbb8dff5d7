// Package notes owns the notewriter's core: it turns conversation actions into coalesced, numbered
// internal notes that reach Intercom exactly once in effect, and executes summaries (post the summary
// note, then redact the raw notes it replaces).
//
// All state lives in Redis, so a crash or several replicas are safe. Enqueue appends the actions a
// conversation has not seen before to its pending list and schedules the conversation; once it
// returns, the Kafka record may be committed. Run is the flusher: it claims due conversations under a
// lease, persists the note it is about to post (with a reference token in its body), posts it, and
// then does the bookkeeping. A note whose POST outcome is unknown is looked for by its reference
// token before it is ever posted again. Intercom calls share one rate budget across replicas and go
// through a circuit breaker per workspace.
//
// notes.written is the durable account of what Intercom holds. After Redis lost the writer's state,
// Restore feeds that account back (action ids delivered, line counters, summaries done) before any
// other work, and the restore markers (Restored, MarkRestored) tell a Redis that holds the record
// from one that lost it; see restore.go.
package notes

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// Intercom is what the writer needs of the Intercom API. Implementations return the errors of this
// package (ErrOutcomeUnknown, ErrConversationGone, ErrUnauthorized, ErrAlreadyRedacted, ErrRejected,
// *RateLimitedError) where they apply, and must not retry a POST blindly.
type Intercom interface {
	// ReplyNote posts an internal note and returns the id of the new conversation part.
	ReplyNote(ctx context.Context, conversationID, bodyHTML string) (partID string, err error)
	// FindNote looks for a note whose body contains ref among the conversation's parts.
	FindNote(ctx context.Context, conversationID, ref string) (partID string, found bool, err error)
	// Redact redacts one conversation part.
	Redact(ctx context.Context, conversationID, partID string) error
}

// Sink receives every note the writer stored.
type Sink interface {
	// NoteWritten publishes a note now stored in Intercom (notes.written). It may be called more
	// than once for one note after a crash; consumers deduplicate by part id or ref.
	NoteWritten(ctx context.Context, n messages.NoteWritten) error
}

// DeadLetterSink is implemented by a Sink that can also publish to the dead-letter topic. Actions
// that can never be written (their conversation is gone, or Intercom refused their note) go there
// with reason DeadLetterNotFound or DeadLetterRejected. With a Sink that does not implement it, the
// writer logs such actions, with their ids, at error level instead.
type DeadLetterSink interface {
	DeadLetter(ctx context.Context, batch messages.ConversationActions, reason string, cause error) error
}

// ErrMissingDependency is returned by New when a required dependency is nil.
var ErrMissingDependency = errors.New("notes: missing dependency")

// Reasons given to DeadLetterSink.DeadLetter.
const (
	DeadLetterNotFound = "not_found" // the conversation is gone
	DeadLetterRejected = "rejected"  // Intercom refused the note (ErrRejected)
)

// Limits of one flush and of dead-letter messages.
const (
	maxNotesPerClaim = 20  // notes one claim writes before the conversation goes back to the queue
	deadLetterChunk  = 500 // actions per dead-letter message
	releaseTimeout   = 5 * time.Second
)

// Writer writes notes. It is safe for concurrent use; run several replicas against one Redis.
type Writer struct {
	rdb      redis.UniversalClient
	ic       Intercom
	sink     Sink
	cfg      Config
	loc      *time.Location
	log      *zap.Logger
	m        *metrics
	budget   *budget
	breakers *breakers
	now      func() time.Time // replaced in tests to control debounce and max wait

	stopMu  sync.Mutex
	stopErr error         // set once Intercom refused the token
	stopped chan struct{} // closed with stopErr
}

// New builds a Writer. reg may be nil (metrics are then not exported).
func New(rdb redis.UniversalClient, ic Intercom, sink Sink, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Writer, error) {
	if rdb == nil || ic == nil || sink == nil {
		return nil, fmt.Errorf("%w: redis client, intercom and sink are required", ErrMissingDependency)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		rdb:     rdb,
		ic:      ic,
		sink:    sink,
		cfg:     cfg,
		loc:     cfg.location(),
		log:     log,
		m:       m,
		budget:  newBudget(rdb, cfg.RatePerMinute, cfg.RateWindow, m),
		now:     time.Now,
		stopped: make(chan struct{}),
	}
	w.breakers = newBreakers(cfg, log, m, func() bool { return w.Err() != nil })
	return w, nil
}

// Err returns why writing stopped for good (Intercom refused the access token), or nil.
func (w *Writer) Err() error {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	return w.stopErr
}

func (w *Writer) stop(cause error) {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	if w.stopErr != nil {
		return
	}
	w.stopErr = fmt.Errorf("notes: writing to intercom stopped, fix the access token and restart: %w", cause)
	close(w.stopped)
	w.breakers.markAllOpen()
	w.log.Error("intercom refused the access token; no more notes will be written", zap.Error(cause))
}

// BreakerOpen reports whether writing is held back: a workspace's breaker is open, or writing stopped
// for good. While it is true the consumer pauses its partitions and commits nothing.
func (w *Writer) BreakerOpen() bool {
	return w.Err() != nil || w.breakers.anyOpen()
}

// ObserveRateLimit takes Intercom's X-RateLimit-Remaining and X-RateLimit-Reset from any response:
// when remaining is at or below the configured floor, every replica waits until reset.
func (w *Writer) ObserveRateLimit(ctx context.Context, remaining int, reset time.Time) error {
	if remaining > w.cfg.RateRemainingFloor {
		return nil
	}
	d := time.Until(reset)
	if d <= 0 {
		return nil
	}
	return w.budget.pause(ctx, min(d, time.Minute))
}

// Enqueue accepts a conversation.actions message: the actions the conversation has not seen before
// are stored for its next note. When Enqueue returns nil the record may be committed. Errors are
// transient (back off, commit nothing) unless IsPermanent says otherwise: ErrBreakerOpen while
// Intercom is failing, ErrBacklogFull, ErrNotRestored until Redis holds the delivery record,
// ErrConversationGone (permanent), ErrInvalidInput (permanent).
func (w *Writer) Enqueue(ctx context.Context, msg messages.ConversationActions) error {
	_, err := w.EnqueueBatch(ctx, []messages.ConversationActions{msg})
	return err
}

// EnqueueBatch is Enqueue for several messages, in one Redis round trip. It returns how many of
// msgs, from the first, were accepted, and when that is fewer than all, the error of the next
// one (as Enqueue would return it). Messages after that one may have been accepted too: the
// actions of a message given again are recognised as duplicates.
func (w *Writer) EnqueueBatch(ctx context.Context, msgs []messages.ConversationActions) (int, error) {
	if err := w.Err(); err != nil {
		return 0, err
	}
	type call struct {
		i    int
		keys []string
		args []any
	}
	calls := make([]call, 0, len(msgs))
	var stopErr error // the error of msgs[stopAt], found before anything is sent
	stopAt := len(msgs)
	nowMs := w.now().UnixMilli()
	for i, msg := range msgs {
		keys, args, err := w.enqueueCall(msg, nowMs)
		if err != nil {
			stopAt, stopErr = i, err
			break
		}
		if keys != nil {
			calls = append(calls, call{i: i, keys: keys, args: args})
		}
	}
	if len(calls) == 0 {
		return stopAt, stopErr
	}
	var cmds []*redis.Cmd
	run := func() error {
		pipe := w.rdb.Pipeline()
		cmds = cmds[:0]
		for _, c := range calls {
			cmds = append(cmds, enqueueScript.EvalSha(ctx, pipe, c.keys, c.args...))
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	if err := run(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its scripts (a restart): load it and send again; a message sent twice is
		// recognised as duplicates.
		if lerr := enqueueScript.Load(ctx, w.rdb).Err(); lerr != nil {
			return 0, fmt.Errorf("notes: enqueue: load script: %w", lerr)
		}
		_ = run() // each command carries its own error
	}
	for j, c := range calls {
		res, cerr := cmds[j].Int64Slice()
		if cerr == nil && len(res) != 2 {
			cerr = fmt.Errorf("unexpected answer %v", res)
		}
		if cerr != nil {
			return c.i, fmt.Errorf("notes: enqueue for conversation %s: %w", msgs[c.i].ConversationID, cerr)
		}
		if err := w.enqueued(msgs[c.i], res); err != nil {
			return c.i, err
		}
	}
	return stopAt, stopErr
}

// enqueueCall returns the keys and arguments of enqueueScript for msg (none when it has no
// actions), or the error that refuses it before anything is sent.
func (w *Writer) enqueueCall(msg messages.ConversationActions, nowMs int64) ([]string, []any, error) {
	if msg.ConversationID == "" {
		return nil, nil, fmt.Errorf("%w: conversation.actions without a conversation id", ErrInvalidInput)
	}
	if len(msg.Actions) == 0 {
		return nil, nil, nil
	}
	if w.breakers.open(msg.WorkspaceID) {
		return nil, nil, fmt.Errorf("notes: enqueue for conversation %s: %w", msg.ConversationID, ErrBreakerOpen)
	}
	k := keysFor(msg.ConversationID)
	args := make([]any, 0, 6+2*len(msg.Actions))
	args = append(args, k.id, nowMs, w.cfg.Debounce.Milliseconds(), w.cfg.MaxWait.Milliseconds(),
		ttlSeconds(w.cfg.DeliveredTTL), w.cfg.MaxPending)
	for i, a := range msg.Actions {
		if a.ActionID == "" {
			return nil, nil, fmt.Errorf("%w: action %d for conversation %s has no id", ErrInvalidInput, i, msg.ConversationID)
		}
		if a.SessionID == "" {
			a.SessionID = msg.SessionID
		}
		item, err := json.Marshal(pendingItem{PreConversation: msg.PreConversation, WorkspaceID: msg.WorkspaceID, Action: a})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: encode action %s: %w", ErrInvalidInput, a.ActionID, err)
		}
		args = append(args, a.ActionID, item)
	}
	return []string{k.accepted, k.pending, k.meta, k.due, k.lease, k.gone, restoredKey(k.shard)}, args, nil
}

// enqueued interprets enqueueScript's answer for msg.
func (w *Writer) enqueued(msg messages.ConversationActions, res []int64) error {
	switch res[0] {
	case -1:
		return fmt.Errorf("notes: enqueue for conversation %s: %w", msg.ConversationID, ErrConversationGone)
	case -2:
		return fmt.Errorf("notes: enqueue for conversation %s: %w (%d)", msg.ConversationID, ErrBacklogFull, w.cfg.MaxPending)
	case -3:
		return fmt.Errorf("notes: enqueue for conversation %s: %w", msg.ConversationID, ErrNotRestored)
	}
	w.m.actionsAccepted.Add(float64(res[0]))
	if res[1] > 0 {
		w.m.duplicatesDropped.Add(float64(res[1]))
		w.log.Debug("dropped actions the conversation already has",
			zap.String("conversation_id", msg.ConversationID), zap.Int64("duplicates", res[1]))
	}
	return nil
}

func ttlSeconds(d time.Duration) int64 { return max(1, int64(d/time.Second)) }

// Run flushes due conversations until ctx ends (then it returns nil after the flushes in progress
// finish) or until Intercom refuses the access token (then it returns that error). It looks for
// due conversations every PollInterval, as soon as the earliest scheduled one is due, and
// whenever a flush ends (its slot is free for the next due conversation).
func (w *Writer) Run(ctx context.Context) error {
	sem := make(chan struct{}, w.cfg.FlushConcurrency)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(w.cfg.PollInterval)
	defer timer.Stop()
	failing := false
	for {
		if err := w.Err(); err != nil {
			return err
		}
		next, err := w.poll(ctx, sem, freed, &wg)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			w.log.Warn("looking for due conversations failed; retrying", zap.Error(err))
		case err == nil && failing:
			failing = false
			w.log.Info("looking for due conversations works again")
		}
		wait := w.cfg.PollInterval
		if err == nil && next > 0 {
			wait = min(wait, max(next, minPollWait))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return w.Err() // nil, unless writing stopped on a 401 just as ctx ended
		case <-w.stopped:
		case <-timer.C:
		case <-freed:
		}
	}
}

// minPollWait spaces out polls when a conversation is due at once.
const minPollWait = 5 * time.Millisecond

// poll claims due conversations while flush slots are free and flushes each in its own goroutine;
// a flush that ends signals freed. It returns how long until the earliest conversation it left
// scheduled is due (0 when none is, or when it is due already).
func (w *Writer) poll(ctx context.Context, sem chan struct{}, freed chan<- struct{}, wg *sync.WaitGroup) (time.Duration, error) {
	if len(sem) == cap(sem) {
		return 0, nil
	}
	now := w.now()
	nowMs := now.UnixMilli()
	upTo := strconv.FormatInt(nowMs, 10)
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, shardCount)
	nexts := make([]*redis.ZSliceCmd, shardCount)
	for s := range shardCount {
		cmds[s] = pipe.ZRangeByScoreWithScores(ctx, dueKey(s), &redis.ZRangeBy{Min: "-inf", Max: upTo, Count: int64(cap(sem))})
		nexts[s] = pipe.ZRangeByScoreWithScores(ctx, dueKey(s), &redis.ZRangeBy{Min: "(" + upTo, Max: "+inf", Count: 1})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("notes: read due conversations: %w", err)
	}
	var due []redis.Z
	var next time.Duration
	for s, c := range cmds {
		due = append(due, c.Val()...)
		for _, z := range nexts[s].Val() {
			if d := time.UnixMilli(int64(z.Score)).Sub(now); next == 0 || d < next {
				next = d
			}
		}
	}
	// Longest overdue first: when the budget is tight, every conversation waits about as long.
	slices.SortFunc(due, func(a, b redis.Z) int { return cmp.Compare(a.Score, b.Score) })
	for _, z := range due {
		id, _ := z.Member.(string)
		select {
		case sem <- struct{}{}:
		default:
			return next, nil
		}
		k := keysFor(id)
		h := &hold{key: k.lease, token: newToken(12), at: time.Now()}
		ok, err := claimScript.Run(ctx, w.rdb, []string{k.due, k.lease}, id, nowMs, h.token, w.cfg.LeaseTTL.Milliseconds()).Int()
		if err != nil || ok != 1 {
			<-sem
			if err != nil {
				return next, fmt.Errorf("notes: claim conversation %s: %w", id, err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				<-sem
				select {
				case freed <- struct{}{}:
				default:
				}
			}()
			w.flushClaimed(ctx, k, h)
		}()
	}
	return next, nil
}

// flushClaimed writes what is due for a conversation this replica holds the lease on, then releases
// the lease and reschedules the conversation (with a backoff after a failure).
func (w *Writer) flushClaimed(ctx context.Context, k convKeys, h *hold) {
	published, err := w.flush(ctx, k, h)
	mode, delay := 0, time.Duration(0)
	var rl *RateLimitedError
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.As(err, &rl):
		mode, delay = 1, max(rl.RetryAfter, w.cfg.RetryMin)
		w.m.flushErrors.WithLabelValues("rate_limited").Inc()
	case errors.Is(err, ErrUnauthorized):
		w.m.flushErrors.WithLabelValues("unauthorized").Inc()
	case certainlyNotStored(err):
		// Nothing reached Intercom (open breaker, lease lost): look again soon.
		mode, delay = 1, w.jittered(w.cfg.RetryMin)
		w.m.flushErrors.WithLabelValues("held_back").Inc()
		w.log.Debug("writing a note was held back", zap.String("conversation_id", k.id), zap.Error(err))
	default:
		mode, delay = 2, w.jittered(w.cfg.RetryMin)
		w.m.flushErrors.WithLabelValues("failed").Inc()
		w.log.Warn("writing a note failed; will retry", zap.String("conversation_id", k.id), zap.Error(err))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	err = releaseScript.Run(rctx, w.rdb, []string{k.due, k.lease, k.pending, k.meta, k.inflight},
		k.id, h.token, w.now().UnixMilli(), w.cfg.Debounce.Milliseconds(), w.cfg.MaxWait.Milliseconds(),
		mode, delay.Milliseconds(), w.cfg.RetryMax.Milliseconds(), published).Err()
	if err != nil {
		// The lease expires by itself and the conversation stays in the due set.
		w.log.Warn("releasing a conversation failed", zap.String("conversation_id", k.id), zap.Error(err))
	}
}

// jittered spreads d over [d, 1.5d) so replicas do not retry in step.
func (w *Writer) jittered(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

// flush writes the conversation's due notes, finishing an in-flight note first. When it ends
// right after publishing a note with nothing left pending, it returns that note's stored JSON:
// the release clears it (one round trip fewer than clearing it here).
func (w *Writer) flush(ctx context.Context, k convKeys, h *hold) (published string, err error) {
	for range maxNotesPerClaim {
		at := time.Now()
		st, err := loadState(ctx, w.rdb, k, h.token, w.cfg.LeaseTTL, w.cfg.MaxLinesPerNote)
		if err != nil {
			return "", err
		}
		h.extended(at)
		fresh := st.inflight == nil // a note this call renders now has certainly not been posted yet
		if fresh {
			if len(st.pending) == 0 || w.now().Before(st.dueAt(w.cfg)) {
				return "", nil
			}
			// The budget is taken before the note is rendered, so that a note that had to wait
			// for it carries every action that arrived meanwhile.
			waited, err := w.budget.acquire(ctx)
			if err != nil {
				return "", notSent(err)
			}
			if waited {
				at := time.Now()
				if st, err = loadState(ctx, w.rdb, k, h.token, w.cfg.LeaseTTL, w.cfg.MaxLinesPerNote); err != nil {
					return "", err
				}
				h.extended(at)
				if st.inflight != nil || len(st.pending) == 0 {
					return "", notSent(fmt.Errorf("notes: conversation %s changed while its flush waited: %w", k.id, errLeaseLost))
				}
			}
			f, err := w.begin(ctx, k, h, st)
			if err != nil {
				return "", err
			}
			st.inflight = f
		}
		left, err := w.settle(ctx, k, h, st.inflight, fresh)
		if err != nil {
			switch {
			case errors.Is(err, errGoneHandled):
				return "", nil
			case errors.Is(err, errRejectedHandled):
				continue
			}
			return "", err
		}
		if left == 0 {
			return st.inflight.raw, nil
		}
		if err := w.clearInflight(ctx, k, h, st.inflight); err != nil {
			return "", err
		}
	}
	return "", nil
}

// hold is the lease this replica holds on a conversation while it flushes it.
type hold struct {
	key, token string
	at         time.Time // when a lease-checked write last extended it: the wall clock before the write
}

func (h *hold) extended(at time.Time) { h.at = at }

// renewHeld extends h before a call unless a lease-checked write extended it moments ago: it
// still has nearly all of its time then, well beyond one call.
func (w *Writer) renewHeld(ctx context.Context, h *hold) error {
	if !h.at.IsZero() && time.Since(h.at) < w.cfg.LeaseTTL/10 {
		return nil
	}
	at := time.Now()
	if err := w.renew(ctx, h.key, h.token); err != nil {
		return err
	}
	h.extended(at)
	return nil
}

// Errors that end a note's attempt after its actions went to the dead-letter sink.
var (
	errGoneHandled     = errors.New("notes: actions of the gone conversation were dead-lettered")
	errRejectedHandled = errors.New("notes: actions of the rejected note were dead-lettered")
)

// begin renders the next note from the head of the pending list and persists it as in flight.
func (w *Writer) begin(ctx context.Context, k convKeys, h *hold, st convState) (*inflight, error) {
	head := st.pending[0]
	var actions []messages.Action
	for _, it := range st.pending {
		if it.PreConversation != head.PreConversation || it.WorkspaceID != head.WorkspaceID {
			break // a pre-conversation batch gets notes of its own
		}
		actions = append(actions, it.Action)
	}
	notes := Render(Batch{
		FirstSeq:        st.seq + 1,
		PreConversation: head.PreConversation,
		Actions:         actions,
		RefBase:         newRef("tln"),
	}, RenderOptions{Location: w.loc, MaxLines: w.cfg.MaxLinesPerNote, MaxBytes: w.cfg.MaxNoteBytes})
	n := notes[0]
	f := &inflight{
		Ref:             n.Ref,
		Phase:           phasePosting,
		MaybePosted:     true, // it is posted right after this is stored: a crash leaves it unknown
		WorkspaceID:     head.WorkspaceID,
		PreConversation: n.PreConversation,
		Lines:           n.Lines,
		HTML:            n.HTML,
	}
	if err := w.putInflight(ctx, k, h, f); err != nil {
		return nil, err
	}
	return f, nil
}

// putInflight stores f in place of the in-flight note last read or written (none for a new one).
func (w *Writer) putInflight(ctx context.Context, k convKeys, h *hold, f *inflight) error {
	raw, err := f.encode()
	if err != nil {
		return err
	}
	at := time.Now()
	n, err := putInflightScript.Run(ctx, w.rdb, []string{k.lease, k.inflight},
		h.token, f.raw, raw, ttlSeconds(w.cfg.DeliveredTTL), w.cfg.LeaseTTL.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("notes: store in-flight note of conversation %s: %w", k.id, err)
	}
	if err := scriptResult(n, "store in-flight note of conversation "+k.id); err != nil {
		return notSent(err)
	}
	h.extended(at)
	f.raw = raw
	return nil
}

// settle brings an in-flight note to its end: posted exactly once, booked and published; the
// caller clears it. fresh says the note was rendered by this flush and no POST of it was attempted
// yet. It returns how many actions are pending after the note (-1 when unknown).
func (w *Writer) settle(ctx context.Context, k convKeys, h *hold, f *inflight, fresh bool) (left int64, err error) {
	left = -1
	if f.Phase == phasePosting {
		partID, err := w.post(ctx, k, h, f, fresh)
		if err != nil {
			return left, err
		}
		posted := *f
		posted.Phase = phasePosted
		posted.PartID = partID
		posted.WrittenAt = w.now().UTC()
		raw, err := posted.encode()
		if err != nil {
			return left, err
		}
		at := time.Now()
		n, err := completeScript.Run(ctx, w.rdb, []string{k.lease, k.inflight, k.pending, k.meta, k.accepted},
			h.token, f.raw, raw, len(f.Lines), f.toSeq(), ttlSeconds(w.cfg.DeliveredTTL), w.cfg.LeaseTTL.Milliseconds()).Int64()
		if err != nil {
			return left, fmt.Errorf("notes: book note %s of conversation %s: %w", f.Ref, k.id, err)
		}
		if err := scriptResult(n, "book note "+f.Ref); err != nil {
			return left, notSent(err)
		}
		h.extended(at)
		left = n
		posted.raw = raw
		*f = posted
		w.m.notesPosted.WithLabelValues(messages.NoteActions).Inc()
		w.m.actionsPerNote.Observe(float64(len(f.Lines)))
		for _, l := range f.Lines {
			w.m.actionLatency.Observe(posted.WrittenAt.Sub(l.Action.EventTime).Seconds())
		}
	}
	if err := w.renewHeld(ctx, h); err != nil { // a replica that lost the lease publishes nothing
		return left, notSent(err)
	}
	if err := w.sink.NoteWritten(ctx, noteWritten(k.id, f)); err != nil {
		return left, fmt.Errorf("notes: publish note %s of conversation %s: %w", f.Ref, k.id, err)
	}
	return left, nil
}

// clearInflight deletes the in-flight note once notes.written has it.
func (w *Writer) clearInflight(ctx context.Context, k convKeys, h *hold, f *inflight) error {
	n, err := clearInflightScript.Run(ctx, w.rdb, []string{k.lease, k.inflight}, h.token, f.raw).Int64()
	if err != nil {
		return fmt.Errorf("notes: clear note %s of conversation %s: %w", f.Ref, k.id, err)
	}
	return notSentIf(scriptResult(n, "clear note "+f.Ref))
}

func notSentIf(err error) error {
	if err == nil {
		return nil
	}
	return notSent(err)
}

func noteWritten(conversationID string, f *inflight) messages.NoteWritten {
	return messages.NoteWritten{
		Version:         messages.Version,
		ConversationID:  conversationID,
		WorkspaceID:     f.WorkspaceID,
		PartID:          f.PartID,
		Ref:             f.Ref,
		Kind:            messages.NoteActions,
		PreConversation: f.PreConversation,
		Lines:           f.Lines,
		WrittenAt:       f.WrittenAt,
	}
}

// post makes sure the in-flight note is stored in Intercom exactly once and returns its part id: a
// note that may have been posted before is looked for by its reference token first.
func (w *Writer) post(ctx context.Context, k convKeys, h *hold, f *inflight, fresh bool) (string, error) {
	renew := func(ctx context.Context) error { return w.renewHeld(ctx, h) }
	token := h.token
	if f.MaybePosted && !fresh {
		var partID string
		var found bool
		err := w.call(ctx, f.WorkspaceID, "find_note", renew, func(ctx context.Context) error {
			var err error
			partID, found, err = w.ic.FindNote(ctx, k.id, f.Ref)
			return err
		})
		if err != nil {
			return "", w.failed(ctx, k, token, f, err)
		}
		if found {
			w.m.unknownResolutions.WithLabelValues("found").Inc()
			w.log.Info("note of unknown outcome found in the conversation; not posting it again",
				zap.String("conversation_id", k.id), zap.String("ref", f.Ref), zap.String("part_id", partID))
			return partID, nil
		}
		w.m.unknownResolutions.WithLabelValues("not_found").Inc()
	}
	if !f.MaybePosted {
		f.MaybePosted = true // from here on a crash leaves the outcome unknown
		if err := w.putInflight(ctx, k, h, f); err != nil {
			return "", err
		}
	}
	wait := w.budget.wait
	if fresh {
		wait = prepaid // flush took the budget before rendering the note
	}
	var partID string
	err := w.callWithin(ctx, f.WorkspaceID, "reply_note", wait, renew, func(ctx context.Context) error {
		var err error
		partID, err = w.ic.ReplyNote(ctx, k.id, f.HTML)
		return err
	})
	if err != nil {
		if certainlyNotStored(err) && !errors.Is(err, ErrConversationGone) {
			f.MaybePosted = false // saves a lookup next time; on failure the lookup just happens
			if perr := w.putInflight(context.WithoutCancel(ctx), k, h, f); perr != nil {
				w.log.Debug("could not record that a note was not posted", zap.Error(perr))
			}
		}
		return "", w.failed(ctx, k, token, f, err)
	}
	return partID, nil
}

// failed handles a failed call for an in-flight note: a gone conversation sends all its actions to
// the dead-letter sink, a rejected note its own; anything else is returned for a retry.
func (w *Writer) failed(ctx context.Context, k convKeys, token string, f *inflight, err error) error {
	if errors.Is(err, ErrRejected) {
		if derr := w.dropRejected(ctx, k, token, f, err); derr != nil {
			return fmt.Errorf("notes: intercom rejected note %s and dead-lettering its actions failed: %w", f.Ref, derr)
		}
		return fmt.Errorf("notes: conversation %s: %w: %w", k.id, errRejectedHandled, err)
	}
	if !errors.Is(err, ErrConversationGone) {
		return err
	}
	if derr := w.deadLetter(ctx, k, token, err); derr != nil {
		return fmt.Errorf("notes: conversation %s is gone and dead-lettering its actions failed: %w", k.id, derr)
	}
	return fmt.Errorf("notes: conversation %s: %w: %w", k.id, errGoneHandled, err)
}

// dropRejected sends the actions of a note Intercom refused to the dead-letter sink and forgets the
// note; the next note reuses its line numbers.
func (w *Writer) dropRejected(ctx context.Context, k convKeys, token string, f *inflight, cause error) error {
	batch := messages.ConversationActions{
		Version:         messages.Version,
		ConversationID:  k.id,
		WorkspaceID:     f.WorkspaceID,
		SessionID:       f.Lines[0].Action.SessionID,
		PreConversation: f.PreConversation,
	}
	for _, l := range f.Lines {
		batch.Actions = append(batch.Actions, l.Action)
	}
	if err := w.deadLetterBatch(ctx, batch, DeadLetterRejected, cause); err != nil {
		return err
	}
	w.m.deadLettered.Add(float64(len(f.Lines)))
	n, err := dropInflightScript.Run(ctx, w.rdb, []string{k.lease, k.inflight, k.pending, k.meta},
		token, f.raw, len(f.Lines)).Int64()
	if err != nil {
		return fmt.Errorf("forget rejected note: %w", err)
	}
	if err := scriptResult(n, "forget rejected note"); err != nil {
		return err
	}
	w.log.Error("intercom rejected a note; its actions went to the dead-letter topic",
		zap.String("conversation_id", k.id), zap.String("ref", f.Ref), zap.Int("actions", len(f.Lines)), zap.Error(cause))
	return nil
}

// deadLetter sends the pending actions of a gone conversation (the in-flight note's among them) to
// the dead-letter sink and forgets them.
func (w *Writer) deadLetter(ctx context.Context, k convKeys, token string, cause error) error {
	raws, err := w.rdb.LRange(ctx, k.pending, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("read pending actions: %w", err)
	}
	items, err := decodeItems(raws)
	if err != nil {
		return err
	}
	all := items // the in-flight note's actions are the head of the pending list
	for len(all) > 0 {
		head := all[0]
		n := 0
		for n < len(all) && n < deadLetterChunk && all[n].PreConversation == head.PreConversation &&
			all[n].WorkspaceID == head.WorkspaceID {
			n++
		}
		batch := messages.ConversationActions{
			Version:         messages.Version,
			ConversationID:  k.id,
			WorkspaceID:     head.WorkspaceID,
			SessionID:       head.Action.SessionID,
			PreConversation: head.PreConversation,
		}
		for _, it := range all[:n] {
			batch.Actions = append(batch.Actions, it.Action)
		}
		if err := w.deadLetterBatch(ctx, batch, DeadLetterNotFound, cause); err != nil {
			return err
		}
		w.m.deadLettered.Add(float64(n))
		all = all[n:]
	}
	res, err := goneScript.Run(ctx, w.rdb, []string{k.lease, k.gone, k.pending, k.meta, k.inflight, k.due},
		token, ttlSeconds(w.cfg.DeliveredTTL), k.id).Int64()
	if err != nil {
		return fmt.Errorf("forget gone conversation: %w", err)
	}
	if err := scriptResult(res, "forget gone conversation"); err != nil {
		return err
	}
	w.log.Warn("conversation is gone; its actions went to the dead-letter topic",
		zap.String("conversation_id", k.id), zap.Int("actions", len(items)))
	return nil
}

// deadLetterBatch hands actions that can never be written to the dead-letter sink, or logs them when
// the sink has no dead-letter topic.
func (w *Writer) deadLetterBatch(ctx context.Context, batch messages.ConversationActions, reason string, cause error) error {
	if dl, ok := w.sink.(DeadLetterSink); ok {
		if err := dl.DeadLetter(ctx, batch, reason, cause); err != nil {
			return fmt.Errorf("dead-letter actions: %w", err)
		}
		return nil
	}
	ids := make([]string, len(batch.Actions))
	for i, a := range batch.Actions {
		ids[i] = a.ActionID
	}
	w.log.Error("actions can never be written and the sink has no dead-letter topic",
		zap.String("conversation_id", batch.ConversationID), zap.String("reason", reason),
		zap.Strings("action_ids", ids), zap.Error(cause))
	return nil
}

// renew extends a lease before a call, so that it outlives the call.
func (w *Writer) renew(ctx context.Context, lease, token string) error {
	n, err := renewScript.Run(ctx, w.rdb, []string{lease}, token, w.cfg.LeaseTTL.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("notes: renew lease: %w", err)
	}
	if n != 1 {
		return errLeaseLost
	}
	return nil
}

// call makes one Intercom call: it waits for the shared rate budget, renews the caller's lease, and
// runs fn through the workspace's circuit breaker with the call timeout. Errors that happen before
// anything is sent are wrapped so that certainlyNotStored recognises them.
func (w *Writer) call(ctx context.Context, ws, op string, renew func(context.Context) error, fn func(context.Context) error) error {
	return w.callWithin(ctx, ws, op, w.budget.wait, renew, fn)
}

// callWithin is call with the budget wait of the caller's priority.
func (w *Writer) callWithin(ctx context.Context, ws, op string, wait func(context.Context) error, renew func(context.Context) error, fn func(context.Context) error) error {
	if err := w.Err(); err != nil {
		return notSent(err)
	}
	cb := w.breakers.get(ws)
	if cb.State() == gobreaker.StateOpen {
		w.m.calls.WithLabelValues(op, "breaker_open").Inc()
		return notSent(fmt.Errorf("notes: %s: %w", op, ErrBreakerOpen))
	}
	if err := wait(ctx); err != nil {
		return notSent(err)
	}
	if renew != nil {
		if err := renew(ctx); err != nil {
			return notSent(err)
		}
	}
	_, err := cb.Execute(func() (struct{}, error) {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		defer cancel()
		err := fn(cctx)
		if errors.Is(err, ErrUnauthorized) {
			w.stop(err) // before the breaker counts the failure, so that it trips at once
		}
		return struct{}{}, err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		w.m.calls.WithLabelValues(op, "breaker_open").Inc()
		return notSent(fmt.Errorf("notes: %s: %w", op, ErrBreakerOpen))
	}
	w.m.calls.WithLabelValues(op, outcome(err)).Inc()
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		if perr := w.budget.pause(context.WithoutCancel(ctx), rl.RetryAfter); perr != nil {
			w.log.Warn("could not share intercom's rate limit pause", zap.Error(perr))
		}
	}
	if err != nil {
		return fmt.Errorf("notes: %s: %w", op, err)
	}
	return nil
}

// outcome labels a call's result for the calls metric.
func outcome(err error) string {
	var rl *RateLimitedError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.Is(err, ErrConversationGone):
		return "gone"
	case errors.Is(err, ErrAlreadyRedacted):
		return "already_redacted"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrOutcomeUnknown):
		return "unknown"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
