package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/metrics"
	"github.com/threadline/threadline/pkg/redact"
)

// DefaultContactCacheTTL is how long a looked-up contact is kept in Redis by default: long enough
// that a busy conversation costs one API call, short enough that a new session attribute is seen.
const DefaultContactCacheTTL = 10 * time.Minute

// contactCachePrefix prefixes the Redis keys of cached contacts.
const contactCachePrefix = "tl:ingest:contact:"

// ErrInvalidContactCacheTTL is returned by ContactLookupConfig.Validate for a TTL that is not positive.
var ErrInvalidContactCacheTTL = errors.New("ingest: intercom.contact-cache-ttl must be positive")

// ContactLookupConfig configures the contact lookup: the Intercom REST client (intercom.* flags)
// and the cache. Without a token there is no lookup.
type ContactLookupConfig struct {
	API      intercom.Config
	CacheTTL time.Duration
}

// RegisterFlags registers the intercom.* client flags and intercom.contact-cache-ttl.
func (c *ContactLookupConfig) RegisterFlags(fs *flag.FlagSet) {
	c.API.RegisterFlags(fs)
	config.DurationVar(fs, &c.CacheTTL, "intercom.contact-cache-ttl", DefaultContactCacheTTL,
		"how long a contact looked up over REST is cached in Redis")
}

// Enabled reports whether contacts are looked up: only with an access token.
func (c ContactLookupConfig) Enabled() bool { return c.API.Token.IsSet() }

// Validate checks the configuration. The client settings are checked only when a token turns the
// lookup on, and ingest, which only reads contacts, needs no admin id.
func (c ContactLookupConfig) Validate() error {
	var errs []error
	if c.CacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidContactCacheTTL, c.CacheTTL))
	}
	if c.Enabled() {
		api := c.API
		if api.AdminID == "" {
			api.AdminID = "unused-by-ingest" // the admin only authors notes, which ingest never writes
		}
		if err := api.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ContactGetter fetches a contact by its Intercom id; intercom.Client satisfies it.
type ContactGetter interface {
	GetContact(ctx context.Context, id string) (*intercom.Contact, error)
}

// ContactCache is the part of Redis the lookup caches contacts in.
type ContactCache interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
}

// contactIdentity is what the cache holds of a contact: the identity in the form conversation
// events carry it, hashed where it is personal data; never the email itself.
type contactIdentity struct {
	Found       bool   `json:"found"`
	ExternalID  string `json:"external_id,omitempty"`
	EmailHash   string `json:"email_hash,omitempty"`
	Role        string `json:"role,omitempty"`
	SessionHint string `json:"session_hint,omitempty"`
}

// ContactLookup fills the identity of a conversation event whose notification named its contact
// only by Intercom id, from GET /contacts/{id}, cached in Redis.
type ContactLookup struct {
	api         ContactGetter
	cache       ContactCache
	ttl         time.Duration
	sessionAttr string
	log         *zap.Logger

	lookups *prometheus.CounterVec
}

// NewContactLookup builds the lookup; sessionAttribute names the contact custom attribute holding
// the product session id ("" reads none). Its metric is registered on reg.
func NewContactLookup(api ContactGetter, cache ContactCache, ttl time.Duration, sessionAttribute string, log *zap.Logger, reg prometheus.Registerer) (*ContactLookup, error) {
	lookups, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "threadline", Subsystem: "ingest", Name: "contact_lookups_total",
		Help: "Contact lookups of conversation events by outcome: cached, fetched, not_found, unauthorized, error.",
	}, []string{"outcome"}))
	if err != nil {
		return nil, fmt.Errorf("ingest: register contact lookup metrics: %w", err)
	}
	return &ContactLookup{api: api, cache: cache, ttl: ttl, sessionAttr: sessionAttribute, log: log, lookups: lookups}, nil
}

// Enrich fills ev's external id, email hash, role and session hint from its contact when the
// notification carried neither an external id nor an email. A contact Intercom does not know
// leaves ev as it is; so does a token Intercom refuses (logged: it is a configuration error that
// retrying cannot fix). Any other failure is returned, for the consumer to retry.
func (l *ContactLookup) Enrich(ctx context.Context, ev *messages.ConversationEvent) error {
	if ev.ContactID == "" || ev.ExternalID != "" || ev.EmailHash != "" {
		return nil
	}
	id, err := l.identity(ctx, ev.WorkspaceID, ev.ContactID)
	if err != nil {
		return err
	}
	if !id.Found {
		return nil
	}
	ev.ExternalID, ev.EmailHash = id.ExternalID, id.EmailHash
	if ev.Role == "" {
		ev.Role = id.Role
	}
	if ev.SessionHint == "" {
		ev.SessionHint = id.SessionHint
	}
	return nil
}

func (l *ContactLookup) identity(ctx context.Context, workspaceID, contactID string) (contactIdentity, error) {
	key := contactCachePrefix + workspaceID + ":" + contactID
	var id contactIdentity
	cached, err := l.cache.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		if jerr := json.Unmarshal(cached, &id); jerr == nil {
			l.lookups.WithLabelValues("cached").Inc()
			return id, nil
		}
		// an unreadable entry is replaced below
	case !errors.Is(err, redis.Nil):
		l.lookups.WithLabelValues("error").Inc()
		return id, fmt.Errorf("ingest: contact %s: read cache: %w", contactID, err)
	}

	ct, err := l.api.GetContact(ctx, contactID)
	switch {
	case errors.Is(err, intercom.ErrNotFound):
		l.lookups.WithLabelValues("not_found").Inc()
		id = contactIdentity{Found: false}
	case errors.Is(err, intercom.ErrUnauthorized):
		l.lookups.WithLabelValues("unauthorized").Inc()
		l.log.Error("contact lookup refused: check intercom.token (THREADLINE_INTERCOM_TOKEN)",
			zap.String("contact", contactID), zap.Error(err))
		return contactIdentity{}, nil // not cached: a corrected token is used at once
	case err != nil:
		l.lookups.WithLabelValues("error").Inc()
		return id, fmt.Errorf("ingest: contact %s: %w", contactID, err)
	default:
		l.lookups.WithLabelValues("fetched").Inc()
		id = l.identityOf(ct)
	}
	b, err := json.Marshal(id)
	if err != nil {
		return id, fmt.Errorf("ingest: contact %s: encode cache entry: %w", contactID, err)
	}
	if err := l.cache.Set(ctx, key, b, l.ttl).Err(); err != nil {
		// The answer is good; the next event of this contact asks Intercom again.
		l.log.Warn("contact not cached", zap.String("contact", contactID), zap.Error(err))
	}
	return id, nil
}

func (l *ContactLookup) identityOf(ct *intercom.Contact) contactIdentity {
	id := contactIdentity{
		Found:       true,
		ExternalID:  redact.Pseudonym(strings.TrimSpace(ct.ExternalID)),
		EmailHash:   redact.EmailHash(ct.Email),
		SessionHint: redact.Pseudonym(customAttribute(ct.CustomAttributes, l.sessionAttr)),
	}
	if ct.Role == "user" || ct.Role == "lead" {
		id.Role = ct.Role
	}
	return id
}

// customAttribute returns a custom attribute as a string ("" when absent, empty or not a scalar).
func customAttribute(attrs map[string]any, name string) string {
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
