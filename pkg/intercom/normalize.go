package intercom

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
)

// DefaultSessionAttribute is the custom attribute (on the conversation or the contact) and start
// URL query parameter that carries the product session id.
const DefaultSessionAttribute = "threadline_session_id"

// NormalizeConfig configures Normalize.
type NormalizeConfig struct {
	// SessionAttribute names the conversation or contact custom attribute holding the product
	// session id ("" turns the lookup off).
	SessionAttribute string
	// SessionURLParam names a query parameter of the start URL holding the session id, read before
	// the query string is dropped ("" turns it off).
	SessionURLParam string
	// AdminID is the admin that authors Threadline's notes. Notes never become conversation events:
	// conversation.admin.noted, ours or a teammate's, is ignored.
	AdminID string
}

// DefaultNormalizeConfig returns the Normalize defaults.
func DefaultNormalizeConfig() NormalizeConfig {
	return NormalizeConfig{SessionAttribute: DefaultSessionAttribute, SessionURLParam: DefaultSessionAttribute}
}

// RegisterFlags registers intercom.session-attribute and intercom.session-url-param. AdminID has
// no flag here: intercom.admin-id belongs to Config.
func (c *NormalizeConfig) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultNormalizeConfig()
	fs.StringVar(&c.SessionAttribute, "intercom.session-attribute", d.SessionAttribute,
		"conversation or contact custom attribute holding the product session id (empty: off)")
	fs.StringVar(&c.SessionURLParam, "intercom.session-url-param", d.SessionURLParam,
		"start URL query parameter holding the product session id (empty: off)")
}

// Validate checks the configuration.
func (c NormalizeConfig) Validate() error {
	if strings.ContainsAny(c.SessionAttribute, " \t\r\n") || strings.ContainsAny(c.SessionURLParam, " \t\r\n") {
		return ErrInvalidSessAttr
	}
	return nil
}

// Normalize turns a notification into the conversation event the linker reads. ok is false for
// topics that are deliberately ignored (ping, notes including our own, admin replies, assignment,
// redaction...); err is non-nil for a notification of a known topic whose item is malformed.
//
// Personal data never leaves as it is: the email is always hashed; the external id and the
// session hint are replaced by their pseudonym (redact.Pseudonym, as ingest hashes a product session
// id or user id that holds personal data, so the two sides still match) when they hold
// an email or any other personal data; the start URL keeps no query, fragment or user info, and
// personal data in its path is masked.
func Normalize(n *Notification, cfg NormalizeConfig) (ev messages.ConversationEvent, ok bool, err error) {
	if n == nil {
		return ev, false, fmt.Errorf("%w: nil notification", ErrMalformedNotification)
	}
	ev = messages.ConversationEvent{
		Version:     messages.Version,
		EventID:     n.DedupKey(),
		WorkspaceID: n.AppID,
	}
	switch n.Topic {
	case TopicUserCreated:
		ev.Type = messages.ConvCreated
	case TopicUserReplied:
		ev.Type = messages.ConvReplied
	case TopicAdminClosed:
		ev.Type = messages.ConvClosed
	case TopicAdminOpened:
		ev.Type = messages.ConvOpened
	case TopicContactAttached:
		ev.Type = messages.ConvContactAttached
	case TopicContactDetached:
		ev.Type = messages.ConvContactDetached
	case TopicConversationDel:
		ev.Type = messages.ConvDeleted
	case TopicContactMerged:
		ev.Type = messages.ConvContactMerged
	default:
		return ev, false, nil
	}
	wrap := func(err error) error {
		return fmt.Errorf("%w: topic %s (notification %s): %w", ErrMalformedNotification, n.Topic, ev.EventID, err)
	}
	switch ev.Type {
	case messages.ConvDeleted:
		ev.ConversationID = n.ItemID()
		if ev.ConversationID == "" {
			return ev, false, wrap(errors.New("no conversation id"))
		}
		ev.OccurredAt = unixTime(n.CreatedAt)
	case messages.ConvContactMerged:
		if err := normalizeMerged(n, cfg, &ev); err != nil {
			return ev, false, wrap(err)
		}
	default:
		if err := normalizeConversation(n, cfg, &ev); err != nil {
			return ev, false, wrap(err)
		}
	}
	return ev, true, nil
}

// conversationItem is a Conversation item, plus the contact that conversation.contact.attached and
// .detached are about (the topic table gives their items as "Conversation, Contact").
type conversationItem struct {
	Conversation
	Contact *contactItem `json:"contact"`
}

// contactItem is a Contact item (contact.* topics), or a contact reference.
type contactItem struct {
	Contact
	MergedFrom *struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"merged_from"`
}

func normalizeConversation(n *Notification, cfg NormalizeConfig, ev *messages.ConversationEvent) error {
	var item conversationItem
	if err := json.Unmarshal(n.Data.Item, &item); err != nil {
		return fmt.Errorf("decode conversation: %w", err)
	}
	if item.Type != "" && item.Type != "conversation" {
		return fmt.Errorf("item type %q, want conversation", item.Type)
	}
	if item.ID == "" {
		return errors.New("no conversation id")
	}
	ev.ConversationID = item.ID
	ev.OccurredAt = unixTime(firstNonZero(n.CreatedAt, item.UpdatedAt, item.CreatedAt))

	contacts := item.Contacts.Contacts
	var contact ContactRef
	switch {
	case item.Contact != nil && item.Contact.ID != "":
		contact = ContactRef{ID: item.Contact.ID, ExternalID: item.Contact.ExternalID}
	case ev.Type == messages.ConvContactDetached:
		return errors.New("no detached contact in the item")
	case ev.Type == messages.ConvContactAttached && len(contacts) > 0:
		contact = contacts[len(contacts)-1] // the newest attachment
	case len(contacts) > 0:
		contact = contacts[0]
	}

	// The author of what the contact wrote carries the role and email the reference lacks.
	author := item.Source.Author
	if ev.Type == messages.ConvReplied {
		if p, ok := latestContactPart(item.ConversationParts.ConversationParts); ok {
			author = p.Author
			ev.OccurredAt = unixTime(firstNonZero(n.CreatedAt, p.CreatedAt))
		}
	}
	if contact.ID == "" && isContactRole(author.Type) {
		contact.ID = author.ID
	}
	if ev.Type == messages.ConvContactAttached || ev.Type == messages.ConvContactDetached {
		if contact.ID == "" {
			return errors.New("no contact in the item")
		}
		if item.Contact != nil {
			author = Author{Type: item.Contact.Role, ID: item.Contact.ID, Email: item.Contact.Email}
		}
	}
	ev.ContactID = contact.ID
	ev.ExternalID = redact.Pseudonym(contact.ExternalID)
	if isContactRole(author.Type) && (author.ID == contact.ID || contact.ID == "") {
		ev.Role = author.Type
		if author.Email != "" {
			ev.EmailHash = redact.EmailHash(author.Email)
		}
	}
	if item.Contact != nil {
		ev.SessionHint = attribute(item.Contact.CustomAttributes, cfg.SessionAttribute)
	}
	if hint := attribute(item.CustomAttributes, cfg.SessionAttribute); hint != "" {
		ev.SessionHint = hint
	}
	startURL, urlHint := startURL(item.Source.URL, cfg.SessionURLParam)
	ev.StartURL = startURL
	if ev.SessionHint == "" {
		ev.SessionHint = urlHint
	}
	ev.SessionHint = redact.Pseudonym(ev.SessionHint)
	return nil
}

func normalizeMerged(n *Notification, cfg NormalizeConfig, ev *messages.ConversationEvent) error {
	var item contactItem
	if err := json.Unmarshal(n.Data.Item, &item); err != nil {
		return fmt.Errorf("decode contact: %w", err)
	}
	if item.Type != "" && item.Type != "contact" {
		return fmt.Errorf("item type %q, want contact", item.Type)
	}
	if item.ID == "" {
		return errors.New("no contact id")
	}
	if item.MergedFrom == nil || item.MergedFrom.ID == "" {
		return errors.New("no merged_from id")
	}
	ev.ContactID = item.ID
	ev.MergedFromID = item.MergedFrom.ID
	ev.ExternalID = redact.Pseudonym(item.ExternalID)
	if isContactRole(item.Role) {
		ev.Role = item.Role
	}
	if item.Email != "" {
		ev.EmailHash = redact.EmailHash(item.Email)
	}
	ev.SessionHint = redact.Pseudonym(attribute(item.CustomAttributes, cfg.SessionAttribute))
	ev.OccurredAt = unixTime(firstNonZero(n.CreatedAt, item.UpdatedAt))
	return nil
}

// latestContactPart returns the newest comment or open part written by a user or lead.
func latestContactPart(parts []Part) (Part, bool) {
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if (p.PartType == PartComment || p.PartType == PartOpen) && isContactRole(p.Author.Type) {
			return p, true
		}
	}
	return Part{}, false
}

func isContactRole(t string) bool { return t == "user" || t == "lead" }

// attribute returns a custom attribute as a string ("" when absent, empty or not a scalar).
func attribute(attrs map[string]any, name string) string {
	if name == "" {
		return ""
	}
	switch v := attrs[name].(type) {
	case string:
		return strings.TrimSpace(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// startURL returns raw without user info, query string or fragment, with personal data in its
// path masked, and the session id the query parameter param held. An unparseable or relative URL
// gives "".
func startURL(raw, param string) (clean, hint string) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", ""
	}
	if param != "" {
		hint = strings.TrimSpace(u.Query().Get(param))
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	clean = u.String()
	if len(redact.Find(clean)) > 0 {
		// Only the path can hold any: the default redactor masks it as ingest masks a page URL.
		clean = redact.New(redact.DefaultConfig()).URL(clean)
	}
	return clean, hint
}

func firstNonZero(vs ...int64) int64 {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
