package main

import (
	"maps"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
)

// Redactor finds and masks personal data; *redact.Redactor satisfies it.
type Redactor interface {
	Text(string) string
	URL(string) string
	Find(string) []redact.Finding
}

// boundary is the last check on every message before it leaves ingest. The phraser and the
// notification normaliser redact what they write; the boundary catches what they let through
// (an id or a map key that carries personal data, the path of a start URL) so that nothing
// unredacted is ever produced:
//
//   - ids (action, session, session hint, identities) that hold personal data are replaced by their
//     identity hash, the same on the product and the conversation side so that they still match;
//   - text and URLs that hold personal data are masked;
//   - a property whose name holds personal data is not carried.
type boundary struct{ r Redactor }

// id returns v, or its identity hash ("h:" + sha256 of the trimmed, lower-cased value, as
// redact.IdentityKey hashes an email) when v holds personal data.
func (b boundary) id(v string) string {
	if v == "" || len(b.r.Find(v)) == 0 {
		return v
	}
	return redact.EmailHash(v) // the identity hash of any value, not only of emails
}

func (b boundary) text(v string) string {
	if v == "" || len(b.r.Find(v)) == 0 {
		return v
	}
	return b.r.Text(v)
}

func (b boundary) url(v string) string {
	if v == "" {
		return v
	}
	return b.r.URL(v)
}

// productAction scrubs pa in place.
func (b boundary) productAction(pa *messages.ProductAction) {
	a := &pa.Action
	a.ActionID, a.SessionID = b.id(a.ActionID), b.id(a.SessionID)
	a.Event, a.Page, a.Path = b.text(a.Event), b.text(a.Page), b.text(a.Path)
	a.Target, a.Detail, a.Text = b.text(a.Target), b.text(a.Detail), b.text(a.Text)
	id := &pa.Identity
	id.DistinctID, id.AnonDistinctID, id.UserID = b.id(id.DistinctID), b.id(id.AnonDistinctID), b.id(id.UserID)
	id.EmailHash, id.IntercomUserID = b.id(id.EmailHash), b.id(id.IntercomUserID)
	if len(pa.Properties) == 0 {
		return
	}
	clean := make(map[string]string, len(pa.Properties))
	for k, v := range pa.Properties {
		if len(b.r.Find(k)) > 0 {
			continue
		}
		clean[k] = b.text(v)
	}
	if !maps.Equal(clean, pa.Properties) {
		pa.Properties = clean
	}
}

// conversationEvent scrubs ev in place. Intercom's own ids (workspace, conversation, contact) are
// kept: the notewriter writes to Intercom by them.
func (b boundary) conversationEvent(ev *messages.ConversationEvent) {
	ev.ExternalID, ev.EmailHash, ev.SessionHint = b.id(ev.ExternalID), b.id(ev.EmailHash), b.id(ev.SessionHint)
	ev.StartURL = b.url(ev.StartURL)
}
