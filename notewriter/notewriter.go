package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
)

// Writer is what the notewriter's consumer drives.
type Writer interface {
	EnqueueBatch(ctx context.Context, cas []messages.ConversationActions) (int, error)
	ExecuteSummary(ctx context.Context, s messages.ConversationSummary) error
	PostEvent(ctx context.Context, ev messages.IntercomEvent, post func(context.Context) error) (string, error)
}

// EventPoster posts an Intercom data event.
type EventPoster interface {
	CreateEvent(ctx context.Context, ev messages.IntercomEvent) error
}

// Handler hands conversation.actions to the note writer's queue (the records of one handler call
// in one Redis round trip) and conversation.summaries to its summary executor; an offset is
// marked once the writer holds the work durably in Redis.
type Handler struct {
	w      Writer
	events EventPoster
	topics kafka.Topics
}

// NewHandler builds the handler; intercom.events are posted through events.
func NewHandler(w Writer, events EventPoster, topics kafka.Topics) kafka.Handler {
	return &Handler{w: w, events: events, topics: topics}
}

// Handle implements kafka.Handler.
func (h *Handler) Handle(ctx context.Context, recs []*kgo.Record) error {
	for i := 0; i < len(recs); {
		if recs[i].Topic != h.topics.ConversationActions {
			if err := h.handle(ctx, recs[i]); err != nil {
				return &kafka.RecordError{Index: i, Err: err}
			}
			i++
			continue
		}
		// A run of conversation.actions records, up to the first that does not decode.
		var (
			batch     []messages.ConversationActions
			decodeErr error
			j         = i
		)
		for ; j < len(recs) && recs[j].Topic == h.topics.ConversationActions; j++ {
			var ca messages.ConversationActions
			if err := messages.Decode(recs[j].Value, &ca); err != nil {
				decodeErr = kafka.Permanent("decode", err)
				break
			}
			batch = append(batch, ca)
		}
		done, err := h.w.EnqueueBatch(ctx, batch)
		if err != nil {
			return &kafka.RecordError{Index: i + done, Err: classify(err)}
		}
		if decodeErr != nil {
			return &kafka.RecordError{Index: j, Err: decodeErr}
		}
		i = j
	}
	return nil
}

func (h *Handler) handle(ctx context.Context, rec *kgo.Record) error {
	if rec.Topic == h.topics.IntercomEvents {
		var ev messages.IntercomEvent
		if err := messages.Decode(rec.Value, &ev); err != nil {
			return kafka.Permanent("decode", err)
		}
		_, err := h.w.PostEvent(ctx, ev, func(ctx context.Context) error { return h.events.CreateEvent(ctx, ev) })
		return classify(err)
	}
	if rec.Topic == h.topics.ConversationSummaries {
		var s messages.ConversationSummary
		if err := messages.Decode(rec.Value, &s); err != nil {
			return kafka.Permanent("decode", err)
		}
		return classify(h.w.ExecuteSummary(ctx, s))
	}
	return kafka.Permanent("topic", fmt.Errorf("notewriter: record of unexpected topic %q", rec.Topic))
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, notes.ErrConversationGone) {
		return kafka.Permanent("conversation_gone", err)
	}
	if notes.IsPermanent(err) {
		return kafka.Permanent("rejected", err)
	}
	return err
}

// NotesSink reports every stored note on notes.written, and sends actions that can never be
// written to the dead-letter topic.
type NotesSink struct {
	out    Producer
	topics kafka.Topics
}

// Producer is the part of a Kafka client the notewriter needs.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// NewNotesSink builds the sink.
func NewNotesSink(out Producer, topics kafka.Topics) *NotesSink {
	return &NotesSink{out: out, topics: topics}
}

// NoteWritten implements notes.Sink.
func (s *NotesSink) NoteWritten(ctx context.Context, n messages.NoteWritten) error {
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("notes.written: encode: %w", err)
	}
	rec := &kgo.Record{Topic: s.topics.NotesWritten, Key: []byte(n.ConversationID), Value: b}
	if err := s.out.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("notes.written: produce: %w", err)
	}
	return nil
}

// DeadLetter implements notes.Sink: the batch goes to the dead-letter topic as if it were the
// conversation.actions record it came from (its offset is no longer known, so it is -1).
func (s *NotesSink) DeadLetter(ctx context.Context, batch messages.ConversationActions, reason string, cause error) error {
	b, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("dead letter: encode: %w", err)
	}
	src := &kgo.Record{Topic: s.topics.ConversationActions, Partition: -1, Offset: -1, Key: []byte(batch.ConversationID), Value: b}
	rec, err := kafka.DeadLetterRecord(s.topics.DLQ, "notewriter", src, reason, cause, time.Now())
	if err != nil {
		return err
	}
	if err := s.out.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("dead letter: produce: %w", err)
	}
	return nil
}

// IntercomNotes adapts the Intercom REST client to what the note writer needs: it translates the
// client's errors into the writer's vocabulary and passes Intercom's rate-limit headers on, so
// every replica slows down when the window runs low.
type IntercomNotes struct {
	c       *intercom.Client
	adminID string
	observe func(ctx context.Context, remaining int, reset time.Time) error
}

// NewIntercomNotes builds the adapter.
func NewIntercomNotes(c *intercom.Client, adminID string) *IntercomNotes {
	return &IntercomNotes{c: c, adminID: adminID}
}

// ObserveRateLimits hands every response's X-RateLimit-* values to observe.
func (a *IntercomNotes) ObserveRateLimits(observe func(ctx context.Context, remaining int, reset time.Time) error) {
	a.observe = observe
}

func (a *IntercomNotes) after(ctx context.Context, err error) error {
	if a.observe != nil {
		if rl := a.c.RateLimit(); rl.Limit > 0 {
			if oerr := a.observe(ctx, rl.Remaining, rl.Reset); oerr != nil && err == nil {
				err = oerr
			}
		}
	}
	return translate(err)
}

// ReplyNote posts a note and returns its part id, read from the answer or, when the answer does
// not show it, from the conversation. Only when neither shows it is the outcome unknown.
func (a *IntercomNotes) ReplyNote(ctx context.Context, conversationID, bodyHTML string) (string, error) {
	conv, err := a.c.ReplyNote(ctx, conversationID, bodyHTML)
	if err != nil {
		return "", a.after(ctx, err)
	}
	if p, ok := conv.LastNoteBy(a.adminID, bodyHTML); ok {
		return p.ID, a.after(ctx, nil)
	}
	if conv, err = a.c.GetConversation(ctx, conversationID); err == nil {
		if p, ok := conv.LastNoteBy(a.adminID, bodyHTML); ok {
			return p.ID, a.after(ctx, nil)
		}
	}
	return "", fmt.Errorf("%w: the new note is not in the conversation", notes.ErrOutcomeUnknown)
}

// FindNote looks for a note of ours carrying ref.
func (a *IntercomNotes) FindNote(ctx context.Context, conversationID, ref string) (string, bool, error) {
	conv, err := a.c.GetConversation(ctx, conversationID)
	if err != nil {
		return "", false, a.after(ctx, err)
	}
	if p, ok := conv.FindNote(a.adminID, ref); ok {
		return p.ID, true, a.after(ctx, nil)
	}
	return "", false, a.after(ctx, nil)
}

// CreateEvent posts a data event; the user is named by the external id Intercom knows them by,
// else by their Intercom contact id (a lead, or a user known to Threadline only by an email hash).
func (a *IntercomNotes) CreateEvent(ctx context.Context, ev messages.IntercomEvent) error {
	de := intercom.DataEvent{EventName: ev.EventName, CreatedAt: time.Unix(ev.CreatedAt, 0), Metadata: ev.Metadata}
	if ev.UserID != "" {
		de.UserID = ev.UserID
	} else {
		de.ContactID = ev.IntercomUserID
	}
	return a.after(ctx, a.c.CreateEvent(ctx, de))
}

// Redact redacts one part.
func (a *IntercomNotes) Redact(ctx context.Context, conversationID, partID string) error {
	return a.after(ctx, a.c.Redact(ctx, conversationID, partID))
}

func translate(err error) error {
	var (
		rl  *intercom.RateLimitedError
		api *intercom.APIError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rl):
		return &notes.RateLimitedError{RetryAfter: rl.RetryAfter}
	case errors.Is(err, intercom.ErrOutcomeUnknown):
		return fmt.Errorf("%w: %w", notes.ErrOutcomeUnknown, err)
	case errors.Is(err, intercom.ErrNotFound):
		return fmt.Errorf("%w: %w", notes.ErrConversationGone, err)
	case errors.Is(err, intercom.ErrUnauthorized):
		return fmt.Errorf("%w: %w", notes.ErrUnauthorized, err)
	case errors.Is(err, intercom.ErrAlreadyRedacted):
		return fmt.Errorf("%w: %w", notes.ErrAlreadyRedacted, err)
	case errors.Is(err, intercom.ErrNotRedactable):
		return fmt.Errorf("%w: %w", notes.ErrRejected, err)
	case errors.As(err, &api) && api.Status == 403:
		return fmt.Errorf("%w: %w", notes.ErrUnauthorized, err)
	case errors.As(err, &api) && (api.Status == 400 || api.Status == 422):
		return fmt.Errorf("%w: %w", notes.ErrRejected, err)
	}
	return err
}
