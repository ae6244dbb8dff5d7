package fakeintercom

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Errors of the state methods.
var (
	ErrNoConversation = errors.New("fakeintercom: no such conversation")
	ErrNoContact      = errors.New("fakeintercom: no such contact")
)

// RedactedBody is the body Intercom gives a redacted part.
const RedactedBody = "<p><i>This message was deleted</i></p>"

// maxParts is how many of the newest parts Intercom returns with a conversation.
const maxParts = 500

// ContactSpec describes the contact who starts a conversation. ID is generated when empty; Role
// defaults to "user" when ExternalID or Email is set, else "lead". A spec naming an existing
// contact (by ID, or a user by ExternalID) reuses it.
type ContactSpec struct {
	ID               string         `json:"id,omitempty"`
	ExternalID       string         `json:"external_id,omitempty"`
	Email            string         `json:"email,omitempty"`
	Name             string         `json:"name,omitempty"`
	Role             string         `json:"role,omitempty"`
	CustomAttributes map[string]any `json:"custom_attributes,omitempty"`
}

// Contact is a contact as the fake holds it.
type Contact struct {
	ID               string         `json:"id"`
	ExternalID       string         `json:"external_id,omitempty"`
	Email            string         `json:"email,omitempty"`
	Name             string         `json:"name,omitempty"`
	Role             string         `json:"role"`
	CustomAttributes map[string]any `json:"custom_attributes,omitempty"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	MergedInto       string         `json:"merged_into,omitempty"` // set on a contact merged into another
}

// Author is who wrote a part.
type Author struct {
	Type  string `json:"type"` // user | lead | admin
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Part is a conversation part.
type Part struct {
	ID             string    `json:"id"`
	PartType       string    `json:"part_type"` // note | comment | open | close | quick_reply
	Body           string    `json:"body"`
	Author         Author    `json:"author"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	Redacted       bool      `json:"redacted"`
	AppPackageCode string    `json:"app_package_code,omitempty"` // set on parts created through the API
}

// Source is the conversation's first message.
type Source struct {
	ID       string `json:"id"`
	Body     string `json:"body"`
	URL      string `json:"url"`
	Author   Author `json:"author"`
	Redacted bool   `json:"redacted"`
}

// Conversation is a conversation as the fake holds it.
type Conversation struct {
	ID               string         `json:"id"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	State            string         `json:"state"` // open | closed
	ContactIDs       []string       `json:"contact_ids"`
	Source           Source         `json:"source"`
	CustomAttributes map[string]any `json:"custom_attributes,omitempty"`
	Parts            []Part         `json:"parts"`
	Deleted          bool           `json:"deleted,omitempty"`

	lastAttached, lastDetached string
}

// Event is a data event the fake accepted through POST /events.
type Event struct {
	EventName  string         `json:"event_name"`
	CreatedAt  int64          `json:"created_at"`
	ContactID  string         `json:"intercom_user_id"`
	UserID     string         `json:"user_id,omitempty"`
	Email      string         `json:"email,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	MetaKeys   []string       `json:"-"` // metadata keys in the order sent
	ReceivedAt time.Time      `json:"received_at"`
}

func (c *Conversation) clone() Conversation {
	out := *c
	out.ContactIDs = slices.Clone(c.ContactIDs)
	out.CustomAttributes = maps.Clone(c.CustomAttributes)
	out.Parts = slices.Clone(c.Parts)
	return out
}

func (c *Contact) clone() Contact {
	out := *c
	out.CustomAttributes = maps.Clone(c.CustomAttributes)
	return out
}

func (e Event) clone() Event {
	e.Metadata = maps.Clone(e.Metadata)
	e.MetaKeys = slices.Clone(e.MetaKeys)
	return e
}

// The Intercom-like ids the fake hands out.
func (s *Server) nextConversationID() string {
	s.seq.conversation++
	return strconv.FormatInt(215471883220311+s.seq.conversation, 10)
}

func (s *Server) nextPartID() string {
	s.seq.part++
	return strconv.FormatInt(31822718+s.seq.part, 10)
}

func (s *Server) nextSourceID() string {
	s.seq.source++
	return strconv.FormatInt(2407139981+s.seq.source, 10)
}

func (s *Server) nextContactID() string {
	s.seq.contact++
	return fmt.Sprintf("66f1c0d2e4b0a91f%08x", s.seq.contact)
}

// upsertContact returns the contact spec names, creating it when needed. Call with s.mu held.
func (s *Server) upsertContact(spec ContactSpec, now time.Time) *Contact {
	var ct *Contact
	if spec.ID != "" {
		ct = s.contacts[spec.ID]
	} else if spec.ExternalID != "" {
		ct = s.userByExternalID(spec.ExternalID)
	}
	if ct == nil {
		id := spec.ID
		if id == "" {
			id = s.nextContactID()
		}
		ct = &Contact{ID: id, CreatedAt: now, CustomAttributes: map[string]any{}}
		s.contacts[id] = ct
		s.contactOrder = append(s.contactOrder, id)
	}
	if spec.ExternalID != "" {
		ct.ExternalID = spec.ExternalID
	}
	if spec.Email != "" {
		ct.Email = spec.Email
	}
	if spec.Name != "" {
		ct.Name = spec.Name
	}
	switch {
	case spec.Role != "":
		ct.Role = spec.Role
	case ct.Role == "" && (ct.ExternalID != "" || ct.Email != ""):
		ct.Role = "user"
	case ct.Role == "":
		ct.Role = "lead"
	}
	maps.Copy(ct.CustomAttributes, spec.CustomAttributes)
	ct.UpdatedAt = now
	return ct
}

func (s *Server) userByExternalID(externalID string) *Contact {
	for _, id := range s.contactOrder {
		if c := s.contacts[id]; c.ExternalID == externalID && c.Role == "user" && c.MergedInto == "" {
			return c
		}
	}
	return nil
}

func authorOf(c *Contact) Author {
	return Author{Type: c.Role, ID: c.ID, Name: c.Name, Email: c.Email}
}

// CreateConversation creates a conversation a contact started with body on the page url, as the
// Messenger does; convAttrs are conversation custom attributes.
func (s *Server) CreateConversation(contact ContactSpec, body, url string, convAttrs map[string]any) Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ct := s.upsertContact(contact, now)
	c := &Conversation{
		ID:               s.nextConversationID(),
		CreatedAt:        now,
		UpdatedAt:        now,
		State:            "open",
		ContactIDs:       []string{ct.ID},
		Source:           Source{ID: s.nextSourceID(), Body: body, URL: url, Author: authorOf(ct)},
		CustomAttributes: maps.Clone(convAttrs),
	}
	if c.CustomAttributes == nil {
		c.CustomAttributes = map[string]any{}
	}
	s.convs[c.ID] = c
	s.convOrder = append(s.convOrder, c.ID)
	return c.clone()
}

// conversation returns a live conversation. Call with s.mu held.
func (s *Server) conversation(id string) (*Conversation, error) {
	c, ok := s.convs[id]
	if !ok || c.Deleted {
		return nil, fmt.Errorf("%w: %s", ErrNoConversation, id)
	}
	return c, nil
}

// UserReply appends a reply by the conversation's (first) contact, re-opening a closed
// conversation with an "open" part as Intercom does.
func (s *Server) UserReply(conversationID, body string) (Part, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(conversationID)
	if err != nil {
		return Part{}, err
	}
	ct := s.contacts[c.ContactIDs[0]]
	return s.appendContactReply(c, ct, body, s.now()), nil
}

func (s *Server) appendContactReply(c *Conversation, ct *Contact, body string, at time.Time) Part {
	kind := "comment"
	if c.State == "closed" {
		kind = "open"
		c.State = "open"
	}
	p := Part{ID: s.nextPartID(), PartType: kind, Body: body, Author: authorOf(ct), CreatedAt: at, UpdatedAt: at}
	c.Parts = append(c.Parts, p)
	c.UpdatedAt = at
	return p
}

// Close closes the conversation as the admin would, with a close part.
func (s *Server) Close(conversationID string) error {
	return s.setState(conversationID, "closed", "close")
}

// Open re-opens the conversation as the admin would, with an open part.
func (s *Server) Open(conversationID string) error {
	return s.setState(conversationID, "open", "open")
}

func (s *Server) setState(conversationID, state, partType string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(conversationID)
	if err != nil {
		return err
	}
	now := s.now()
	c.State = state
	c.Parts = append(c.Parts, Part{ID: s.nextPartID(), PartType: partType, Author: s.admin(), CreatedAt: now, UpdatedAt: now})
	c.UpdatedAt = now
	return nil
}

// AttachContact adds a contact to the conversation and returns it.
func (s *Server) AttachContact(conversationID string, spec ContactSpec) (Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(conversationID)
	if err != nil {
		return Contact{}, err
	}
	now := s.now()
	ct := s.upsertContact(spec, now)
	if !slices.Contains(c.ContactIDs, ct.ID) {
		c.ContactIDs = append(c.ContactIDs, ct.ID)
	}
	c.lastAttached = ct.ID
	c.UpdatedAt = now
	return ct.clone(), nil
}

// DetachContact removes a contact from the conversation.
func (s *Server) DetachContact(conversationID, contactID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(conversationID)
	if err != nil {
		return err
	}
	i := slices.Index(c.ContactIDs, contactID)
	if i < 0 {
		return fmt.Errorf("%w: %s is not on conversation %s", ErrNoContact, contactID, conversationID)
	}
	c.ContactIDs = slices.Delete(c.ContactIDs, i, i+1)
	c.lastDetached = contactID
	c.UpdatedAt = s.now()
	return nil
}

// DeleteConversation deletes the conversation; the API then answers 404 for it.
func (s *Server) DeleteConversation(conversationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.conversation(conversationID)
	if err != nil {
		return err
	}
	c.Deleted = true
	return nil
}

// MergeContacts merges the contact fromID into intoID (a lead into a user, typically): the
// conversations of fromID move to intoID, and fromID is no longer found.
func (s *Server) MergeContacts(fromID, intoID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, into := s.contacts[fromID], s.contacts[intoID]
	if from == nil || into == nil || from.MergedInto != "" || into.MergedInto != "" || fromID == intoID {
		return fmt.Errorf("%w: merge %s into %s", ErrNoContact, fromID, intoID)
	}
	now := s.now()
	from.MergedInto = intoID
	for k, v := range from.CustomAttributes {
		if _, ok := into.CustomAttributes[k]; !ok {
			into.CustomAttributes[k] = v
		}
	}
	into.UpdatedAt = now
	for _, c := range s.convs {
		if i := slices.Index(c.ContactIDs, fromID); i >= 0 {
			if slices.Contains(c.ContactIDs, intoID) {
				c.ContactIDs = slices.Delete(c.ContactIDs, i, i+1)
			} else {
				c.ContactIDs[i] = intoID
			}
		}
	}
	return nil
}

// Conversation returns a copy of the conversation (deleted ones included).
func (s *Server) Conversation(id string) (Conversation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.convs[id]
	if !ok {
		return Conversation{}, false
	}
	return c.clone(), true
}

// Conversations returns copies of every conversation, oldest first.
func (s *Server) Conversations() []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conversation, 0, len(s.convOrder))
	for _, id := range s.convOrder {
		out = append(out, s.convs[id].clone())
	}
	return out
}

// Notes returns the conversation's notes in order, redacted ones included (Redacted set).
func (s *Server) Notes(conversationID string) []Part {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.convs[conversationID]
	if !ok {
		return nil
	}
	var out []Part
	for _, p := range c.Parts {
		if p.PartType == "note" {
			out = append(out, p)
		}
	}
	return out
}

// Contact returns a copy of the contact.
func (s *Server) Contact(id string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[id]
	if !ok {
		return Contact{}, false
	}
	return c.clone(), true
}

// Events returns the data events accepted, in order (repeats Intercom ignores are not kept).
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, e := range s.events {
		out[i] = e.clone()
	}
	return out
}
