package ops

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

const (
	opsToken        = "ops-intercom-token"
	opsAdminID      = "7310045"
	opsClientSecret = "ops-client-secret"
	opsProjectToken = "phc_ops"
)

// fakeLLM answers OpenAI-compatible chat completions with a fixed summary.
func fakeLLM(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"The user chose the Pro plan and the card validation failed at checkout."},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// scrape returns the metric families a service serves, by name, with their type.
func scrape(t *testing.T, adminAddr string) map[string]string {
	t.Helper()
	status, body := get(t, "http://"+adminAddr+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", adminAddr, status)
	}
	return families(body)
}

// waitForMetric polls a service's /metrics until it serves family, calling poke (which makes the
// event happen) at once and again every second while it does not.
func waitForMetric(t *testing.T, s *system, service, family string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	var poked time.Time
	for {
		if _, ok := scrape(t, s.Admins[service])[family]; ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served %s\nlogs:\n%s", service, family, s.Logs.String())
		}
		if poke != nil && time.Since(poked) > time.Second {
			poke()
			poked = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// post sends body to url with headers and returns the status.
func post(t *testing.T, url string, body []byte, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// The four binaries run through what production sees — PostHog events on the raw topic and through
// the capture endpoint, a conversation and its webhook, notes, an LLM summary and redactions, dead
// letters in every stage, Intercom failing for a moment, contact lookups, a Redis outage and a
// notewriter restarted with a replay — and then every metric the README lists is served by its
// binaries with its type, and every threadline_* metric they serve is in the README.
func TestMetricsListedInTheReadmeAreServed(t *testing.T) {
	fake := fakeintercom.New(fakeintercom.Options{Token: opsToken, AdminID: opsAdminID, ClientSecret: opsClientSecret})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	llm := fakeLLM(t)
	httpAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ingestURL := "http://" + httpAddr
	// Redis keeps its data across the outage below, as a production Redis with persistence does.
	s := newSystemOn(t, redistest.StartWith(t, redistest.PersistentArgs()...),
		"THREADLINE_HTTP_ADDR="+httpAddr,
		"THREADLINE_POSTHOG_TOKENS="+opsProjectToken+",phc_exampleToken",
		"THREADLINE_INTERCOM_API_BASE="+api.URL,
		"THREADLINE_INTERCOM_TOKEN="+opsToken,
		"THREADLINE_INTERCOM_ADMIN_ID="+opsAdminID,
		"THREADLINE_INTERCOM_CLIENT_SECRET="+opsClientSecret,
		"THREADLINE_INTERCOM_RETRY_BACKOFF_MIN=10ms",
		"THREADLINE_INTERCOM_RETRY_BACKOFF_MAX=50ms",
		"THREADLINE_NOTES_DEBOUNCE=100ms",
		"THREADLINE_NOTES_MAX_WAIT=500ms",
		"THREADLINE_NOTES_RETRY_MIN=20ms",
		"THREADLINE_NOTES_RETRY_MAX=200ms",
		"THREADLINE_SUMMARY_THRESHOLD=6",
		"THREADLINE_SUMMARY_ENGINE=llm",
		"THREADLINE_SUMMARY_LLM_BASE_URL="+llm.URL+"/v1",
		"THREADLINE_CONSUMER_RETRY_BACKOFF_MAX=500ms",
		"THREADLINE_CONSUMER_COMMIT_INTERVAL=200ms",
	)
	s.start(t, stack.Services...)
	s.waitReady(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// posthog-js-shaped requests to the capture endpoint: one accepted, one with an unknown token.
	capture := func(token string) int {
		body := fmt.Sprintf(`{"api_key":%q,"batch":[{"uuid":%q,"event":"$pageview","properties":{"distinct_id":"ops-capture-user",`+
			`"$session_id":"ops-capture-session","$current_url":"https://app.example.com/pricing"},"offset":10}],"sent_at":%q}`,
			token, posthog.NewUUIDv7(time.Now()), time.Now().UTC().Format(time.RFC3339Nano))
		return post(t, ingestURL+"/batch/", []byte(body), map[string]string{"Content-Type": "application/json"})
	}
	if code := capture(opsProjectToken); code != http.StatusOK {
		t.Fatalf("capture with the project token: %d", code)
	}
	if code := capture("phc_someoneElse"); code != http.StatusUnauthorized {
		t.Fatalf("capture with an unknown token: %d, want 401", code)
	}

	// The journey: anonymous browsing, a conversation, the rest; notes, an LLM summary, redactions.
	j, err := demo.Fresh(time.Now().Add(-time.Minute), 1)
	if err != nil {
		t.Fatal(err)
	}
	produceRaw := func(key string, values ...[]byte) {
		recs := make([]*kgo.Record, len(values))
		for i, v := range values {
			recs[i] = &kgo.Record{Topic: s.Topics.PosthogRaw, Key: []byte(key), Value: v}
		}
		kafkatest.Produce(t, s.Brokers, recs...)
	}
	for _, ev := range j.Events[:demo.IdentifyIndex+1] {
		produceRaw(j.AnonID, ev.Value)
	}
	kafkatest.Eventually(t, 30*time.Second, func() bool {
		return totalRecords(t, s.Brokers, s.Topics.ProductActions) >= demo.IdentifyIndex
	}, "ingest did not turn the journey into actions")
	conv := fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: j.UserID, Email: j.Email, Name: "Jane Doe", Role: "user"},
		"<p>I can't change my plan.</p>", "https://app.acme.dev/checkout?plan=pro", nil)
	if err := fake.DeliverWebhook(ctx, ingestURL+"/webhooks/intercom", "conversation.user.created", conv.ID); err != nil {
		t.Fatal(err)
	}
	for _, ev := range j.Events[demo.IdentifyIndex+1:] {
		produceRaw(j.UserID, ev.Value)
	}
	kafkatest.Eventually(t, 60*time.Second, func() bool {
		for _, part := range fake.Notes(conv.ID) {
			if part.Redacted {
				return true
			}
		}
		return false
	}, "no summary replaced the journey's notes\nlogs:\n%s", s.Logs.String())

	// A forged webhook.
	if code := post(t, ingestURL+"/webhooks/intercom", []byte(`{"type":"notification_event","topic":"ping"}`),
		map[string]string{"Content-Type": "application/json", "X-Hub-Signature": "sha1=" + strings.Repeat("0", 40)}); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook answered %d, want 401", code)
	}
	// A signed ping, as Intercom sends when the webhook is saved.
	ping := []byte(`{"type":"notification_event","app_id":"ab12cd34","data":{"type":"notification_event_data","item":{"type":"ping","message":"hi"}},"id":null,"topic":"ping","delivery_attempts":1,"created_at":1795000000}`)
	mac := hmac.New(sha1.New, []byte(opsClientSecret))
	mac.Write(ping)
	if code := post(t, ingestURL+"/webhooks/intercom", ping, map[string]string{
		"Content-Type": "application/json", "X-Hub-Signature": "sha1=" + hex.EncodeToString(mac.Sum(nil)),
	}); code != http.StatusOK {
		t.Fatalf("signed ping answered %d, want 200", code)
	}

	// A visitor without external id or email: ingest looks the contact up over REST, and retries
	// the lookup Intercom answers with a 502.
	lead := 0
	waitForMetric(t, s, "ingest", "threadline_intercom_retries_total", func() {
		lead++
		c := fake.CreateConversation(fakeintercom.ContactSpec{Name: fmt.Sprintf("Visitor %d", lead), Role: "lead"},
			"<p>Hello?</p>", "https://app.acme.dev/pricing", nil)
		fake.SetFault(fakeintercom.Fault{ServerErrors: 1})
		if err := fake.DeliverWebhook(ctx, ingestURL+"/webhooks/intercom", "conversation.user.created", c.ID); err != nil {
			t.Fatal(err)
		}
	})
	fake.SetFault(fakeintercom.Fault{})

	// A note Intercom stores but answers 502 for: the notewriter finds it instead of posting again.
	again := 0
	waitForMetric(t, s, "notewriter", "threadline_notes_unknown_outcome_resolutions_total", func() {
		again++
		more, err := demo.Again(j, time.Now().Add(-time.Duration(again)*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		fake.SetFault(fakeintercom.Fault{ServerErrors: 1, AfterProcessing: true})
		produceRaw(j.UserID, more.Events[len(more.Events)-2].Value)
	})
	fake.SetFault(fakeintercom.Fault{})
	// A note Intercom refuses for a moment: the write fails and is retried.
	waitForMetric(t, s, "notewriter", "threadline_notes_flush_errors_total", func() {
		again++
		more, err := demo.Again(j, time.Now().Add(-time.Duration(again)*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		fake.SetFault(fakeintercom.Fault{ServerErrors: 1})
		produceRaw(j.UserID, more.Events[len(more.Events)-2].Value)
	})
	fake.SetFault(fakeintercom.Fault{})

	// Records no stage can decode: each goes to the dead-letter topic.
	for service, topic := range map[string]string{
		"ingest": s.Topics.PosthogRaw, "linker": s.Topics.ProductActions,
		"notewriter": s.Topics.ConversationActions, "summarizer": s.Topics.NotesWritten,
	} {
		kafkatest.ProduceValues(t, s.Brokers, topic, "ops-poison", "this is not a message")
		waitForMetric(t, s, service, "threadline_consumer_dlq_records_total", nil)
	}

	// Redis goes away while the linker has work; it fails, pauses, and carries on when Redis is back.
	s.Redis.Stop()
	more, err := demo.Again(j, time.Now(), 1)
	if err != nil {
		t.Fatal(err)
	}
	produceRaw(j.UserID, more.Events[len(more.Events)-1].Value)
	waitForMetric(t, s, "linker", "threadline_linker_redis_errors_total", nil)
	if err := s.Redis.StartAgain(); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t)

	served := map[string]map[string]string{}
	for _, name := range stack.Services {
		served[name] = scrape(t, s.Admins[name])
	}

	// The notewriter restarts with a replay, as after an Intercom outage: it first restores what
	// Intercom holds from notes.written. What the new process serves counts too.
	if err := s.Stack.Stop("notewriter", 15*time.Second); err != nil {
		t.Fatalf("stop notewriter: %v", err)
	}
	if _, err := s.Stack.Start("notewriter", "THREADLINE_ADMIN_ADDR="+s.Admins["notewriter"], "THREADLINE_REPLAY_FROM=earliest"); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t)
	waitForMetric(t, s, "notewriter", "threadline_notewriter_restored_notes_total", nil)
	for name, typ := range scrape(t, s.Admins["notewriter"]) {
		served["notewriter"][name] = typ
	}

	checkMetricsAgainstReadme(t, served)
	if t.Failed() {
		b, _ := json.MarshalIndent(served, "", "  ")
		t.Logf("served metric families:\n%s", b)
	}
}
