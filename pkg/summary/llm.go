package summary

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/metrics"
)

// LLMConfig configures the LLM engine: an OpenAI-compatible chat-completions API.
type LLMConfig struct {
	// BaseURL is the API base, such as https://api.openai.com/v1; requests go to
	// BaseURL/chat/completions (a BaseURL that already ends in /chat/completions is used as is).
	BaseURL string
	Model   string
	// APIKey is sent as a bearer token when set (local servers often need none).
	APIKey config.Secret
	// Timeout bounds one request, reply included.
	Timeout time.Duration
	// SystemPrompt is the system message: what a summary is and the rules it follows.
	// Empty means DefaultSystemPrompt.
	SystemPrompt string
	// PromptTemplate is a text/template for the user message, executed with PromptData.
	// Empty means DefaultPromptTemplate.
	PromptTemplate string
	MaxTokens      int
	// Temperature is sent as is; a negative value leaves it out (the server's default).
	Temperature float64
	Breaker     BreakerConfig
}

// BreakerConfig configures the LLM engine's circuit breaker.
type BreakerConfig struct {
	// Failures is how many failures in a row open the breaker.
	Failures int
	// OpenFor is how long the breaker stays open (every summary falls back) before it lets trial
	// requests through.
	OpenFor time.Duration
	// HalfOpenRequests is how many trial requests may run while half-open; that many successes
	// close the breaker, one failure opens it again.
	HalfOpenRequests int
}

// PromptData is what the prompt template is executed with. It holds only redacted action
// sentences and the previous summary: no ids, paths, event names or properties.
type PromptData struct {
	// Previous is the previous summary; when set, Actions are only the actions since it.
	Previous string
	Actions  []PromptAction
}

// PromptAction is one action as the model sees it.
type PromptAction struct {
	Time string // "15:04:05" UTC, empty when unknown
	Text string // the redacted sentence: "User clicked Select Pro button on the pricing page"
}

// Defaults of the LLM engine, in one place.
const (
	defaultLLMBaseURL       = "https://api.openai.com/v1"
	defaultLLMModel         = "gpt-4o-mini"
	defaultLLMTimeout       = 10 * time.Second
	defaultLLMMaxTokens     = 300
	defaultLLMTemperature   = 0.2
	defaultBreakerFailures  = 5
	defaultBreakerOpenFor   = time.Minute
	defaultBreakerHalfOpen  = 1
	maxLLMReplyBytes        = 1 << 20
	maxPromptActionTextRune = 500
)

// DefaultSystemPrompt is the default system message.
const DefaultSystemPrompt = `You summarise what a user just did in a web product, for the support agent who is about to answer them.
Write one short paragraph of plain English in the past tense, in the order things happened, under 120 words.
Say which pages the user went through and what they were trying to do (the plan they chose, the form they submitted).
State every error exactly as given, and every sign of frustration: rage clicks, repeated clicks, clicks that did nothing.
Give the time span, and end with the page the user is on now, or the page they left last.
Use only the facts in the actions. Do not guess causes, give advice, or address the user.
When a previous summary is given, write one summary of the whole session: the previous summary and the new actions together.`

// DefaultPromptTemplate is the default user message template.
const DefaultPromptTemplate = `{{if .Previous}}Summary of the session so far:
{{.Previous}}

Actions since then (times in UTC):
{{else}}Actions (times in UTC):
{{end}}{{range .Actions}}{{if .Time}}{{.Time}} {{end}}{{.Text}}
{{end}}`

// DefaultLLMConfig returns the LLM settings the flags default to. The system prompt and prompt
// template are left empty, meaning DefaultSystemPrompt and DefaultPromptTemplate, so that
// -print-config stays one line per setting.
func DefaultLLMConfig() LLMConfig {
	return LLMConfig{
		BaseURL:     defaultLLMBaseURL,
		Model:       defaultLLMModel,
		Timeout:     defaultLLMTimeout,
		MaxTokens:   defaultLLMMaxTokens,
		Temperature: defaultLLMTemperature,
		Breaker: BreakerConfig{
			Failures:         defaultBreakerFailures,
			OpenFor:          defaultBreakerOpenFor,
			HalfOpenRequests: defaultBreakerHalfOpen,
		},
	}
}

// RegisterFlags registers the summary.llm-* flags on fs, defaulting to DefaultLLMConfig.
func (c *LLMConfig) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultLLMConfig()
	fs.StringVar(&c.BaseURL, "summary.llm-base-url", d.BaseURL,
		"LLM engine: OpenAI-compatible API base URL; requests go to <base>/chat/completions")
	fs.StringVar(&c.Model, "summary.llm-model", d.Model, "LLM engine: model name")
	config.SecretVar(fs, &c.APIKey, "summary.llm-api-key", "LLM engine: API key, sent as a bearer token (optional)")
	config.DurationVar(fs, &c.Timeout, "summary.llm-timeout", d.Timeout, "LLM engine: timeout of one request")
	fs.StringVar(&c.SystemPrompt, "summary.llm-system-prompt", d.SystemPrompt,
		"LLM engine: system message (empty: the built-in instructions)")
	fs.StringVar(&c.PromptTemplate, "summary.llm-prompt-template", d.PromptTemplate,
		"LLM engine: Go text/template of the user message, with .Previous (previous summary) and .Actions (each .Time and .Text); empty: the built-in template")
	fs.IntVar(&c.MaxTokens, "summary.llm-max-tokens", d.MaxTokens, "LLM engine: max_tokens of a reply")
	fs.Float64Var(&c.Temperature, "summary.llm-temperature", d.Temperature,
		"LLM engine: sampling temperature, 0 to 2; negative leaves it to the server")
	fs.IntVar(&c.Breaker.Failures, "summary.llm-breaker-failures", d.Breaker.Failures,
		"LLM engine: failures in a row that open the circuit breaker")
	config.DurationVar(fs, &c.Breaker.OpenFor, "summary.llm-breaker-open-for", d.Breaker.OpenFor,
		"LLM engine: how long the open breaker sends every summary to the narrative engine before a trial request")
	fs.IntVar(&c.Breaker.HalfOpenRequests, "summary.llm-breaker-half-open-requests", d.Breaker.HalfOpenRequests,
		"LLM engine: trial requests allowed while the breaker is half-open")
}

// Errors Validate returns, for errors.Is.
var (
	ErrInvalidBaseURL        = errors.New("summary: llm base URL must be an absolute http(s) URL")
	ErrMissingModel          = errors.New("summary: llm model is required")
	ErrInvalidTimeout        = errors.New("summary: llm timeout must be positive")
	ErrInvalidPromptTemplate = errors.New("summary: llm prompt template is invalid")
	ErrInvalidMaxTokens      = errors.New("summary: llm max tokens must be positive")
	ErrInvalidTemperature    = errors.New("summary: llm temperature must be at most 2")
	ErrInvalidBreaker        = errors.New("summary: llm breaker settings must be positive")
)

// Validate checks the LLM settings, including that the prompt template executes.
func (c LLMConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%w: %q", ErrInvalidBaseURL, c.BaseURL))
	}
	if strings.TrimSpace(c.Model) == "" {
		errs = append(errs, ErrMissingModel)
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidTimeout, c.Timeout))
	}
	if _, err := parsePrompt(c.withDefaults().PromptTemplate); err != nil {
		errs = append(errs, err)
	}
	if c.MaxTokens <= 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrInvalidMaxTokens, c.MaxTokens))
	}
	if c.Temperature > 2 {
		errs = append(errs, fmt.Errorf("%w: %g", ErrInvalidTemperature, c.Temperature))
	}
	if c.Breaker.Failures <= 0 || c.Breaker.OpenFor <= 0 || c.Breaker.HalfOpenRequests <= 0 {
		errs = append(errs, fmt.Errorf("%w: failures %d, open for %s, half-open requests %d", ErrInvalidBreaker,
			c.Breaker.Failures, c.Breaker.OpenFor, c.Breaker.HalfOpenRequests))
	}
	return errors.Join(errs...)
}

// parsePrompt parses a prompt template and checks it executes with prompt data.
func parsePrompt(text string) (*template.Template, error) {
	t, err := template.New("prompt").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPromptTemplate, err)
	}
	sample := PromptData{Previous: "The user opened the pricing page.",
		Actions: []PromptAction{{Time: "10:15:02", Text: "User opened the pricing page"}}}
	if err := t.Execute(io.Discard, sample); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPromptTemplate, err)
	}
	return t, nil
}

// Errors of one LLM request; any of them makes the engine fall back.
var (
	ErrLLMTimeout        = errors.New("summary: llm request timed out")
	ErrLLMStatus         = errors.New("summary: llm answered with an error status")
	ErrLLMMalformedReply = errors.New("summary: llm reply is malformed")
	errCallerCanceled    = errors.New("summary: caller canceled the llm request")
)

// LLM is the engine that asks an OpenAI-compatible chat-completions API for the summary. It
// sends only the previous summary and the redacted action sentences, runs every request through
// its own circuit breaker, and falls back to another engine on any failure.
type LLM struct {
	cfg       LLMConfig
	endpoint  string
	hc        *http.Client
	fallback  Engine
	log       *zap.Logger
	prompt    *template.Template
	promptErr error
	breaker   *gobreaker.CircuitBreaker[string]
	metrics   llmMetrics
}

// NewLLM returns the LLM engine. Zero settings in cfg take their defaults; cfg should have passed
// Validate (a prompt template that does not parse makes every summary fall back). hc nil means a
// default client; fallback writes the summary whenever the API cannot (normally a Narrative);
// metrics are registered on reg unless it is nil.
func NewLLM(cfg LLMConfig, hc *http.Client, fallback Engine, log *zap.Logger, reg prometheus.Registerer) *LLM {
	cfg = cfg.withDefaults()
	if hc == nil {
		hc = &http.Client{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	if fallback == nil {
		fallback = NewNarrative()
	}
	l := &LLM{
		cfg:      cfg,
		endpoint: chatCompletionsURL(cfg.BaseURL),
		hc:       hc,
		fallback: fallback,
		log:      log.With(zap.String("engine", EngineLLM), zap.String("model", cfg.Model)),
		metrics:  newLLMMetrics(reg, log),
	}
	l.prompt, l.promptErr = parsePrompt(cfg.PromptTemplate)
	if l.promptErr != nil {
		l.log.Error("llm prompt template does not parse; every summary will fall back", zap.Error(l.promptErr))
	}
	l.breaker = gobreaker.NewCircuitBreaker[string](gobreaker.Settings{
		Name:        "summary-llm",
		MaxRequests: uint32(cfg.Breaker.HalfOpenRequests),
		Timeout:     cfg.Breaker.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(cfg.Breaker.Failures)
		},
		IsExcluded: func(err error) bool {
			// Not the API's fault: the caller gave up, or the prompt template is broken.
			return errors.Is(err, errCallerCanceled) || errors.Is(err, ErrInvalidPromptTemplate)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			l.metrics.breakerState.Set(float64(to))
			l.log.Warn("llm circuit breaker changed state", zap.Stringer("from", from), zap.Stringer("to", to))
		},
	})
	l.metrics.breakerState.Set(float64(gobreaker.StateClosed))
	return l
}

func (c LLMConfig) withDefaults() LLMConfig {
	d := DefaultLLMConfig()
	if c.BaseURL == "" {
		c.BaseURL = d.BaseURL
	}
	if c.Model == "" {
		c.Model = d.Model
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if strings.TrimSpace(c.SystemPrompt) == "" {
		c.SystemPrompt = DefaultSystemPrompt
	}
	if strings.TrimSpace(c.PromptTemplate) == "" {
		c.PromptTemplate = DefaultPromptTemplate
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = d.MaxTokens
	}
	if c.Breaker.Failures <= 0 {
		c.Breaker.Failures = d.Breaker.Failures
	}
	if c.Breaker.OpenFor <= 0 {
		c.Breaker.OpenFor = d.Breaker.OpenFor
	}
	if c.Breaker.HalfOpenRequests <= 0 {
		c.Breaker.HalfOpenRequests = d.Breaker.HalfOpenRequests
	}
	return c
}

func chatCompletionsURL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/chat/completions") {
		return base
	}
	return base + "/chat/completions"
}

// Summarize implements Engine: the API's summary, or the fallback engine's on any failure.
// An input with no new actions goes straight to the fallback (there is nothing new to ask about).
func (l *LLM) Summarize(ctx context.Context, in Input) (Result, error) {
	if len(in.Actions) == 0 {
		return l.fallback.Summarize(ctx, in)
	}
	text, err := l.breaker.Execute(func() (string, error) { return l.complete(ctx, in) })
	outcome := outcomeOf(err)
	l.metrics.requests.WithLabelValues(outcome).Inc()
	if err == nil {
		return Result{Text: text, Engine: EngineLLM}, nil
	}
	l.metrics.fallbacks.Inc()
	level := zap.WarnLevel
	if outcome == "breaker_open" {
		level = zap.DebugLevel // the state change was logged; do not log every summary while open
	}
	l.log.Log(level, "llm summary failed; using the fallback engine",
		zap.String("conversation_id", in.ConversationID), zap.String("outcome", outcome), zap.Error(err))
	res, ferr := l.fallback.Summarize(ctx, in)
	if ferr != nil {
		return Result{}, fmt.Errorf("summary: llm failed (%v), and so did the fallback: %w", err, ferr)
	}
	return res, nil
}

// outcomeOf names a request's result for the requests metric.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "breaker_open"
	case errors.Is(err, ErrLLMTimeout):
		return "timeout"
	case errors.Is(err, ErrLLMStatus):
		return "http_error"
	case errors.Is(err, ErrLLMMalformedReply):
		return "malformed"
	case errors.Is(err, errCallerCanceled):
		return "canceled"
	case errors.Is(err, ErrInvalidPromptTemplate):
		return "prompt"
	}
	return "transport"
}

// The chat-completions wire format: only the fields this engine uses.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	MaxTokens   int           `json:"max_tokens"`
	Temperature *float64      `json:"temperature,omitempty"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

// complete makes one chat-completions request and returns the summary it answers with.
func (l *LLM) complete(ctx context.Context, in Input) (string, error) {
	if l.promptErr != nil {
		return "", l.promptErr
	}
	var prompt bytes.Buffer
	if err := l.prompt.Execute(&prompt, promptData(in)); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidPromptTemplate, err)
	}
	body := chatRequest{
		Model: l.cfg.Model,
		Messages: []chatMessage{
			{Role: "system", Content: l.cfg.SystemPrompt},
			{Role: "user", Content: prompt.String()},
		},
		MaxTokens: l.cfg.MaxTokens,
	}
	if l.cfg.Temperature >= 0 {
		t := l.cfg.Temperature
		body.Temperature = &t
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("summary: encode llm request: %w", err)
	}

	reqCtx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, l.endpoint, bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("summary: build llm request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if l.cfg.APIKey.IsSet() {
		req.Header.Set("Authorization", "Bearer "+l.cfg.APIKey.Reveal())
	}

	start := time.Now()
	defer func() { l.metrics.duration.Observe(time.Since(start).Seconds()) }()
	resp, err := l.hc.Do(req)
	if err != nil {
		return "", l.requestError(ctx, reqCtx, "send", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLLMReplyBytes+1))
	if err != nil {
		return "", l.requestError(ctx, reqCtx, "read reply", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("%w: %d %s", ErrLLMStatus, resp.StatusCode, snippet(data))
	}
	if len(data) > maxLLMReplyBytes {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrLLMMalformedReply, maxLLMReplyBytes)
	}
	var reply chatResponse
	if err := json.Unmarshal(data, &reply); err != nil {
		return "", fmt.Errorf("%w: %w", ErrLLMMalformedReply, err)
	}
	if len(reply.Choices) == 0 {
		return "", fmt.Errorf("%w: no choices", ErrLLMMalformedReply)
	}
	text := strings.TrimSpace(reply.Choices[0].Message.Content)
	if text == "" {
		return "", fmt.Errorf("%w: empty content (finish reason %q)", ErrLLMMalformedReply, reply.Choices[0].FinishReason)
	}
	return text, nil
}

// requestError classifies a failed send or read: the caller gave up, the request timed out, or
// the transport failed.
func (l *LLM) requestError(ctx, reqCtx context.Context, stage string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %s: %w", errCallerCanceled, stage, err)
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w after %s: %s: %w", ErrLLMTimeout, l.cfg.Timeout, stage, err)
	}
	return fmt.Errorf("summary: llm request: %s: %w", stage, err)
}

func snippet(data []byte) string {
	const max = 200
	s := strings.TrimSpace(string(data))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// promptData is what the model is told: the previous summary, if any, and the redacted sentence
// and time of each action since (all actions, when there is no previous summary).
func promptData(in Input) PromptData {
	d := PromptData{Previous: strings.TrimSpace(in.Previous)}
	actions := sessionActions(in.Actions)
	if d.Previous == "" {
		actions = sessionActions(in.PreviousActions, in.Actions)
	}
	for _, a := range actions {
		p := PromptAction{Text: promptText(a.Text)}
		if !a.EventTime.IsZero() {
			p.Time = a.EventTime.UTC().Format("15:04:05")
		}
		if p.Text != "" {
			d.Actions = append(d.Actions, p)
		}
	}
	return d
}

// promptText keeps an action sentence on one line and bounded in length.
func promptText(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > maxPromptActionTextRune {
		text = string(r[:maxPromptActionTextRune]) + "…"
	}
	return text
}

// llmMetrics are the LLM engine's Prometheus metrics.
type llmMetrics struct {
	requests     *prometheus.CounterVec
	fallbacks    prometheus.Counter
	duration     prometheus.Histogram
	breakerState prometheus.Gauge
}

func newLLMMetrics(reg prometheus.Registerer, log *zap.Logger) llmMetrics {
	return llmMetrics{
		requests: register(reg, log, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "threadline_summary_llm_requests_total",
			Help: "LLM summary attempts by outcome: success, timeout, http_error, malformed, transport, breaker_open, canceled, prompt.",
		}, []string{"outcome"})),
		fallbacks: register(reg, log, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_summary_llm_fallbacks_total",
			Help: "Summaries the fallback engine wrote because the LLM engine could not.",
		})),
		duration: register(reg, log, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "threadline_summary_llm_request_duration_seconds",
			Help:    "Duration of chat-completions requests, failed ones included.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32},
		})),
		breakerState: register(reg, log, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_summary_llm_breaker_state",
			Help: "State of the LLM engine's circuit breaker: 0 closed, 1 half-open, 2 open.",
		})),
	}
}

// register registers c on reg, sharing the collector already registered under its name, so that
// several engines built on one registry share their metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, log *zap.Logger, c C) C {
	c, err := metrics.Register(reg, c)
	if err != nil {
		log.Error("summary: register metric", zap.Error(err))
	}
	return c
}
