package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// kafkaState is how the test's broker answers produce requests.
type kafkaState = int32

const (
	kafkaUp      kafkaState = iota
	kafkaRefuses            // every partition answers NOT_ENOUGH_REPLICAS: nothing is stored
	kafkaHangs              // requests are read and never answered
)

// refuseProduce answers req with NOT_ENOUGH_REPLICAS for every partition, as a cluster that lost
// its in-sync replicas does; the producer retries.
func refuseProduce(req kmsg.Request) kmsg.Response {
	preq := req.(*kmsg.ProduceRequest)
	resp := preq.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range preq.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = kerr.NotEnoughReplicas.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// webhookEnv is the webhook receiver on a real socket, producing to a kfake cluster whose produce
// requests can be failed, remembering deliveries in a real redis-server, with a fake Intercom
// that signs and sends the deliveries.
type webhookEnv struct {
	fake     *fakeintercom.Server
	cluster  *kfake.Cluster
	brokers  []string
	topic    string
	rdb      redis.UniversalClient
	url      string // the webhook URL
	statuses *statusLog
	producer *kgo.Client

	kafka atomic.Int32 // a kafkaState
	// afterReply runs after each answer, with its status.
	afterReply atomic.Pointer[func(status int)]
}

func newWebhookEnv(t *testing.T, edit ...func(*WebhookConfig)) *webhookEnv {
	t.Helper()
	env := &webhookEnv{statuses: &statusLog{}}
	env.fake, _ = newFakeIntercom(t)
	env.cluster, env.brokers = kafkatest.Cluster(t)
	env.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		switch env.kafka.Load() {
		case kafkaRefuses:
			env.cluster.KeepControl()
			return refuseProduce(req), nil, true
		case kafkaHangs:
			env.cluster.KeepControl()
			return nil, nil, true
		}
		return nil, nil, false
	})
	env.topic = kafkatest.Topic(t, "intercom.webhooks.raw")
	kafkatest.CreateTopic(t, env.brokers, env.topic, 3)
	env.rdb = redistest.Start(t).Client(t)

	cfg := DefaultWebhookConfig()
	cfg.ClientSecret = config.NewSecret(fakeSecret)
	for _, e := range edit {
		e(&cfg)
	}
	// Kafka's recovery in miniature: produce retries and the metadata refreshes they wait for come
	// every 20 ms here, where a real client waits up to seconds (and Intercom a minute to retry).
	env.producer = kafkatest.Client(t, env.brokers,
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(20*time.Millisecond))
	receiver, err := NewWebhookReceiver(cfg, env.rdb, env.producer, env.topic, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		env.statuses.add(rec.Code)
		if f := env.afterReply.Load(); f != nil {
			(*f)(rec.Code)
		}
	}))
	t.Cleanup(srv.Close)
	env.url = srv.URL + WebhookPath
	t.Cleanup(func() {
		for _, code := range env.statuses.all() {
			if code == http.StatusGone || code == http.StatusTooManyRequests {
				t.Errorf("the receiver answered %d, which Intercom takes as unsubscribe or throttle", code)
			}
		}
	})
	return env
}

// kafkaBack makes the broker answer again, and returns once the producer has let go of the
// records it gave up on while it was down (as it has long done when Intercom retries a minute
// later); a record given up on fails the records queued behind it on its partition.
func (env *webhookEnv) kafkaBack(t *testing.T) {
	t.Helper()
	env.kafka.Store(kafkaUp)
	kafkatest.Eventually(t, waitForKafka, func() bool { return env.producer.BufferedProduceRecords() == 0 },
		"the producer still holds %d records", env.producer.BufferedProduceRecords())
}

// records returns how many records the raw topic holds.
func (env *webhookEnv) records(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, end := range kafkatest.EndOffsets(t, env.brokers, env.topic) {
		n += end
	}
	return n
}

// conversation creates a conversation in the fake, started by a user.
func (env *webhookEnv) conversation(t *testing.T) fakeintercom.Conversation {
	t.Helper()
	return env.fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "usr_2Qm8xK4p", Email: "jane.doe@example.com"},
		"<p>I can't change my plan</p>", "https://app.acme.dev/settings/billing", nil)
}

// post sends body to the receiver with the given X-Hub-Signature ("" sends none).
func (env *webhookEnv) post(t *testing.T, body []byte, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(intercom.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// capturedDelivery is one signed delivery as the fake sent it.
type capturedDelivery struct {
	body      []byte
	signature string
}

// captureDelivery has the fake send a notification to a recorder instead of the receiver, and
// returns the body and signature it sent: material for requests the fake would never make.
func captureDelivery(t *testing.T, fake *fakeintercom.Server, n *fakeintercom.Notification) capturedDelivery {
	t.Helper()
	var (
		mu  sync.Mutex
		got capturedDelivery
	)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = capturedDelivery{body: b, signature: r.Header.Get(intercom.SignatureHeader)}
		mu.Unlock()
	}))
	defer rec.Close()
	if err := fake.Send(context.Background(), rec.URL, n); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

func lastDeliveryStatuses(fake *fakeintercom.Server) []int {
	var out []int
	for _, d := range fake.Deliveries() {
		out = append(out, d.Status)
	}
	return out
}

func TestWebhookSignedDeliveryIsStoredOnce(t *testing.T) {
	env := newWebhookEnv(t)
	conv := env.conversation(t)
	if err := env.fake.DeliverWebhook(context.Background(), env.url, intercom.TopicUserCreated, conv.ID); err != nil {
		t.Fatalf("delivery: %v", err)
	}
	if got := lastDeliveryStatuses(env.fake); len(got) != 1 || got[0] != http.StatusOK {
		t.Fatalf("statuses %v, want [200]", got)
	}
	recs := kafkatest.Consume(t, env.brokers, env.topic, 1, waitForKafka)
	if n := env.records(t); n != 1 {
		t.Fatalf("%d records on the raw topic, want 1", n)
	}
	rec := recs[0]
	if string(rec.Key) != conv.ID {
		t.Errorf("key %q, want the conversation id %q", rec.Key, conv.ID)
	}
	// the raw notification is kept byte for byte: its signature still verifies
	if !intercom.VerifySignature([]byte(fakeSecret), rec.Value, env.fake.Sign(rec.Value)) {
		t.Fatal("the stored body is not the signed one")
	}
	n, err := intercom.ParseNotification(rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	if n.Topic != intercom.TopicUserCreated || n.ItemID() != conv.ID || n.ID != env.fake.Deliveries()[0].NotificationID {
		t.Errorf("stored notification %s %s %s", n.Topic, n.ItemID(), n.ID)
	}
}

func TestWebhookRefusesWhatIsNotSignedByTheClientSecret(t *testing.T) {
	env := newWebhookEnv(t)
	conv := env.conversation(t)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	signed := captureDelivery(t, env.fake, n)
	if !strings.HasPrefix(signed.signature, "sha1=") {
		t.Fatalf("the fake signed with %q", signed.signature)
	}
	tampered := bytes.Replace(signed.body, []byte(conv.ID), []byte("999999999"), 1)
	if bytes.Equal(tampered, signed.body) {
		t.Fatal("the body was not tampered with")
	}
	other := fakeintercom.New(fakeintercom.Options{Token: fakeToken, AdminID: fakeAdminID, ClientSecret: "another-apps-secret"})
	hexSig := strings.TrimPrefix(signed.signature, "sha1=")

	for _, c := range []struct {
		name      string
		body      []byte
		signature string
	}{
		{"tampered body, original signature", tampered, signed.signature},
		{"unsigned", signed.body, ""},
		{"signed with another app's secret", signed.body, other.Sign(signed.body)},
		{"signature without its sha1= prefix", signed.body, hexSig},
		{"signature in upper case", signed.body, "sha1=" + strings.ToUpper(hexSig)},
		{"sha256 in place of sha1", signed.body, "sha256=" + hexSig},
		{"truncated signature", signed.body, signed.signature[:len(signed.signature)-2]},
	} {
		if got := env.post(t, c.body, c.signature); got != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", c.name, got)
		}
	}
	// the wrong-secret case as the other app's own delivery
	if err := other.Send(context.Background(), env.url, n); !errors.Is(err, fakeintercom.ErrDeliveryFailed) {
		t.Errorf("a delivery signed by another app: %v, want a failed delivery", err)
	}
	if got := lastDeliveryStatuses(other); len(got) != 1 || got[0] != http.StatusUnauthorized {
		t.Errorf("the other app's delivery got %v, want [401]", got)
	}
	if n := env.records(t); n != 0 {
		t.Fatalf("%d records stored from refused deliveries", n)
	}
	// the untouched delivery is still accepted: nothing above marked it as seen
	if got := env.post(t, signed.body, signed.signature); got != http.StatusOK {
		t.Fatalf("the genuine delivery: status %d", got)
	}
	if n := env.records(t); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

func TestWebhookRepeatedDeliveriesAreStoredOnce(t *testing.T) {
	env := newWebhookEnv(t)
	ctx := context.Background()
	conv := env.conversation(t)

	if err := env.fake.DeliverWebhook(ctx, env.url, intercom.TopicUserCreated, conv.ID, fakeintercom.WithDuplicate()); err != nil {
		t.Fatal(err)
	}
	if _, err := env.fake.UserReply(conv.ID, "<p>still stuck</p>"); err != nil {
		t.Fatal(err)
	}
	if err := env.fake.DeliverWebhook(ctx, env.url, intercom.TopicUserReplied, conv.ID, fakeintercom.WithRedelivery()); err != nil {
		t.Fatal(err)
	}
	// the same notification sent twice, as a delivery Intercom timed out on and sent again
	closed, err := env.fake.NewNotification(intercom.TopicAdminClosed, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := env.fake.Send(ctx, env.url, closed); err != nil {
			t.Fatal(err)
		}
	}

	deliveries := env.fake.Deliveries()
	if len(deliveries) != 6 {
		t.Fatalf("%d deliveries, want 6", len(deliveries))
	}
	attempts := map[string][]int{}
	for _, d := range deliveries {
		if d.Status != http.StatusOK {
			t.Errorf("%s delivery %d: status %d, want 200", d.Topic, d.Attempt, d.Status)
		}
		attempts[d.Topic] = append(attempts[d.Topic], d.Attempt)
	}
	if got := attempts[intercom.TopicUserReplied]; len(got) != 2 || got[1] != 2 {
		t.Errorf("the redelivery was not sent as a retry: attempts %v", got)
	}
	recs := kafkatest.Consume(t, env.brokers, env.topic, 3, waitForKafka)
	if n := env.records(t); n != 3 {
		t.Fatalf("%d records, want 3 (one per notification)", n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		n, err := intercom.ParseNotification(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if seen[n.ID] {
			t.Errorf("notification %s stored twice", n.ID)
		}
		seen[n.ID] = true
	}
}

func TestWebhookWithoutIDIsDeduplicatedByTopicItemAndTime(t *testing.T) {
	env := newWebhookEnv(t)
	ctx := context.Background()
	conv := env.conversation(t)
	created, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID, fakeintercom.WithNullID())
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != "" {
		t.Fatalf("notification id %q, want null", created.ID)
	}
	for range 2 {
		if err := env.fake.Send(ctx, env.url, created); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.fake.Send(ctx, env.url, created, fakeintercom.WithRedelivery()); err != nil {
		t.Fatal(err)
	}
	// another topic about the same conversation at the same second is another notification
	closed, err := env.fake.NewNotification(intercom.TopicAdminClosed, conv.ID, fakeintercom.WithNullID())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.fake.Send(ctx, env.url, closed); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.Consume(t, env.brokers, env.topic, 2, waitForKafka)
	if n := env.records(t); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
	topics := map[string]bool{}
	for _, r := range recs {
		n, err := intercom.ParseNotification(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		topics[n.Topic] = true
		if exists, err := env.rdb.Exists(ctx, webhookDedupPrefix+n.DedupKey()).Result(); err != nil || exists != 1 {
			t.Errorf("%s: the fallback dedup key is not remembered (%d, %v)", n.Topic, exists, err)
		}
	}
	if !topics[intercom.TopicUserCreated] || !topics[intercom.TopicAdminClosed] {
		t.Errorf("stored topics %v", topics)
	}
}

func TestWebhookPingAndHeadAreAnsweredWithoutStoring(t *testing.T) {
	env := newWebhookEnv(t)
	if err := env.fake.Ping(context.Background(), env.url); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if got := lastDeliveryStatuses(env.fake); len(got) != 1 || got[0] != http.StatusOK {
		t.Fatalf("ping statuses %v, want [200]", got)
	}
	resp, err := http.Head(env.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d, want 200", resp.StatusCode)
	}
	if n := env.records(t); n != 0 {
		t.Fatalf("%d records after a ping and a HEAD", n)
	}
}

func TestWebhookBodyOverTheLimitIs413(t *testing.T) {
	const limit = 4 << 10
	env := newWebhookEnv(t, func(c *WebhookConfig) { c.MaxBody = limit })
	conv := env.fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "usr_big"},
		"<p>"+strings.Repeat("long message ", limit/8)+"</p>", "https://app.acme.dev/pricing", nil)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	big := captureDelivery(t, env.fake, n)
	if len(big.body) <= limit {
		t.Fatalf("body of %d bytes is not over the limit", len(big.body))
	}
	if got := env.post(t, big.body, big.signature); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", got)
	}
	// a delivery under the limit still goes through
	small := env.conversation(t)
	if err := env.fake.DeliverWebhook(context.Background(), env.url, intercom.TopicUserCreated, small.ID); err != nil {
		t.Fatal(err)
	}
	if n := env.records(t); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

func TestWebhookMalformedButSignedIs400(t *testing.T) {
	env := newWebhookEnv(t)
	for _, body := range []string{
		`{"type":"notification_event","topic":"conversation.user.created","data":{"item":`,
		`not json at all`,
		`{"type":"notification_event","id":"notif_1","data":{"item":{"type":"conversation","id":"1"}}}`, // no topic
		`{"type":"notification_event","id":"notif_2","topic":"conversation.user.created","data":{}}`,    // no item
		`{"type":"something_else","id":"notif_3","topic":"conversation.user.created","data":{"item":{"id":"1"}}}`,
		`[]`,
	} {
		if got := env.post(t, []byte(body), env.fake.Sign([]byte(body))); got != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, got)
		}
	}
	if n := env.records(t); n != 0 {
		t.Fatalf("%d records from malformed deliveries", n)
	}
}

func TestWebhookKafkaUnavailableIs503AndTheRetryIsAccepted(t *testing.T) {
	env := newWebhookEnv(t, func(c *WebhookConfig) { c.ProduceTimeout = 500 * time.Millisecond })
	ctx := context.Background()
	conv := env.conversation(t)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Kafka is down for the first attempt, and back once it was answered: Intercom's one retry
	// (delivery_attempts 2) must then be taken, not dropped as a duplicate.
	env.kafka.Store(kafkaRefuses)
	bringBack := func(status int) {
		if status == http.StatusServiceUnavailable {
			env.kafkaBack(t)
		}
	}
	env.afterReply.Store(&bringBack)
	err = env.fake.Send(ctx, env.url, n, fakeintercom.WithAttempts(2), fakeintercom.WithRetryInterval(10*time.Millisecond))
	if err != nil {
		t.Fatalf("delivery with one retry: %v", err)
	}
	got := env.fake.Deliveries()
	if len(got) != 2 || got[0].Status != http.StatusServiceUnavailable || got[1].Status != http.StatusOK || got[1].Attempt != 2 {
		t.Fatalf("deliveries %+v, want a 503 then a 200 on attempt 2", got)
	}
	recs := kafkatest.Consume(t, env.brokers, env.topic, 1, waitForKafka)
	if c := env.records(t); c != 1 {
		t.Fatalf("%d records, want 1", c)
	}
	stored, err := intercom.ParseNotification(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ID != n.ID || stored.DeliveryAttempts != 2 {
		t.Errorf("stored %s attempt %d, want %s attempt 2", stored.ID, stored.DeliveryAttempts, n.ID)
	}
}

func TestWebhookKafkaUnavailableReleasesTheDedupMark(t *testing.T) {
	env := newWebhookEnv(t, func(c *WebhookConfig) { c.ProduceTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	conv := env.conversation(t)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	env.kafka.Store(kafkaRefuses)
	if err := env.fake.Send(ctx, env.url, n); !errors.Is(err, fakeintercom.ErrDeliveryFailed) {
		t.Fatalf("delivery while Kafka is down: %v, want a failed delivery", err)
	}
	if got := lastDeliveryStatuses(env.fake); len(got) != 1 || got[0] != http.StatusServiceUnavailable {
		t.Fatalf("statuses %v, want [503]", got)
	}
	if exists, err := env.rdb.Exists(ctx, webhookDedupPrefix+n.ID).Result(); err != nil || exists != 0 {
		t.Fatalf("dedup mark of the failed delivery: exists=%d err=%v, want released", exists, err)
	}
	env.kafkaBack(t)
	if err := env.fake.Send(ctx, env.url, n, fakeintercom.WithDuplicate()); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	kafkatest.Consume(t, env.brokers, env.topic, 1, waitForKafka)
	if c := env.records(t); c != 1 {
		t.Fatalf("%d records, want 1", c)
	}
}

func TestWebhookAnswers503BeforeIntercomGivesUpWhileTheBrokerHangs(t *testing.T) {
	env := newWebhookEnv(t, func(c *WebhookConfig) { c.ProduceTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	conv := env.conversation(t)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	env.kafka.Store(kafkaHangs)
	// Intercom counts an answer slower than its response timeout as a failure without a status;
	// the receiver must answer, with 503, before that.
	err = env.fake.Send(ctx, env.url, n, fakeintercom.WithResponseTimeout(3*time.Second))
	if !errors.Is(err, fakeintercom.ErrDeliveryFailed) {
		t.Fatalf("delivery while the broker hangs: %v", err)
	}
	if got := env.fake.Deliveries(); len(got) != 1 || got[0].Status != http.StatusServiceUnavailable {
		t.Fatalf("deliveries %+v, want one answered 503", got)
	}
	if exists, err := env.rdb.Exists(ctx, webhookDedupPrefix+n.ID).Result(); err != nil || exists != 0 {
		t.Fatalf("dedup mark: exists=%d err=%v, want released", exists, err)
	}
}

func TestWebhookNeverAnswersGoneOrTooManyRequests(t *testing.T) {
	env := newWebhookEnv(t, func(c *WebhookConfig) { c.MaxBody = 8 << 10 })
	conv := env.conversation(t)
	if err := env.fake.DeliverWebhook(context.Background(), env.url, intercom.TopicUserCreated, conv.ID); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		req, _ := http.NewRequest(method, env.url, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "HEAD, POST" {
			t.Errorf("%s: %d (Allow %q), want 405 allowing HEAD, POST", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	for _, body := range [][]byte{nil, []byte("{}"), bytes.Repeat([]byte("x"), 16<<10)} {
		env.post(t, body, "")
		env.post(t, body, "sha1=00")
		env.post(t, body, env.fake.Sign(body))
	}
	// many deliveries in a burst are all answered, none throttled
	for range 50 {
		env.post(t, []byte(`{"topic":"ping","data":{"item":{"type":"ping"}}}`), env.fake.Sign([]byte(`{"topic":"ping","data":{"item":{"type":"ping"}}}`)))
	}
	if len(env.statuses.all()) < 65 {
		t.Fatalf("only %d answers recorded", len(env.statuses.all()))
	}
	// the cleanup of newWebhookEnv fails the test on any 410 or 429
}

func TestWebhookInsecureDevAcceptsUnsignedWhenNoSecretIsSet(t *testing.T) {
	env := newWebhookEnv(t, func(c *WebhookConfig) {
		c.ClientSecret = config.Secret{}
		c.InsecureDev = true
	})
	conv := env.conversation(t)
	n, err := env.fake.NewNotification(intercom.TopicUserCreated, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	body := captureDelivery(t, env.fake, n).body
	if got := env.post(t, body, ""); got != http.StatusOK {
		t.Fatalf("unsigned delivery in insecure dev mode: %d, want 200", got)
	}
	if c := env.records(t); c != 1 {
		t.Fatalf("%d records, want 1", c)
	}
}

func TestWebhookRedisDownStillStoresTheDelivery(t *testing.T) {
	env := newWebhookEnv(t)
	conv := env.conversation(t)
	if err := env.rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := env.fake.DeliverWebhook(context.Background(), env.url, intercom.TopicUserCreated, conv.ID); err != nil {
		t.Fatalf("delivery without Redis: %v", err)
	}
	recs := kafkatest.Consume(t, env.brokers, env.topic, 1, waitForKafka)
	if string(recs[0].Key) != conv.ID {
		t.Fatalf("key %q", recs[0].Key)
	}
}

func TestWebhookConfig(t *testing.T) {
	for _, env := range []string{"THREADLINE_INTERCOM_CLIENT_SECRET", "THREADLINE_INSECURE_DEV"} {
		t.Setenv(env, "") // restored when the test ends
		if err := os.Unsetenv(env); err != nil {
			t.Fatal(err)
		}
	}
	// run refuses to start, before connecting to anything
	err := run(context.Background(), []string{"-kafka.brokers=127.0.0.1:1", "-redis.addrs=127.0.0.1:1"}, io.Discard)
	if !errors.Is(err, ErrNoClientSecret) {
		t.Fatalf("run without a client secret: %v, want ErrNoClientSecret", err)
	}

	parse := func(args ...string) error {
		var cfg Config
		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.RegisterFlags(fs)
		if err := config.Parse(fs, args, func(string) (string, bool) { return "", false }); err != nil {
			return err
		}
		return cfg.Validate()
	}
	if err := parse(); !errors.Is(err, ErrNoClientSecret) {
		t.Errorf("no secret: %v", err)
	}
	if err := parse("-insecure-dev"); err != nil {
		t.Errorf("-insecure-dev without a secret: %v", err)
	}
	if err := parse("-intercom.client-secret=s3cret"); err != nil {
		t.Errorf("with a secret: %v", err)
	}
	for _, c := range []struct {
		arg  string
		want error
	}{
		{"-webhook.max-body=0", ErrInvalidWebhookMaxBody},
		{"-webhook.dedup-ttl=0s", ErrInvalidWebhookTTL},
		{"-webhook.produce-timeout=-1s", ErrInvalidWebhookTimeout},
		{"-http.addr=", ErrNoHTTPAddr},
	} {
		if err := parse("-intercom.client-secret=s3cret", c.arg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.arg, err, c.want)
		}
	}

	// the environment works as the flags do, and the secret never prints
	var out bytes.Buffer
	t.Setenv("THREADLINE_INTERCOM_CLIENT_SECRET", "very-secret-value")
	if err := run(context.Background(), []string{"-print-config"}, &out); !errors.Is(err, service.ErrPrinted) {
		t.Fatalf("-print-config: %v", err)
	}
	if strings.Contains(out.String(), "very-secret-value") || !strings.Contains(out.String(), "THREADLINE_INTERCOM_CLIENT_SECRET="+config.Mask) {
		t.Errorf("printed configuration leaks or misses the secret:\n%s", out.String())
	}
	if strings.Contains(out.String(), "# invalid") {
		t.Errorf("the configuration from the environment is invalid:\n%s", out.String())
	}
}
