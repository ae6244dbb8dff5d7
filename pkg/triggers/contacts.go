package triggers

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
)

// Contact is what a conversation event tells about the Intercom contact behind an email hash.
type Contact struct {
	EmailHash  string // "h:" + hex sha256 of the email
	ContactID  string // the Intercom contact id
	ExternalID string // the contact's external_id, the product's user id ("" when unknown)
}

// ContactFromEvent takes the contact a conversation event names. An external id that is an
// identity hash (personal data, hashed by the normaliser) or holds an '@' is left out: Intercom
// knows the contact by no such id.
func ContactFromEvent(ev messages.ConversationEvent) Contact {
	external := cleanID(ev.ExternalID)
	if strings.HasPrefix(external, "h:") {
		external = ""
	}
	return Contact{EmailHash: ev.EmailHash, ContactID: cleanID(ev.ContactID), ExternalID: external}
}

// RememberContact remembers, for ContactTTL, the contact of each email hash, so that the actions
// of a user known by that hash only emit data events for that contact (see EvaluateBatch).
// Contacts without an email hash, or with neither id, are ignored. The ids given replace those
// remembered; an empty one keeps its predecessor. One pipelined round trip for all contacts;
// safe to repeat.
func (e *Engine) RememberContact(ctx context.Context, contacts ...Contact) error {
	pipe := e.rdb.TxPipeline() // each contact's HSET and PEXPIRE together
	ttl := e.cfg.ContactTTL
	for _, c := range contacts {
		if c.EmailHash == "" || hasControl(c.EmailHash) || (c.ContactID == "" && c.ExternalID == "") {
			continue
		}
		fields := make([]any, 0, 4)
		if c.ExternalID != "" {
			fields = append(fields, "x", c.ExternalID)
		}
		if c.ContactID != "" {
			fields = append(fields, "c", c.ContactID)
		}
		key := contactKey(emailUserPrefix + c.EmailHash)
		pipe.HSet(ctx, key, fields...)
		pipe.PExpire(ctx, key, ttl)
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		e.metrics.redisErrors.WithLabelValues("contact").Inc()
		return fmt.Errorf("triggers: remember contact: %w", err)
	}
	return nil
}
