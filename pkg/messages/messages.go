// Package messages owns the Go form of every message Threadline puts on a topic. Each type matches a
// JSON Schema in schemas/ (a test keeps them in step); every message carries a version field.
//
// Marshal, Unmarshal and Decode use github.com/segmentio/encoding/json, which reads and writes
// what encoding/json does (tests hold them to it) at two to three times its speed: the linker
// decodes and encodes every product action, so the codec was most of its CPU. Input the fast
// codec rejects is decoded again by encoding/json, which has the last word and words the error.
package messages

import (
	stdjson "encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/segmentio/encoding/json"
)

// Version is the message format version this code writes and reads.
const Version = 1

// Action kinds: what the user did, as the phrasing, linker, summarizer and triggers see it.
const (
	KindPageview  = "pageview"
	KindPageleave = "pageleave"
	KindClick     = "click"
	KindSubmit    = "submit"
	KindChange    = "change"
	KindRageClick = "rageclick"
	KindDeadClick = "deadclick"
	KindError     = "error"     // an error event the product reported (custom *_failed / *_error events)
	KindException = "exception" // $exception
	KindIdentify  = "identify"
	KindCustom    = "custom"
)

// Action is one readable, redacted thing a user did in the product.
type Action struct {
	ActionID  string    `json:"action_id"`  // the PostHog event uuid: stable across replays
	SessionID string    `json:"session_id"` // $session_id
	EventTime time.Time `json:"event_time"` // resolved by PostHog's timestamp rules
	Event     string    `json:"event"`      // PostHog event name
	Kind      string    `json:"kind"`       // one of the Kind* constants
	Page      string    `json:"page,omitempty"`
	Path      string    `json:"path,omitempty"`   // URL path without query or fragment
	Target    string    `json:"target,omitempty"` // what was acted on: "Select Pro button"
	Detail    string    `json:"detail,omitempty"` // redacted detail: "card validation failed"
	Text      string    `json:"text"`             // the sentence: "User clicked Select Pro button on the pricing page"
}

// Identity carries who did an action, in the form the linker matches. Values that are personal
// data (emails, or ids that are emails) are hashed with identity hashing before they leave ingest.
type Identity struct {
	DistinctID     string `json:"distinct_id"`
	AnonDistinctID string `json:"anon_distinct_id,omitempty"`
	UserID         string `json:"user_id,omitempty"`
	EmailHash      string `json:"email_hash,omitempty"`
	IntercomUserID string `json:"intercom_user_id,omitempty"`
}

// ProductAction is the value on product.actions (key: session id).
type ProductAction struct {
	Version  int      `json:"version"`
	Action   Action   `json:"action"`
	Identity Identity `json:"identity"`
	// Properties are selected event properties, already redacted, for rules that match on them.
	Properties map[string]string `json:"properties,omitempty"`
}

// Conversation event types on conversation.events.
const (
	ConvCreated         = "created"
	ConvReplied         = "replied"
	ConvClosed          = "closed"
	ConvOpened          = "opened"
	ConvContactAttached = "contact_attached"
	ConvContactDetached = "contact_detached"
	ConvDeleted         = "deleted"
	ConvContactMerged   = "contact_merged"
)

// ConversationEvent is the value on conversation.events (key: conversation id), normalised from an
// Intercom webhook notification.
type ConversationEvent struct {
	Version        int       `json:"version"`
	EventID        string    `json:"event_id"` // notification id, or a hash of (topic, item id, created_at)
	Type           string    `json:"type"`     // one of the Conv* constants
	WorkspaceID    string    `json:"workspace_id,omitempty"`
	ConversationID string    `json:"conversation_id"`
	ContactID      string    `json:"contact_id,omitempty"`
	ExternalID     string    `json:"external_id,omitempty"` // hashed when it is personal data
	EmailHash      string    `json:"email_hash,omitempty"`
	Role           string    `json:"role,omitempty"` // user | lead
	SessionHint    string    `json:"session_hint,omitempty"`
	StartURL       string    `json:"start_url,omitempty"` // redacted
	MergedFromID   string    `json:"merged_from_id,omitempty"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// ConversationActions is the value on conversation.actions (key: conversation id): one action as it
// happens, or the whole pre-conversation buffer flushed at link time.
type ConversationActions struct {
	Version         int      `json:"version"`
	ConversationID  string   `json:"conversation_id"`
	WorkspaceID     string   `json:"workspace_id,omitempty"`
	SessionID       string   `json:"session_id"`
	PreConversation bool     `json:"pre_conversation"`
	Actions         []Action `json:"actions"`
}

// Note kinds on notes.written.
const (
	NoteActions = "actions"
	NoteSummary = "summary"
)

// NoteLine is one numbered line of an actions note.
type NoteLine struct {
	Seq    int    `json:"seq"`
	Action Action `json:"action"`
}

// NoteWritten is the value on notes.written (key: conversation id): a note now stored in Intercom.
type NoteWritten struct {
	Version         int        `json:"version"`
	ConversationID  string     `json:"conversation_id"`
	WorkspaceID     string     `json:"workspace_id,omitempty"`
	PartID          string     `json:"part_id"`
	Ref             string     `json:"ref"` // the reference token in the note body
	Kind            string     `json:"kind"`
	PreConversation bool       `json:"pre_conversation,omitempty"`
	Lines           []NoteLine `json:"lines,omitempty"`      // actions notes
	SummaryID       string     `json:"summary_id,omitempty"` // summary notes
	WrittenAt       time.Time  `json:"written_at"`
}

// ActionIDs lists the action ids of the note's lines.
func (n NoteWritten) ActionIDs() []string {
	ids := make([]string, len(n.Lines))
	for i, l := range n.Lines {
		ids[i] = l.Action.ActionID
	}
	return ids
}

// ConversationSummary is the value on conversation.summaries (key: conversation id): a summary for
// the notewriter to post, and the raw notes it fully replaces, to redact after it is posted.
type ConversationSummary struct {
	Version        int       `json:"version"`
	SummaryID      string    `json:"summary_id"` // deterministic: conversation id and covered range
	ConversationID string    `json:"conversation_id"`
	WorkspaceID    string    `json:"workspace_id,omitempty"`
	Text           string    `json:"text"`
	FromSeq        int       `json:"from_seq"` // first line number covered
	ToSeq          int       `json:"to_seq"`   // last line number covered
	ActionCount    int       `json:"action_count"`
	ReplacesParts  []string  `json:"replaces_parts"` // part ids of raw notes whose lines are all covered
	Engine         string    `json:"engine"`
	CreatedAt      time.Time `json:"created_at"`
}

// IntercomEvent is the value on intercom.events (key: user_id, else intercom_user_id, else
// email_hash): a data event for the notewriter to post with POST /events.
type IntercomEvent struct {
	Version        int            `json:"version"`
	EventName      string         `json:"event_name"`
	CreatedAt      int64          `json:"created_at"` // Unix seconds: the triggering action's time, so a replay is deduplicated by Intercom
	UserID         string         `json:"user_id,omitempty"`
	IntercomUserID string         `json:"intercom_user_id,omitempty"`
	EmailHash      string         `json:"email_hash,omitempty"`
	WorkspaceID    string         `json:"workspace_id,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"` // flat: string (≤255 chars) or number values, at most 10 keys
	Rule           string         `json:"rule"`
	ActionID       string         `json:"action_id"`
}

// DeadLetter is the value on the dead-letter topic. The same facts are in its headers.
type DeadLetter struct {
	Version     int       `json:"version"`
	Service     string    `json:"service"`
	SourceTopic string    `json:"source_topic"`
	Partition   int32     `json:"partition"`
	Offset      int64     `json:"offset"`
	Reason      string    `json:"reason"` // short, fixed vocabulary: "decode", "invalid", "not_found" …
	Error       string    `json:"error"`
	Key         []byte    `json:"key,omitempty"`   // base64 in JSON
	Value       []byte    `json:"value,omitempty"` // base64 in JSON
	FailedAt    time.Time `json:"failed_at"`
}

// Versioned is a message that carries a version field.
type Versioned interface{ MessageVersion() int }

// MessageVersion implements Versioned.
func (m ProductAction) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m ConversationEvent) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m ConversationActions) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m NoteWritten) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m ConversationSummary) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m DeadLetter) MessageVersion() int { return m.Version }

// MessageVersion implements Versioned.
func (m IntercomEvent) MessageVersion() int { return m.Version }

// Marshal encodes v as JSON: the bytes encoding/json.Marshal writes.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v, a non-nil pointer, as encoding/json.Unmarshal does.
func Unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err == nil {
		return nil
	}
	// Rare: start again from the zero value with encoding/json, whose verdict and error stand.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	return stdjson.Unmarshal(data, v)
}

// Decode unmarshals a message and checks its version.
func Decode[T Versioned](data []byte, v *T) error {
	if err := Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %T: %w", *v, err)
	}
	if got := (*v).MessageVersion(); got != Version {
		return fmt.Errorf("decode %T: unsupported version %d (want %d)", *v, got, Version)
	}
	return nil
}
