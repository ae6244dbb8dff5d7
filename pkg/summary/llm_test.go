package summary

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/messages"
)

// fakeChat is a local OpenAI-compatible chat-completions server. respond answers each request;
// every request is recorded.
type fakeChat struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recordedRequest
	respond  func(w http.ResponseWriter, r *http.Request, n int) // n: 1 for the first request
}

type recordedRequest struct {
	method, path, auth, contentType string
	body                            []byte
}

func newFakeChat(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *fakeChat {
	t.Helper()
	f := &fakeChat{respond: respond}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, recordedRequest{r.Method, r.URL.Path, r.Header.Get("Authorization"),
			r.Header.Get("Content-Type"), body})
		n := len(f.requests)
		f.mu.Unlock()
		f.respond(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeChat) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeChat) request(t *testing.T, i int) recordedRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.requests) {
		t.Fatalf("fake chat server got %d requests, want at least %d", len(f.requests), i+1)
	}
	return f.requests[i]
}

// reply answers with a chat completion whose content is text.
func reply(text string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text}}},
		})
	}
}

func status(code int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		http.Error(w, `{"error":{"message":"upstream failure"}}`, code)
	}
}

func testLLMConfig(baseURL string) LLMConfig {
	cfg := DefaultLLMConfig()
	cfg.BaseURL = baseURL + "/v1"
	cfg.Model = "test-model"
	cfg.APIKey = config.NewSecret("sk-test-key")
	cfg.Timeout = 2 * time.Second
	return cfg
}

func newTestLLM(t *testing.T, cfg LLMConfig, hc *http.Client) (*LLM, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return NewLLM(cfg, hc, NewNarrative(), zaptest.NewLogger(t), reg), reg
}

// metricValue reads a counter or gauge from reg; labels are name, value pairs.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func narrativeOf(t *testing.T, in Input) string {
	t.Helper()
	res, err := NewNarrative().Summarize(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return res.Text
}

func TestLLMSuccess(t *testing.T) {
	const modelSummary = "The user chose the Pro plan, hit a payment validation error at checkout, and went to billing settings."
	srv := newFakeChat(t, reply("  "+modelSummary+"\n"))
	cfg := testLLMConfig(srv.URL)
	llm, reg := newTestLLM(t, cfg, srv.Client())

	res, err := llm.Summarize(context.Background(), Input{ConversationID: "conv-1", Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != EngineLLM || res.Text != modelSummary {
		t.Errorf("result = %+v, want the model's summary from the llm engine", res)
	}

	req := srv.request(t, 0)
	if req.method != http.MethodPost || req.path != "/v1/chat/completions" {
		t.Errorf("request = %s %s, want POST /v1/chat/completions", req.method, req.path)
	}
	if req.auth != "Bearer sk-test-key" || req.contentType != "application/json" {
		t.Errorf("headers: Authorization %q, Content-Type %q", req.auth, req.contentType)
	}
	var body struct {
		Model       string        `json:"model"`
		MaxTokens   int           `json:"max_tokens"`
		Temperature *float64      `json:"temperature"`
		Messages    []chatMessage `json:"messages"`
	}
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatalf("request body is not JSON: %v", err)
	}
	if body.Model != "test-model" || body.MaxTokens != cfg.MaxTokens || body.Temperature == nil || *body.Temperature != cfg.Temperature {
		t.Errorf("request = model %q, max_tokens %d, temperature %v", body.Model, body.MaxTokens, body.Temperature)
	}
	if len(body.Messages) != 2 || body.Messages[0].Role != "system" || body.Messages[0].Content != DefaultSystemPrompt ||
		body.Messages[1].Role != "user" {
		t.Fatalf("messages = %+v, want the system prompt and one user message", body.Messages)
	}
	for _, line := range []string{
		"10:15:02 User opened the pricing page\n",
		"10:15:05 User clicked Select Pro button on the pricing page\n",
		"10:15:32 User hit an error on the checkout page: card validation failed\n",
		"10:15:54 User left the billing settings page\n",
	} {
		if !strings.Contains(body.Messages[1].Content, line) {
			t.Errorf("prompt lacks %q:\n%s", line, body.Messages[1].Content)
		}
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "success"); got != 1 {
		t.Errorf("success requests = %v, want 1", got)
	}
	if got := metricValue(t, reg, "threadline_summary_llm_fallbacks_total"); got != 0 {
		t.Errorf("fallbacks = %v, want 0", got)
	}
}

// The model sees the redacted action sentences and the previous summary, nothing else: no ids,
// paths, event names, targets, details or conversation ids.
func TestLLMPromptHasOnlyRedactedActionText(t *testing.T) {
	srv := newFakeChat(t, reply("A summary."))
	llm, _ := newTestLLM(t, testLLMConfig(srv.URL), srv.Client())
	at := time.Date(2025, 3, 4, 10, 15, 32, 0, time.UTC)
	raw := messages.Action{
		ActionID: "act-raw-id-7f3a", SessionID: "sess-raw-id-b1ec", EventTime: at,
		Event: "payment_validation_failed", Kind: messages.KindError, Page: "checkout page",
		Path: "/checkout/raw-path-9c2d", Target: "raw-target-4e1b", Detail: "raw-detail-5d6e",
		Text: "User hit an error on the checkout page: payment validation failed\n[2] injected line",
	}
	older := messages.Action{ActionID: "act-older", EventTime: at.Add(-time.Minute), Kind: messages.KindPageview,
		Page: "pricing page", Text: "User opened the older page"}

	in := Input{ConversationID: "conv-raw-id-0a1b", Previous: "The user opened the pricing page.",
		PreviousActions: []messages.Action{older}, Actions: []messages.Action{raw}}
	if _, err := llm.Summarize(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	body := string(srv.request(t, 0).body)
	for _, secret := range []string{"act-raw-id-7f3a", "sess-raw-id-b1ec", "payment_validation_failed",
		"raw-path-9c2d", "raw-target-4e1b", "raw-detail-5d6e", "conv-raw-id-0a1b", "older page"} {
		if strings.Contains(body, secret) {
			t.Errorf("request body contains %q:\n%s", secret, body)
		}
	}
	for _, want := range []string{"The user opened the pricing page.",
		`10:15:32 User hit an error on the checkout page: payment validation failed [2] injected line\n`} {
		if !strings.Contains(body, want) {
			t.Errorf("request body lacks %q:\n%s", want, body)
		}
	}

	// Without a previous summary the previous actions are sent instead, still as sentences only.
	in.Previous = ""
	if _, err := llm.Summarize(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if body := string(srv.request(t, 1).body); !strings.Contains(body, `10:14:32 User opened the older page\n10:15:32 User hit`) {
		t.Errorf("request without a previous summary lacks the previous actions:\n%s", body)
	}
}

func TestLLMFallsBackToNarrative(t *testing.T) {
	tests := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, int)
		outcome string
	}{
		{"slow past the timeout", func(w http.ResponseWriter, r *http.Request, _ int) {
			select {
			case <-r.Context().Done(): // the client gave up
			case <-time.After(10 * time.Second):
			}
		}, "timeout"},
		{"500", status(http.StatusInternalServerError), "http_error"},
		{"429", status(http.StatusTooManyRequests), "http_error"},
		{"malformed JSON", func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices": [{"message": {"content": "cut off`)
		}, "malformed"},
		{"empty choices", func(w http.ResponseWriter, _ *http.Request, _ int) {
			_, _ = io.WriteString(w, `{"id":"chatcmpl-1","choices":[]}`)
		}, "malformed"},
		{"empty content", reply("   "), "malformed"},
		{"HTML error page", func(w http.ResponseWriter, _ *http.Request, _ int) {
			_, _ = io.WriteString(w, "<html><body>Bad gateway</body></html>")
		}, "malformed"},
	}
	in := Input{ConversationID: "conv-1", Actions: checkoutJourney(t)}
	want := narrativeOf(t, in)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeChat(t, tt.respond)
			cfg := testLLMConfig(srv.URL)
			cfg.Timeout = 100 * time.Millisecond
			llm, reg := newTestLLM(t, cfg, srv.Client())

			res, err := llm.Summarize(context.Background(), in)
			if err != nil {
				t.Fatalf("Summarize: %v", err)
			}
			if res.Engine != EngineNarrative || res.Text != want {
				t.Errorf("result = %+v, want the narrative summary", res)
			}
			if srv.hits() != 1 {
				t.Errorf("server hits = %d, want 1", srv.hits())
			}
			if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", tt.outcome); got != 1 {
				t.Errorf("requests{outcome=%q} = %v, want 1", tt.outcome, got)
			}
			if got := metricValue(t, reg, "threadline_summary_llm_fallbacks_total"); got != 1 {
				t.Errorf("fallbacks = %v, want 1", got)
			}
		})
	}
}

func TestLLMFallsBackWhenServerIsDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there now
	llm, reg := newTestLLM(t, testLLMConfig(base), nil)
	res, err := llm.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != EngineNarrative {
		t.Errorf("engine = %q, want narrative", res.Engine)
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "transport"); got != 1 {
		t.Errorf("requests{outcome=transport} = %v, want 1", got)
	}
}

// After the configured number of failures in a row the breaker opens: summaries still come
// back (from the narrative engine) but no longer reach the server.
func TestLLMBreakerOpensAndStopsCalls(t *testing.T) {
	srv := newFakeChat(t, status(http.StatusServiceUnavailable))
	cfg := testLLMConfig(srv.URL)
	cfg.Breaker = BreakerConfig{Failures: 3, OpenFor: time.Hour, HalfOpenRequests: 1}
	llm, reg := newTestLLM(t, cfg, srv.Client())
	in := Input{Actions: checkoutJourney(t)}
	want := narrativeOf(t, in)

	for i := range 7 {
		res, err := llm.Summarize(context.Background(), in)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if res.Engine != EngineNarrative || res.Text != want {
			t.Fatalf("call %d: result = %+v, want the narrative summary", i, res)
		}
	}
	if srv.hits() != 3 {
		t.Errorf("server hits = %d, want 3 (the breaker opens after 3 failures)", srv.hits())
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "breaker_open"); got != 4 {
		t.Errorf("requests{outcome=breaker_open} = %v, want 4", got)
	}
	if got := metricValue(t, reg, "threadline_summary_llm_breaker_state"); got != 2 {
		t.Errorf("breaker state = %v, want 2 (open)", got)
	}
}

// Once the open period is over, a trial request goes through; its success closes the breaker.
func TestLLMBreakerRecovers(t *testing.T) {
	var healthy sync.Mutex // held while the server fails
	failing := true
	srv := newFakeChat(t, func(w http.ResponseWriter, r *http.Request, n int) {
		healthy.Lock()
		fail := failing
		healthy.Unlock()
		if fail {
			status(http.StatusBadGateway)(w, r, n)
			return
		}
		reply("Recovered summary.")(w, r, n)
	})
	cfg := testLLMConfig(srv.URL)
	cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: 20 * time.Millisecond, HalfOpenRequests: 1}
	llm, reg := newTestLLM(t, cfg, srv.Client())
	in := Input{Actions: checkoutJourney(t)}
	for range 2 {
		if _, err := llm.Summarize(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "threadline_summary_llm_breaker_state"); got != 2 {
		t.Fatalf("breaker state after 2 failures = %v, want 2 (open)", got)
	}
	healthy.Lock()
	failing = false
	healthy.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := llm.Summarize(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Engine == EngineLLM {
			if res.Text != "Recovered summary." {
				t.Errorf("text = %q", res.Text)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the breaker never let a trial request through")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := metricValue(t, reg, "threadline_summary_llm_breaker_state"); got != 0 {
		t.Errorf("breaker state after a successful trial = %v, want 0 (closed)", got)
	}
	if srv.hits() != 3 {
		t.Errorf("server hits = %d, want 3 (two failures, one trial)", srv.hits())
	}
}

// A caller that gives up is not the API's fault: the summary still falls back, and the breaker
// does not count it.
func TestLLMCallerCancellationDoesNotTripBreaker(t *testing.T) {
	srv := newFakeChat(t, reply("Model summary."))
	cfg := testLLMConfig(srv.URL)
	cfg.Breaker = BreakerConfig{Failures: 1, OpenFor: time.Hour, HalfOpenRequests: 1}
	llm, reg := newTestLLM(t, cfg, srv.Client())
	in := Input{Actions: checkoutJourney(t)}

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		res, err := llm.Summarize(canceled, in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Engine != EngineNarrative {
			t.Errorf("engine = %q, want narrative", res.Engine)
		}
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "canceled"); got != 3 {
		t.Errorf("requests{outcome=canceled} = %v, want 3", got)
	}
	res, err := llm.Summarize(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != EngineLLM {
		t.Errorf("after cancellations the breaker is not closed: engine = %q", res.Engine)
	}
}

func TestLLMWithoutNewActionsDoesNotCallServer(t *testing.T) {
	srv := newFakeChat(t, reply("Model summary."))
	llm, _ := newTestLLM(t, testLLMConfig(srv.URL), srv.Client())
	res, err := llm.Summarize(context.Background(), Input{Previous: "The user opened the pricing page."})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "The user opened the pricing page." || srv.hits() != 0 {
		t.Errorf("result = %+v with %d server hits, want the previous summary and none", res, srv.hits())
	}
	if _, err := llm.Summarize(context.Background(), Input{}); !errors.Is(err, ErrNothingToSummarize) {
		t.Errorf("empty input: err = %v, want ErrNothingToSummarize", err)
	}
}

// engineFunc adapts a function to Engine.
type engineFunc func(context.Context, Input) (Result, error)

func (f engineFunc) Summarize(ctx context.Context, in Input) (Result, error) { return f(ctx, in) }

func TestLLMReportsWhenFallbackFailsToo(t *testing.T) {
	srv := newFakeChat(t, status(http.StatusInternalServerError))
	broken := errors.New("fallback broken")
	llm := NewLLM(testLLMConfig(srv.URL), srv.Client(),
		engineFunc(func(context.Context, Input) (Result, error) { return Result{}, broken }), zaptest.NewLogger(t), nil)
	_, err := llm.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "500") {
		t.Errorf("err = %v, want the fallback's error and the API's status", err)
	}
}

func TestLLMRequestShapeOptions(t *testing.T) {
	srv := newFakeChat(t, reply("ok"))
	cfg := testLLMConfig(srv.URL)
	cfg.BaseURL = srv.URL + "/custom/chat/completions/" // a full endpoint is used as is
	cfg.APIKey = config.Secret{}
	cfg.Temperature = -1
	cfg.PromptTemplate = "Session:{{range .Actions}} {{.Text}};{{end}}"
	cfg.SystemPrompt = "Be brief."
	llm, _ := newTestLLM(t, cfg, srv.Client())
	in := Input{Actions: checkoutJourney(t)[:2]}
	if _, err := llm.Summarize(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	req := srv.request(t, 0)
	if req.path != "/custom/chat/completions" || req.auth != "" {
		t.Errorf("request to %s with Authorization %q, want /custom/chat/completions and none", req.path, req.auth)
	}
	var body map[string]any
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["temperature"]; ok {
		t.Errorf("temperature sent although negative: %s", req.body)
	}
	msgs, _ := body["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("messages = %v", body["messages"])
	}
	system, _ := msgs[0].(map[string]any)
	user, _ := msgs[1].(map[string]any)
	if system["content"] != "Be brief." ||
		user["content"] != "Session: User opened the pricing page; User clicked Select Pro button on the pricing page;" {
		t.Errorf("messages = %v", msgs)
	}
}

// A prompt template that does not parse makes every summary fall back, without tripping the breaker.
func TestLLMBrokenTemplateFallsBack(t *testing.T) {
	srv := newFakeChat(t, reply("ok"))
	cfg := testLLMConfig(srv.URL)
	cfg.PromptTemplate = "{{.Nope"
	llm, reg := newTestLLM(t, cfg, srv.Client())
	res, err := llm.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != EngineNarrative || srv.hits() != 0 {
		t.Errorf("engine %q with %d hits, want narrative and none", res.Engine, srv.hits())
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "prompt"); got != 1 {
		t.Errorf("requests{outcome=prompt} = %v, want 1", got)
	}
}

// Several engines on one registry share their metrics instead of failing to register.
func TestLLMMetricsShareARegistry(t *testing.T) {
	srv := newFakeChat(t, reply("ok"))
	reg := prometheus.NewRegistry()
	for range 2 {
		llm := NewLLM(testLLMConfig(srv.URL), srv.Client(), NewNarrative(), zaptest.NewLogger(t), reg)
		if _, err := llm.Summarize(context.Background(), Input{Actions: checkoutJourney(t)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "threadline_summary_llm_requests_total", "outcome", "success"); got != 2 {
		t.Errorf("requests{outcome=success} = %v, want 2", got)
	}
}

// Summaries can be asked for concurrently (one goroutine per partition).
func TestLLMConcurrentSummaries(t *testing.T) {
	srv := newFakeChat(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%2 == 0 {
			status(http.StatusInternalServerError)(w, r, n)
			return
		}
		reply("Model summary.")(w, r, n)
	})
	cfg := testLLMConfig(srv.URL)
	cfg.Breaker.Failures = 1000
	llm, _ := newTestLLM(t, cfg, srv.Client())
	in := Input{Actions: checkoutJourney(t)}
	var wg sync.WaitGroup
	engines := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			res, err := llm.Summarize(context.Background(), in)
			if err != nil || res.Text == "" {
				t.Errorf("result %+v, err %v", res, err)
			}
			engines <- res.Engine
		})
	}
	wg.Wait()
	close(engines)
	count := map[string]int{}
	for e := range engines {
		count[e]++
	}
	if count[EngineLLM] != 10 || count[EngineNarrative] != 10 {
		t.Errorf("engines = %v, want 10 llm and 10 narrative", count)
	}
}
