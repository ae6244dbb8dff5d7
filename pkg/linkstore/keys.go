package linkstore

import "github.com/threadline/threadline/pkg/messages"

// keyPrefix starts every key the link store writes.
const keyPrefix = "tl:"

// sessionKeys are the keys of one session; they share the hash tag {s:<session id>}.
type sessionKeys struct {
	links, buf, acts, ids string
	tag                   string
}

func keysOfSession(sessionID string) sessionKeys {
	tag := keyPrefix + "{s:" + sessionID + "}:"
	return sessionKeys{links: tag + "links", buf: tag + "buf", acts: tag + "acts", ids: tag + "ids", tag: tag}
}

// flush is the key holding what the link step for (event, conversation) flushed from this session.
func (k sessionKeys) flush(eventID, conversationID string) string {
	return k.tag + "fl:" + eventID + ":" + conversationID
}

// identityKeys are the keys of one identity; they share the hash tag {i:<identity key>}.
type identityKeys struct{ session, convs string }

func keysOfIdentity(identity string) identityKeys {
	tag := keyPrefix + "{i:" + identity + "}:"
	return identityKeys{session: tag + "s", convs: tag + "c"}
}

// conversationKeys are the keys of one conversation; they share the hash tag {c:<conversation id>}.
type conversationKeys struct {
	record, sessions, ids string
	tag                   string
}

func keysOfConversation(conversationID string) conversationKeys {
	tag := keyPrefix + "{c:" + conversationID + "}:"
	return conversationKeys{record: tag + "conv", sessions: tag + "sess", ids: tag + "ids", tag: tag}
}

func (k conversationKeys) event(eventID string) string { return k.tag + "ev:" + eventID }

// contactKeys are the keys of one Intercom contact; they share the hash tag {k:<contact id>}.
type contactKeys struct {
	convs string
	tag   string
}

func keysOfContact(contactID string) contactKeys {
	tag := keyPrefix + "{k:" + contactID + "}:"
	return contactKeys{convs: tag + "convs", tag: tag}
}

func (k contactKeys) event(eventID string) string { return k.tag + "ev:" + eventID }

// Identity keys name a person the way both sides can: "x:" for ids a conversation's external_id
// is matched against (distinct id, user id, Intercom user id), "e:" for email hashes.
const (
	identityExternal = "x:"
	identityEmail    = "e:"
)

// actionIdentities returns the identity keys of an action, without repeats, in a fixed order.
func actionIdentities(id messages.Identity) []string {
	out := make([]string, 0, 4)
	add := func(prefix, v string) {
		if v == "" {
			return
		}
		k := prefix + v
		for _, have := range out {
			if have == k {
				return
			}
		}
		out = append(out, k)
	}
	add(identityExternal, id.DistinctID)
	add(identityExternal, id.UserID)
	add(identityExternal, id.IntercomUserID)
	add(identityExternal, id.AnonDistinctID)
	add(identityEmail, id.EmailHash)
	return out
}

// eventIdentities returns the identity keys of a conversation event in linking order.
func eventIdentities(ev messages.ConversationEvent) []string {
	var out []string
	if ev.ExternalID != "" {
		out = append(out, identityExternal+ev.ExternalID)
	}
	if ev.EmailHash != "" {
		out = append(out, identityEmail+ev.EmailHash)
	}
	return out
}
