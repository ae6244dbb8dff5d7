package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// contactEnv is a contact lookup of a fake Intercom over a real socket, cached in a real redis-server.
type contactEnv struct {
	fake   *fakeintercom.Server
	apiURL string
	rdb    redis.UniversalClient
}

func newContactEnv(t *testing.T) *contactEnv {
	t.Helper()
	fake, url := newFakeIntercom(t)
	return &contactEnv{fake: fake, apiURL: url, rdb: redistest.Start(t).Client(t)}
}

// client returns a REST client of the fake as ingest configures it, with fast retries.
func (env *contactEnv) client(t *testing.T, token string, edit ...func(*intercom.Config)) *intercom.Client {
	t.Helper()
	cfg := intercom.DefaultConfig()
	cfg.APIBase = env.apiURL
	cfg.Token = config.NewSecret(token)
	cfg.Timeout = 2 * time.Second
	cfg.MaxRetries = 1
	cfg.RetryBackoffMin = time.Millisecond
	cfg.RetryBackoffMax = 10 * time.Millisecond
	for _, e := range edit {
		e(&cfg)
	}
	return intercom.NewClient(cfg, &http.Client{}, zap.NewNop())
}

// lookup returns a lookup with a registry of its own, as each ingest replica has.
func (env *contactEnv) lookup(t *testing.T, api ContactGetter) *ContactLookup {
	t.Helper()
	l, err := NewContactLookup(api, env.rdb, time.Hour, intercom.DefaultSessionAttribute, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// bareEvent is a conversation event whose notification named its contact by id only.
func bareEvent(contactID string) messages.ConversationEvent {
	return messages.ConversationEvent{Version: messages.Version, EventID: "notif_1", Type: messages.ConvCreated,
		WorkspaceID: fakeintercom.DefaultWorkspaceID, ConversationID: "1", ContactID: contactID}
}

func TestContactLookupFillsTheIdentityOnceThenFromTheCache(t *testing.T) {
	env := newContactEnv(t)
	ctx := context.Background()
	conv := env.fake.CreateConversation(fakeintercom.ContactSpec{
		ExternalID: "usr_2Qm8xK4p", Email: "Jane.Doe@Example.com",
		CustomAttributes: map[string]any{intercom.DefaultSessionAttribute: "01959426-703f-7f3a-b1ec-ebbd1410ab41"},
	}, "<p>help</p>", "https://app.acme.dev/checkout", nil)
	contactID := conv.ContactIDs[0]
	api := env.client(t, fakeToken)
	first := env.lookup(t, api)

	want := bareEvent(contactID)
	want.ExternalID = "usr_2Qm8xK4p"
	want.EmailHash = redact.EmailHash("jane.doe@example.com")
	want.Role = "user"
	want.SessionHint = "01959426-703f-7f3a-b1ec-ebbd1410ab41"
	// a second replica shares the cache through Redis
	for i, l := range []*ContactLookup{first, first, env.lookup(t, api)} {
		ev := bareEvent(contactID)
		if err := l.Enrich(ctx, &ev); err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
		if ev != want {
			t.Fatalf("lookup %d:\n got %+v\nwant %+v", i, ev, want)
		}
	}
	if got := env.fake.Requests(fakeintercom.EndpointGetContact); got != 1 {
		t.Fatalf("GET /contacts/{id} called %d times, want 1", got)
	}

	// the cache holds the identity as events carry it: nothing personal, and it expires
	key := contactCachePrefix + fakeintercom.DefaultWorkspaceID + ":" + contactID
	cached, err := env.rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(cached), "jane") || len(redact.Find(cached)) > 0 {
		t.Fatalf("the cache entry holds personal data: %s", cached)
	}
	if ttl, err := env.rdb.TTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("cache TTL %s (%v), want at most an hour", ttl, err)
	}
}

func TestContactLookupHashesAnExternalIDThatIsAnEmail(t *testing.T) {
	env := newContactEnv(t)
	conv := env.fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "jane.doe@example.com"}, "<p>hi</p>", "", nil)
	ev := bareEvent(conv.ContactIDs[0])
	if err := env.lookup(t, env.client(t, fakeToken)).Enrich(context.Background(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ExternalID != redact.IdentityKey("jane.doe@example.com") || !strings.HasPrefix(ev.ExternalID, "h:") {
		t.Fatalf("external id %q, want the identity hash", ev.ExternalID)
	}
	if ev.EmailHash != "" {
		t.Fatalf("email hash %q for a contact without an email", ev.EmailHash)
	}
}

func TestContactLookupLeavesEventsThatNeedNoLookup(t *testing.T) {
	env := newContactEnv(t)
	l := env.lookup(t, env.client(t, fakeToken))
	withExternalID, withEmail := bareEvent("c1"), bareEvent("c1")
	withExternalID.ExternalID = "usr_1"
	withEmail.EmailHash = redact.EmailHash("a@b.co")
	for _, ev := range []messages.ConversationEvent{
		withExternalID,
		withEmail,
		bareEvent(""), // a deleted conversation names no contact
	} {
		before := ev
		if err := l.Enrich(context.Background(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev != before {
			t.Errorf("event changed: %+v -> %+v", before, ev)
		}
	}
	if got := env.fake.Requests(fakeintercom.EndpointGetContact); got != 0 {
		t.Fatalf("%d lookups for events that carry an identity", got)
	}
}

func TestContactLookupOfAnUnknownContactCarriesOnWithout(t *testing.T) {
	env := newContactEnv(t)
	l := env.lookup(t, env.client(t, fakeToken))
	for range 2 {
		ev := bareEvent("5f0000000000000000000000")
		if err := l.Enrich(context.Background(), &ev); err != nil {
			t.Fatalf("unknown contact: %v", err)
		}
		if ev != bareEvent("5f0000000000000000000000") {
			t.Fatalf("event changed: %+v", ev)
		}
	}
	if got := env.fake.Requests(fakeintercom.EndpointGetContact); got != 1 {
		t.Fatalf("a contact Intercom does not know was asked for %d times, want 1 (then cached)", got)
	}
}

func TestContactLookupReturnsTransientErrorsForARetry(t *testing.T) {
	env := newContactEnv(t)
	ctx := context.Background()
	conv := env.fake.CreateConversation(fakeintercom.ContactSpec{Email: "lead@example.com", Role: "lead"}, "<p>hi</p>", "", nil)
	contactID := conv.ContactIDs[0]
	l := env.lookup(t, env.client(t, fakeToken, func(c *intercom.Config) { c.Timeout = 300 * time.Millisecond }))

	for _, f := range []fakeintercom.Fault{
		{ServerErrors: 10},                 // 502 with an HTML page, more often than the client retries
		{Resets: 10},                       // connection reset
		{RateLimitedFor: 30 * time.Second}, // 429 with a Retry-After longer than the client waits
		{DownFor: 30 * time.Second},        // 503 with an HTML page
		{Latency: time.Second},             // slower than the client's timeout
	} {
		env.fake.SetFault(f)
		ev := bareEvent(contactID)
		err := l.Enrich(ctx, &ev)
		if err == nil {
			t.Fatalf("fault %+v: no error", f)
		}
		if errors.Is(err, intercom.ErrNotFound) || ev != bareEvent(contactID) {
			t.Fatalf("fault %+v: %v, event %+v", f, err, ev)
		}
		if n, _ := env.rdb.Exists(ctx, contactCachePrefix+fakeintercom.DefaultWorkspaceID+":"+contactID).Result(); n != 0 {
			t.Fatalf("fault %+v: a failed lookup was cached", f)
		}
	}
	env.fake.SetFault(fakeintercom.Fault{})
	ev := bareEvent(contactID)
	if err := l.Enrich(ctx, &ev); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
	if ev.EmailHash != redact.EmailHash("lead@example.com") || ev.Role != "lead" {
		t.Fatalf("after the faults: %+v", ev)
	}
}

func TestContactLookupWithARefusedTokenCarriesOnUncached(t *testing.T) {
	env := newContactEnv(t)
	conv := env.fake.CreateConversation(fakeintercom.ContactSpec{Email: "x@example.com"}, "<p>hi</p>", "", nil)
	l := env.lookup(t, env.client(t, "a-revoked-token"))
	for range 2 {
		ev := bareEvent(conv.ContactIDs[0])
		if err := l.Enrich(context.Background(), &ev); err != nil {
			t.Fatalf("refused token: %v", err)
		}
		if ev != bareEvent(conv.ContactIDs[0]) {
			t.Fatalf("event changed: %+v", ev)
		}
	}
	if got := env.fake.Requests(fakeintercom.EndpointGetContact); got != 2 {
		t.Fatalf("%d calls, want 2: a refusal is not cached, so a corrected token takes effect", got)
	}
}

func TestContactLookupRedisDownIsRetried(t *testing.T) {
	env := newContactEnv(t)
	l := env.lookup(t, env.client(t, fakeToken))
	if err := env.rdb.Close(); err != nil {
		t.Fatal(err)
	}
	ev := bareEvent("c1")
	if err := l.Enrich(context.Background(), &ev); err == nil || !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("Redis down: %v, want the Redis error", err)
	}
}

func TestContactLookupConfig(t *testing.T) {
	parse := func(args ...string) (ContactLookupConfig, error) {
		var c ContactLookupConfig
		fs := flag.NewFlagSet("contacts", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := config.Parse(fs, args, func(string) (string, bool) { return "", false }); err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := parse()
	if err != nil || c.Enabled() || c.CacheTTL != DefaultContactCacheTTL || c.API.Version != intercom.DefaultVersion {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	// without a token nothing else matters: there is no lookup
	if c, err := parse("-intercom.api-base=not a url"); err != nil || c.Enabled() {
		t.Fatalf("no token: enabled=%v err=%v", c.Enabled(), err)
	}
	// with one, the client must be usable; an admin id is not needed to read contacts
	if c, err := parse("-intercom.token=tok", "-intercom.api-base=https://api.eu.intercom.io"); err != nil || !c.Enabled() {
		t.Fatalf("token without admin id: enabled=%v err=%v", c.Enabled(), err)
	}
	if _, err := parse("-intercom.token=tok", "-intercom.api-base=ftp://x"); !errors.Is(err, intercom.ErrInvalidAPIBase) {
		t.Fatalf("bad api base: %v", err)
	}
	if _, err := parse("-intercom.token=tok", "-intercom.version="); !errors.Is(err, intercom.ErrMissingVersion) {
		t.Fatalf("no version: %v", err)
	}
	if _, err := parse("-intercom.contact-cache-ttl=0s"); !errors.Is(err, ErrInvalidContactCacheTTL) {
		t.Fatalf("zero TTL: %v", err)
	}
}
