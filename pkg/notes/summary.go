package notes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// Fields of a summary job's Redis hash. Each step is recorded as it completes, so a job resumes
// where it stopped and never posts its summary twice.
const (
	jobRef       = "ref"       // reference token of the summary note
	jobAttempted = "attempted" // a POST of the summary may have reached Intercom
	jobPart      = "part"      // part id of the posted summary
	jobPublished = "published" // notes.written has the summary
	jobDone      = "done"      // every listed part is redacted
	jobRedacted  = "redacted:" // prefix: part id redacted (or found already redacted or gone)
)

// ExecuteSummary executes a conversation.summaries message: it posts the summary note, publishes it
// to notes.written, then redacts the raw notes it replaces. Redacting a part that is already redacted
// counts as done. Every step is persisted, so calling it again after a crash (or a replay) finishes
// the job without a second summary. Errors are transient unless IsPermanent says otherwise.
func (w *Writer) ExecuteSummary(ctx context.Context, s messages.ConversationSummary) error {
	if err := w.Err(); err != nil {
		return err
	}
	if s.ConversationID == "" || s.SummaryID == "" {
		return fmt.Errorf("%w: conversation.summaries needs a conversation id and a summary id", ErrInvalidInput)
	}
	if w.breakers.open(s.WorkspaceID) {
		return fmt.Errorf("notes: summary %s: %w", s.SummaryID, ErrBreakerOpen)
	}
	k := keysFor(s.ConversationID)
	jobKey, lockKey := k.summaryJob(s.SummaryID), k.summaryLock(s.SummaryID)

	token := newToken(12)
	lockedAt := time.Now()
	ok, err := w.rdb.SetNX(ctx, lockKey, token, w.cfg.LeaseTTL).Result()
	if err != nil {
		return fmt.Errorf("notes: lock summary %s: %w", s.SummaryID, err)
	}
	if !ok {
		return fmt.Errorf("notes: summary %s: %w", s.SummaryID, ErrBusy)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_ = unlockScript.Run(uctx, w.rdb, []string{lockKey}, token).Err()
	}()

	pipe := w.rdb.Pipeline()
	restoredCmd := pipe.Exists(ctx, restoredKey(k.shard))
	goneCmd := pipe.Exists(ctx, k.gone)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("notes: summary %s: %w", s.SummaryID, err)
	}
	if restoredCmd.Val() == 0 { // this Redis cannot tell whether the summary was posted before
		return fmt.Errorf("notes: summary %s: %w", s.SummaryID, ErrNotRestored)
	}
	gone := goneCmd.Val()
	job, err := w.rdb.HGetAll(ctx, jobKey).Result()
	if err != nil {
		return fmt.Errorf("notes: read summary job %s: %w", s.SummaryID, err)
	}
	if job[jobDone] == "1" {
		return nil
	}
	if gone == 1 && job[jobPart] == "" {
		return fmt.Errorf("notes: summary %s: conversation %s: %w", s.SummaryID, s.ConversationID, ErrConversationGone)
	}
	set := func(field, value string) error {
		pipe := w.rdb.TxPipeline()
		pipe.HSet(ctx, jobKey, field, value)
		pipe.Expire(ctx, jobKey, w.cfg.DeliveredTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("notes: record summary %s %s: %w", s.SummaryID, field, err)
		}
		job[field] = value
		return nil
	}
	h := &hold{key: lockKey, token: token, at: lockedAt}
	renew := func(ctx context.Context) error { return w.renewHeld(ctx, h) }

	if job[jobPart] == "" {
		if err := w.postSummary(ctx, s, job, set, renew); err != nil {
			if errors.Is(err, ErrConversationGone) {
				if gerr := w.rdb.Set(ctx, k.gone, "1", w.cfg.DeliveredTTL).Err(); gerr != nil {
					w.log.Warn("could not mark a conversation gone", zap.Error(gerr))
				}
			}
			return err
		}
	}
	if job[jobPublished] != "1" {
		n := messages.NoteWritten{
			Version:        messages.Version,
			ConversationID: s.ConversationID,
			WorkspaceID:    s.WorkspaceID,
			PartID:         job[jobPart],
			Ref:            job[jobRef],
			Kind:           messages.NoteSummary,
			SummaryID:      s.SummaryID,
			WrittenAt:      w.now().UTC(),
		}
		if err := w.sink.NoteWritten(ctx, n); err != nil {
			return fmt.Errorf("notes: publish summary %s: %w", s.SummaryID, err)
		}
		if err := set(jobPublished, "1"); err != nil {
			return err
		}
	}
	for _, part := range s.ReplacesParts {
		if job[jobRedacted+part] == "1" {
			continue
		}
		// Redactions wait for the budget at low priority: notes go first when it is tight.
		err := w.callWithin(ctx, s.WorkspaceID, "redact", w.budget.waitLow, renew, func(ctx context.Context) error {
			return w.ic.Redact(ctx, s.ConversationID, part)
		})
		result := "redacted"
		switch {
		case err == nil:
		case errors.Is(err, ErrAlreadyRedacted):
			result = "already"
		case errors.Is(err, ErrConversationGone):
			result = "gone" // nothing left to redact
		case errors.Is(err, ErrRejected):
			result = "rejected" // Intercom will not redact this part; retrying cannot change that
			w.log.Warn("intercom refused to redact a part; leaving it", zap.String("conversation_id", s.ConversationID),
				zap.String("part_id", part), zap.Error(err))
		default:
			return fmt.Errorf("notes: summary %s: redact part %s: %w", s.SummaryID, part, err)
		}
		w.m.redactions.WithLabelValues(result).Inc()
		if err := set(jobRedacted+part, "1"); err != nil {
			return err
		}
	}
	if err := set(jobDone, "1"); err != nil {
		return err
	}
	w.log.Info("summary written and raw notes redacted", zap.String("conversation_id", s.ConversationID),
		zap.String("summary_id", s.SummaryID), zap.String("part_id", job[jobPart]), zap.Int("redacted", len(s.ReplacesParts)))
	return nil
}

// postSummary stores the summary note in Intercom exactly once and records its part id in job.
func (w *Writer) postSummary(ctx context.Context, s messages.ConversationSummary, job map[string]string,
	set func(field, value string) error, renew func(context.Context) error) error {
	if job[jobRef] == "" {
		if err := set(jobRef, newRef("tls")); err != nil {
			return err
		}
	}
	ref := job[jobRef]
	if job[jobAttempted] == "1" {
		var partID string
		var found bool
		err := w.call(ctx, s.WorkspaceID, "find_note", renew, func(ctx context.Context) error {
			var err error
			partID, found, err = w.ic.FindNote(ctx, s.ConversationID, ref)
			return err
		})
		if err != nil {
			return fmt.Errorf("notes: summary %s: %w", s.SummaryID, err)
		}
		if found {
			w.m.unknownResolutions.WithLabelValues("found").Inc()
			return set(jobPart, partID)
		}
		w.m.unknownResolutions.WithLabelValues("not_found").Inc()
	} else if err := set(jobAttempted, "1"); err != nil {
		return err
	}
	var partID string
	err := w.call(ctx, s.WorkspaceID, "reply_note", renew, func(ctx context.Context) error {
		var err error
		partID, err = w.ic.ReplyNote(ctx, s.ConversationID, RenderSummary(s, ref, w.cfg.MaxNoteBytes))
		return err
	})
	if err != nil {
		if certainlyNotStored(err) {
			if derr := w.rdb.HDel(context.WithoutCancel(ctx), w.summaryJobKey(s), jobAttempted).Err(); derr == nil {
				delete(job, jobAttempted)
			}
		}
		return fmt.Errorf("notes: summary %s: %w", s.SummaryID, err)
	}
	w.m.notesPosted.WithLabelValues(messages.NoteSummary).Inc()
	return set(jobPart, partID)
}

func (w *Writer) summaryJobKey(s messages.ConversationSummary) string {
	return keysFor(s.ConversationID).summaryJob(s.SummaryID)
}
