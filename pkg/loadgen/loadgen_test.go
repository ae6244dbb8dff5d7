package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

const clientSecret = "loadgen-test-secret"

// webhookReceiver stands in for ingest's webhook endpoint: it keeps every notification whose
// signature verifies and answers 401 to the others.
type webhookReceiver struct {
	mu     sync.Mutex
	topics []string
	convs  []string
	forged int
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !intercom.VerifySignature([]byte(clientSecret), body, req.Header.Get("X-Hub-Signature")) {
		r.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var n struct {
		Topic string `json:"topic"`
		Data  struct {
			Item struct {
				ID string `json:"id"`
			} `json:"item"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &n)
	r.topics = append(r.topics, n.Topic)
	r.convs = append(r.convs, n.Data.Item.ID)
}

func newFake() *fakeintercom.Server {
	return fakeintercom.New(fakeintercom.Options{Token: "t", AdminID: "1", ClientSecret: clientSecret})
}

func newClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	return kafkatest.Client(t, brokers, kgo.AllowAutoTopicCreation())
}

func TestUnpacedBacklogPlaysEveryPassAndOpensTheShare(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "raw")
	kafkatest.CreateTopic(t, brokers, topic, 3)
	recv := &webhookReceiver{}
	hooks := httptest.NewServer(recv)
	t.Cleanup(hooks.Close)
	fake := newFake()

	cfg := Config{Sessions: 20, EventsPerSecond: 500, Unpaced: true, ConversationShare: 0.25, Passes: 2, OpenConcurrency: 3}
	g, err := New(cfg, topic, newClient(t, brokers), NewFakeOpener(fake, hooks.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := demo.Recorded()
	perPass := len(rec.Events)
	want := cfg.Sessions * cfg.Passes * perPass
	if stats.Events != want || stats.Passes != cfg.Sessions*cfg.Passes {
		t.Fatalf("events %d in %d passes, want %d in %d", stats.Events, stats.Passes, want, cfg.Sessions*cfg.Passes)
	}

	// Every record is capture output ingest decodes, keyed as capture keys it; ids are fresh.
	recs := kafkatest.Consume(t, brokers, topic, want, 20*time.Second)
	uuids := map[string]bool{}
	sessions := map[string]int{}
	users := map[string]string{} // session → user id after identify
	lastByKey := map[string]time.Time{}
	for _, r := range recs {
		evs, err := posthog.Decode(r.Value, time.Now())
		if err != nil || len(evs) != 1 {
			t.Fatalf("record does not decode to one event (%v): %s", err, r.Value)
		}
		ev := evs[0]
		if uuids[ev.UUID] {
			t.Fatalf("event uuid %s produced twice", ev.UUID)
		}
		uuids[ev.UUID] = true
		if ev.UUID == rec.Events[0].UUID || ev.SessionID == demo.RecordedSessionID {
			t.Fatalf("recorded ids leaked into the load: %s", r.Value)
		}
		if got := string(r.Key); got != ev.Token+":"+ev.DistinctID {
			t.Fatalf("key %q, want token:distinct_id %q", got, ev.Token+":"+ev.DistinctID)
		}
		if ev.Timestamp.Before(stats.Started.Truncate(time.Millisecond)) {
			t.Fatalf("event at %s, before the run started at %s", ev.Timestamp, stats.Started)
		}
		if prev := lastByKey[string(r.Key)]; ev.Timestamp.Before(prev) {
			t.Fatalf("key %s goes back in time: %s after %s", r.Key, ev.Timestamp, prev)
		}
		lastByKey[string(r.Key)] = ev.Timestamp
		sessions[ev.SessionID]++
		if ev.Name == "$identify" {
			users[ev.SessionID] = ev.DistinctID
		}
	}
	if len(sessions) != cfg.Sessions {
		t.Fatalf("%d sessions, want %d", len(sessions), cfg.Sessions)
	}
	for sid, n := range sessions {
		if n != cfg.Passes*perPass {
			t.Fatalf("session %s has %d events, want %d (same session across passes)", sid, n, cfg.Passes*perPass)
		}
	}

	// A quarter of the users opened one conversation each, with a signed webhook.
	if len(stats.Conversations) != 5 || stats.OpenErrors != 0 {
		t.Fatalf("%d conversations (%d errors), want 5", len(stats.Conversations), stats.OpenErrors)
	}
	if recv.forged != 0 || len(recv.topics) != 5 {
		t.Fatalf("receiver got %d signed webhooks and %d forged, want 5 and 0", len(recv.topics), recv.forged)
	}
	for i, topic := range recv.topics {
		if topic != ConversationTopic {
			t.Fatalf("webhook %d topic %q", i, topic)
		}
	}
	for _, c := range stats.Conversations {
		if users[c.SessionID] != c.UserID {
			t.Fatalf("conversation %s is for user %q, but session %s identified as %q", c.ID, c.UserID, c.SessionID, users[c.SessionID])
		}
		conv, ok := fake.Conversation(c.ID)
		if !ok {
			t.Fatalf("conversation %s not in the fake", c.ID)
		}
		contact, _ := fake.Contact(conv.ContactIDs[0])
		if contact.ExternalID != c.UserID || contact.Email == "" {
			t.Fatalf("conversation %s contact %+v, want external id %s and an email", c.ID, contact, c.UserID)
		}
	}
	sort.Strings(recv.convs)
	if recv.convs[0] == "" {
		t.Fatal("a webhook carried no conversation id")
	}
}

func TestPacedLoadProducesEachEventNoEarlierThanItsTimeAndStopsAtTheDuration(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "raw")
	kafkatest.CreateTopic(t, brokers, topic, 3)
	cfg := Config{Sessions: 10, EventsPerSecond: 100, Duration: 600 * time.Millisecond, OpenConcurrency: 1}
	g, err := New(cfg, topic, newClient(t, brokers), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events == 0 || stats.Conversations != nil {
		t.Fatalf("stats %+v: want events and no conversations", stats)
	}
	end := stats.Started.Add(cfg.Duration)
	if !stats.LastEvent.Before(end) {
		t.Fatalf("last event at %s, not before the end %s", stats.LastEvent, end)
	}
	for _, r := range kafkatest.Consume(t, brokers, topic, stats.Events, 20*time.Second) {
		evs, err := posthog.Decode(r.Value, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		at := evs[0].Timestamp
		if at.Before(stats.Started.Truncate(time.Millisecond)) || !at.Before(end) {
			t.Fatalf("event at %s outside [%s, %s)", at, stats.Started, end)
		}
		// Paced: the record was produced at or after the event's time (ms resolution).
		if r.Timestamp.Before(at.Add(-time.Millisecond)) {
			t.Fatalf("record produced at %s, before its event time %s", r.Timestamp, at)
		}
	}
}

func TestCycleFitsThePerSessionRate(t *testing.T) {
	cfg := DefaultConfig()
	g, err := New(cfg, "raw", nil, ConversationOpenerFunc(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := demo.Recorded()
	// 1,000 sessions at 2,000 events/s: each plays its 19 events every 9.5 s.
	perSession := cfg.EventsPerSecond / float64(cfg.Sessions)
	want := time.Duration(float64(len(rec.Events)) / perSession * float64(time.Second))
	if got := g.Cycle(); got != want {
		t.Fatalf("cycle %s, want %s", got, want)
	}
	// The pass at that speed, plus one average gap, is the cycle.
	span := rec.Events[len(rec.Events)-1].Time.Sub(rec.Events[0].Time)
	played := time.Duration(float64(span+span/time.Duration(len(rec.Events)-1)) / g.speed())
	if d := played - want; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("a pass and its gap last %s at speed %.2f, want %s", played, g.speed(), want)
	}
}

// ConversationOpenerFunc adapts a function to ConversationOpener.
type ConversationOpenerFunc func(ctx context.Context, u User) (string, error)

func (f ConversationOpenerFunc) OpenConversation(ctx context.Context, u User) (string, error) {
	return f(ctx, u)
}

func TestOpenErrorsAreCountedNotFatal(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "raw")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	failing := ConversationOpenerFunc(func(context.Context, User) (string, error) { return "", errors.New("no Messenger today") })
	cfg := Config{Sessions: 4, EventsPerSecond: 1000, Unpaced: true, ConversationShare: 1, Passes: 1, OpenConcurrency: 2}
	g, err := New(cfg, topic, newClient(t, brokers), failing, nil)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := g.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.OpenErrors != 4 || len(stats.Conversations) != 0 {
		t.Fatalf("open errors %d, conversations %d; want 4 and 0", stats.OpenErrors, len(stats.Conversations))
	}
}

func TestHTTPOpenerOpensThroughTheFakesEndpoint(t *testing.T) {
	recv := &webhookReceiver{}
	hooks := httptest.NewServer(recv)
	t.Cleanup(hooks.Close)
	fake := newFake()
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)

	o := NewHTTPOpener(api.URL+"/", hooks.URL, nil)
	u := User{SessionID: "s1", UserID: "usr_load_1", Email: "load-1@example.com", URL: "https://app.acme.dev/checkout"}
	id, err := o.OpenConversation(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	conv, ok := fake.Conversation(id)
	if !ok || conv.Source.URL != u.URL {
		t.Fatalf("conversation %q: %+v", id, conv)
	}
	contact, _ := fake.Contact(conv.ContactIDs[0])
	if contact.ExternalID != u.UserID || contact.Email != u.Email {
		t.Fatalf("contact %+v", contact)
	}
	if len(recv.convs) != 1 || recv.convs[0] != id || recv.forged != 0 {
		t.Fatalf("receiver: %+v", recv)
	}

	// A receiver that refuses the webhook: the conversation exists, the opener says it was not delivered.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	t.Cleanup(refusing.Close)
	id, err = NewHTTPOpener(api.URL, refusing.URL, nil).OpenConversation(context.Background(), u)
	if !errors.Is(err, ErrNotDelivered) || id == "" {
		t.Fatalf("id %q, err %v; want a conversation id and ErrNotDelivered", id, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{"no sessions", func(c *Config) { c.Sessions = 0 }, ErrSessions},
		{"no rate", func(c *Config) { c.EventsPerSecond = 0 }, ErrEventsPerSecond},
		{"share above one", func(c *Config) { c.ConversationShare = 1.5 }, ErrConversationShare},
		{"negative share", func(c *Config) { c.ConversationShare = -0.1 }, ErrConversationShare},
		{"no end", func(c *Config) { c.Duration, c.Passes = 0, 0 }, ErrNoEnd},
		{"negative passes", func(c *Config) { c.Passes = -1 }, ErrNegative},
		{"no openers", func(c *Config) { c.OpenConcurrency = 0 }, ErrOpenConcurrency},
	} {
		cfg := DefaultConfig()
		tc.change(&cfg)
		if err := cfg.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := New(DefaultConfig(), "raw", nil, nil, nil); err == nil {
		t.Error("New accepted a conversation share without an opener")
	}
}

func TestOpensSpreadsTheShareEvenly(t *testing.T) {
	for _, tc := range []struct {
		sessions int
		share    float64
		want     int
	}{{1000, 0.1, 100}, {20, 0.25, 5}, {7, 0, 0}, {7, 1, 7}, {3, 0.5, 1}} {
		cfg := Config{Sessions: tc.sessions, ConversationShare: tc.share}
		n, longestGap, gap := 0, 0, 0
		for i := range tc.sessions {
			if cfg.Opens(i) {
				n++
				gap = 0
				continue
			}
			gap++
			longestGap = max(longestGap, gap)
		}
		if n != tc.want {
			t.Errorf("%d sessions, share %g: %d open, want %d", tc.sessions, tc.share, n, tc.want)
		}
		if tc.share > 0 && float64(longestGap) > 1/tc.share {
			t.Errorf("%d sessions, share %g: %d sessions in a row without a conversation", tc.sessions, tc.share, longestGap)
		}
	}
}
