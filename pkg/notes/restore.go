package notes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
)

// Restoring the delivery record. notes.written is the durable account of what Intercom holds: every
// note the writer stored, with its lines' action ids and numbers, and every summary it posted. When
// Redis loses the writer's state, feeding that topic to Restore before any other work makes the
// writer remember it all again, so that replaying conversation.actions and conversation.summaries
// posts nothing twice and new actions are numbered on from the last line written.
//
// The restore marker tells a Redis that holds the writer's record from one that lost it: a key per
// shard, set by MarkRestored once a restore pass completed, never expiring. A fresh or flushed
// Redis has none; in Redis Cluster, a node that lost its data takes the markers of its slots along.

// restoredKey is the restore marker of one shard; it shares the shard's hash tag, so it lives (and
// is lost) with the shard's conversations.
func restoredKey(shard int) string { return keyPrefix + shardTag(shard) + ":restored" }

// restoreLinesScript records an actions note as delivered: its action ids join the conversation's
// accepted set and the line counter rises to the note's last line (never falls). A key the script
// creates gets the delivered TTL; an existing key keeps its own.
// KEYS: accepted, meta. ARGV: ttl s, last seq, action ids. Returns {ids added, 1 if the counter rose}.
var restoreLinesScript = redis.NewScript(`
local added = 0
for i = 3, #ARGV do added = added + redis.call('SADD', KEYS[1], ARGV[i]) end
local raised = 0
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0
if tonumber(ARGV[2]) > seq then
  redis.call('HSET', KEYS[2], 'seq', ARGV[2])
  raised = 1
end
for i = 1, 2 do
  if redis.call('TTL', KEYS[i]) == -1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
return {added, raised}
`)

// restoreSummaryScript records a summary job as done, unless this Redis already knows the job (it
// is then ExecuteSummary's to finish). KEYS: job. ARGV: ref, part id, ttl s. Returns 1 if recorded.
var restoreSummaryScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'ref', ARGV[1], 'part', ARGV[2], 'attempted', '1', 'published', '1', 'done', '1')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`)

// Restore records a note that notes.written says Intercom holds, as the writer would have recorded
// it had it just written the note, and reports whether the state changed (false: this Redis knew
// the note already).
//
// For an actions note, its action ids count as accepted and delivered (Enqueue drops them as
// duplicates) and the conversation's line counter rises to at least the note's last line. For a
// summary note, the summary job counts as done, so ExecuteSummary of that summary id makes no call;
// a job this Redis already knows is left as it is, for ExecuteSummary to finish.
//
// Restore is idempotent, touches only keys of the note's conversation (one hash tag, so it is
// cluster-safe), and may run while other replicas write: it never lowers a counter or undoes a step.
// Errors are transient, except ErrInvalidInput for a message that can never be restored.
func (w *Writer) Restore(ctx context.Context, n messages.NoteWritten) (bool, error) {
	if n.ConversationID == "" {
		return false, fmt.Errorf("%w: notes.written without a conversation id", ErrInvalidInput)
	}
	k := keysFor(n.ConversationID)
	ttl := ttlSeconds(w.cfg.DeliveredTTL)
	switch n.Kind {
	case messages.NoteActions:
		if len(n.Lines) == 0 {
			return false, fmt.Errorf("%w: actions note %s of conversation %s has no lines", ErrInvalidInput, n.Ref, n.ConversationID)
		}
		args := make([]any, 0, 2+len(n.Lines))
		last := 0
		args = append(args, ttl, 0)
		for _, l := range n.Lines {
			if l.Action.ActionID == "" {
				return false, fmt.Errorf("%w: line %d of note %s of conversation %s has no action id", ErrInvalidInput, l.Seq, n.Ref, n.ConversationID)
			}
			last = max(last, l.Seq)
			args = append(args, l.Action.ActionID)
		}
		args[1] = last
		res, err := restoreLinesScript.Run(ctx, w.rdb, []string{k.accepted, k.meta}, args...).Int64Slice()
		if err != nil {
			return false, fmt.Errorf("notes: restore note %s of conversation %s: %w", n.Ref, n.ConversationID, err)
		}
		return res[0] > 0 || res[1] > 0, nil
	case messages.NoteSummary:
		if n.SummaryID == "" {
			return false, fmt.Errorf("%w: summary note %s of conversation %s has no summary id", ErrInvalidInput, n.Ref, n.ConversationID)
		}
		res, err := restoreSummaryScript.Run(ctx, w.rdb, []string{k.summaryJob(n.SummaryID)}, n.Ref, n.PartID, ttl).Int()
		if err != nil {
			return false, fmt.Errorf("notes: restore summary %s of conversation %s: %w", n.SummaryID, n.ConversationID, err)
		}
		return res == 1, nil
	}
	return false, fmt.Errorf("%w: note kind %q", ErrInvalidInput, n.Kind)
}

// Restored reports whether this Redis holds the writer's delivery record: every shard's restore
// marker is present. False means Redis is new, or lost (some of) its data since the last restore.
func (w *Writer) Restored(ctx context.Context) (bool, error) {
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, shardCount)
	for s := range shardCount {
		cmds[s] = pipe.Exists(ctx, restoredKey(s))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("notes: read restore markers: %w", err)
	}
	for _, c := range cmds {
		if c.Val() != 1 {
			return false, nil
		}
	}
	return true, nil
}

// MarkRestored sets every shard's restore marker: call it once a restore pass over notes.written
// completed. The markers hold the time they were set and never expire.
func (w *Writer) MarkRestored(ctx context.Context) error {
	at := w.now().UTC().Format(time.RFC3339)
	pipe := w.rdb.Pipeline()
	for s := range shardCount {
		pipe.Set(ctx, restoredKey(s), at, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("notes: set restore markers: %w", err)
	}
	return nil
}
