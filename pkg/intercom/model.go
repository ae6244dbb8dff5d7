package intercom

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Conversation is an Intercom conversation (API 2.14 model), with the fields Threadline reads.
type Conversation struct {
	Type              string         `json:"type"`
	ID                string         `json:"id"`
	Title             string         `json:"title"`
	CreatedAt         int64          `json:"created_at"`
	UpdatedAt         int64          `json:"updated_at"`
	Open              bool           `json:"open"`
	State             string         `json:"state"` // open | closed | snoozed
	Read              bool           `json:"read"`
	Source            Source         `json:"source"`
	Contacts          ContactList    `json:"contacts"`
	CustomAttributes  map[string]any `json:"custom_attributes"`
	ConversationParts PartList       `json:"conversation_parts"`
}

// Source is the conversation's first message.
type Source struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DeliveredAs string `json:"delivered_as"`
	Subject     string `json:"subject"`
	Body        string `json:"body"`
	Author      Author `json:"author"`
	URL         string `json:"url"` // the page where the conversation started
	Redacted    bool   `json:"redacted"`
}

// Author is who wrote a message or part: type user, lead, admin, bot or team.
type Author struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ContactList is {"type":"contact.list","contacts":[…]}.
type ContactList struct {
	Type     string       `json:"type"`
	Contacts []ContactRef `json:"contacts"`
}

// ContactRef is a contact as a conversation references it: no role, no email.
type ContactRef struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
}

// PartList is {"type":"conversation_part.list","conversation_parts":[…],"total_count":n}; Intercom
// returns at most the 500 newest parts.
type PartList struct {
	Type              string `json:"type"`
	ConversationParts []Part `json:"conversation_parts"`
	TotalCount        int    `json:"total_count"`
}

// Part types Threadline looks at.
const (
	PartNote    = "note"
	PartComment = "comment"
	PartOpen    = "open"
	PartClose   = "close"
)

// Part is one conversation part: a note, comment, open, close, assignment...
type Part struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	PartType       string `json:"part_type"`
	Body           string `json:"body"`
	CreatedAt      int64  `json:"created_at"`
	UpdatedAt      int64  `json:"updated_at"`
	NotifiedAt     int64  `json:"notified_at"`
	Author         Author `json:"author"`
	ExternalID     string `json:"external_id"`
	Redacted       bool   `json:"redacted"`
	AppPackageCode string `json:"app_package_code"`
}

// FindNote returns the newest note by adminID whose body carries the reference token ref as a whole
// word, and whether there is one. It is how a note that may already have been posted is found
// before posting it again.
func (c *Conversation) FindNote(adminID, ref string) (*Part, bool) {
	if c == nil || ref == "" {
		return nil, false
	}
	parts := c.ConversationParts.ConversationParts
	for i := len(parts) - 1; i >= 0; i-- {
		p := &parts[i]
		if p.PartType == PartNote && p.Author.ID == adminID && containsToken(p.Body, ref) {
			return p, true
		}
	}
	return nil, false
}

// LastNoteBy returns the newest note by adminID whose body is bodyHTML (spaces around it aside), and
// whether there is one: how the part id of a note just posted is read from the reply's answer.
// Intercom may rewrite HTML it sanitises; when this finds nothing, use FindNote with the note's
// reference token.
func (c *Conversation) LastNoteBy(adminID, bodyHTML string) (*Part, bool) {
	if c == nil {
		return nil, false
	}
	want := strings.TrimSpace(bodyHTML)
	parts := c.ConversationParts.ConversationParts
	for i := len(parts) - 1; i >= 0; i-- {
		p := &parts[i]
		if p.PartType == PartNote && p.Author.ID == adminID && !p.Redacted && strings.TrimSpace(p.Body) == want {
			return p, true
		}
	}
	return nil, false
}

// containsToken reports whether s contains tok with no word character right before or after it,
// so that ref "n1" is not found inside "n12".
func containsToken(s, tok string) bool {
	for from := 0; ; {
		i := strings.Index(s[from:], tok)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(tok)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || !isWordRune(before)) && (end == len(s) || !isWordRune(after)) {
			return true
		}
		from = start + 1
	}
}

func isWordRune(r rune) bool {
	return r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// Contact is an Intercom contact (user or lead).
type Contact struct {
	Type             string         `json:"type"`
	ID               string         `json:"id"`
	WorkspaceID      string         `json:"workspace_id"`
	ExternalID       string         `json:"external_id"`
	Role             string         `json:"role"` // user | lead
	Email            string         `json:"email"`
	Phone            string         `json:"phone"`
	Name             string         `json:"name"`
	CustomAttributes map[string]any `json:"custom_attributes"`
	CreatedAt        int64          `json:"created_at"`
	UpdatedAt        int64          `json:"updated_at"`
}

// RateLimit is what the last X-RateLimit-* headers said; Limit is the per-10-second allowance.
// The zero value means no headers seen yet.
type RateLimit struct {
	Limit     int
	Remaining int
	Reset     time.Time
}

// Limits of data event metadata that Intercom keeps.
const (
	MaxEventMetadataKeys  = 10
	MaxEventMetadataChars = 255
)

// DataEvent is a data event for POST /events. One identifier at least: UserID (the contact's
// external_id), ContactID (sent as id; needed for leads) or Email.
type DataEvent struct {
	EventName string
	CreatedAt time.Time // sent in Unix seconds; a replay with the same time is ignored by Intercom
	UserID    string
	ContactID string
	Email     string
	// Metadata values: string, a number, RichLink or Money. At most 10 keys.
	Metadata map[string]any
}

// RichLink is a metadata value shown as a link with a label.
type RichLink struct {
	URL   string `json:"url"`
	Value string `json:"value"`
}

// Money is a metadata value holding an amount in cents.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Validate checks the event against what Intercom accepts, so a bad one costs no API call.
func (e DataEvent) Validate() error {
	if strings.TrimSpace(e.EventName) == "" {
		return fmt.Errorf("%w: event_name is required", ErrInvalidEvent)
	}
	if e.CreatedAt.IsZero() || e.CreatedAt.Unix() <= 0 {
		return fmt.Errorf("%w: created_at is required", ErrInvalidEvent)
	}
	if e.UserID == "" && e.ContactID == "" && e.Email == "" {
		return fmt.Errorf("%w: one of user_id, id or email is required", ErrInvalidEvent)
	}
	if len(e.Metadata) > MaxEventMetadataKeys {
		return fmt.Errorf("%w: %d metadata keys, at most %d", ErrInvalidEvent, len(e.Metadata), MaxEventMetadataKeys)
	}
	for k, v := range e.Metadata {
		if k == "" || strings.ContainsAny(k, ".$") || len(k) > MaxEventMetadataChars {
			return fmt.Errorf("%w: metadata key %q", ErrInvalidEvent, k)
		}
		switch v := v.(type) {
		case string:
			if utf8.RuneCountInString(v) > MaxEventMetadataChars {
				return fmt.Errorf("%w: metadata %q longer than %d characters", ErrInvalidEvent, k, MaxEventMetadataChars)
			}
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, json.Number:
		case RichLink, *RichLink, Money, *Money:
		default:
			return fmt.Errorf("%w: metadata %q has unsupported type %T", ErrInvalidEvent, k, v)
		}
	}
	return nil
}

// MarshalJSON writes the POST /events body.
func (e DataEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		EventName string         `json:"event_name"`
		CreatedAt int64          `json:"created_at"`
		UserID    string         `json:"user_id,omitempty"`
		ID        string         `json:"id,omitempty"`
		Email     string         `json:"email,omitempty"`
		Metadata  map[string]any `json:"metadata,omitempty"`
	}{e.EventName, e.CreatedAt.Unix(), e.UserID, e.ContactID, e.Email, e.Metadata})
}
