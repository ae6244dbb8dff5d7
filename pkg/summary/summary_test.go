package summary

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/threadline/threadline/pkg/config"
)

func parseFlags(t *testing.T, env map[string]string, args ...string) (Config, *flag.FlagSet) {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("summarizer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, args, lookup); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg, fs
}

func TestConfigDefaults(t *testing.T) {
	cfg, _ := parseFlags(t, nil)
	want := DefaultConfig()
	if cfg.Engine != EngineNarrative || cfg.LLM.BaseURL != want.LLM.BaseURL || cfg.LLM.Model != want.LLM.Model ||
		cfg.LLM.Timeout != want.LLM.Timeout || cfg.LLM.PromptTemplate != "" || cfg.LLM.SystemPrompt != "" || cfg.LLM.MaxTokens != want.LLM.MaxTokens ||
		cfg.LLM.Temperature != want.LLM.Temperature || cfg.LLM.Breaker != want.LLM.Breaker || cfg.LLM.APIKey.IsSet() {
		t.Errorf("flag defaults = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	cfg.Engine = EngineLLM
	if err := cfg.Validate(); err != nil {
		t.Errorf("default llm config invalid: %v", err)
	}
}

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{
		"THREADLINE_SUMMARY_ENGINE":                         "llm",
		"THREADLINE_SUMMARY_LLM_BASE_URL":                   "http://localhost:11434/v1",
		"THREADLINE_SUMMARY_LLM_MODEL":                      "llama3.1",
		"THREADLINE_SUMMARY_LLM_API_KEY":                    "sk-from-env",
		"THREADLINE_SUMMARY_LLM_TIMEOUT":                    "3s",
		"THREADLINE_SUMMARY_LLM_PROMPT_TEMPLATE":            "{{range .Actions}}{{.Text}}\n{{end}}",
		"THREADLINE_SUMMARY_LLM_MAX_TOKENS":                 "150",
		"THREADLINE_SUMMARY_LLM_BREAKER_FAILURES":           "4",
		"THREADLINE_SUMMARY_LLM_BREAKER_OPEN_FOR":           "45s",
		"THREADLINE_SUMMARY_LLM_BREAKER_HALF_OPEN_REQUESTS": "2",
	}
	cfg, fs := parseFlags(t, env, "-summary.llm-model", "qwen2.5")
	if cfg.Engine != EngineLLM || cfg.LLM.BaseURL != "http://localhost:11434/v1" || cfg.LLM.Model != "qwen2.5" ||
		cfg.LLM.APIKey.Reveal() != "sk-from-env" || cfg.LLM.Timeout != 3*time.Second || cfg.LLM.MaxTokens != 150 ||
		cfg.LLM.PromptTemplate != "{{range .Actions}}{{.Text}}\n{{end}}" ||
		cfg.LLM.Breaker != (BreakerConfig{Failures: 4, OpenFor: 45 * time.Second, HalfOpenRequests: 2}) {
		t.Errorf("config = %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var printed bytes.Buffer
	if err := config.Print(&printed, fs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(printed.String(), "sk-from-env") || !strings.Contains(printed.String(), "THREADLINE_SUMMARY_LLM_API_KEY="+config.Mask) {
		t.Errorf("printed config does not mask the API key:\n%s", printed.String())
	}
}

// -print-config writes one line per setting: the defaults hold no line breaks.
func TestConfigPrintsOneLinePerSetting(t *testing.T) {
	_, fs := parseFlags(t, nil)
	var printed bytes.Buffer
	if err := config.Print(&printed, fs); err != nil {
		t.Fatal(err)
	}
	flags := 0
	fs.VisitAll(func(*flag.Flag) { flags++ })
	lines := strings.Split(strings.TrimSuffix(printed.String(), "\n"), "\n")
	if len(lines) != flags {
		t.Errorf("printed %d lines for %d flags:\n%s", len(lines), flags, printed.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "THREADLINE_SUMMARY_") {
			t.Errorf("unexpected line %q", l)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{"unknown engine", func(c *Config) { c.Engine = "gpt" }, ErrUnknownEngine},
		{"relative base URL", func(c *Config) { c.LLM.BaseURL = "api.openai.com/v1" }, ErrInvalidBaseURL},
		{"ftp base URL", func(c *Config) { c.LLM.BaseURL = "ftp://example.com" }, ErrInvalidBaseURL},
		{"no model", func(c *Config) { c.LLM.Model = " " }, ErrMissingModel},
		{"zero timeout", func(c *Config) { c.LLM.Timeout = 0 }, ErrInvalidTimeout},
		{"template syntax", func(c *Config) { c.LLM.PromptTemplate = "{{.Actions" }, ErrInvalidPromptTemplate},
		{"template field", func(c *Config) { c.LLM.PromptTemplate = "{{.ConversationID}}" }, ErrInvalidPromptTemplate},
		{"max tokens", func(c *Config) { c.LLM.MaxTokens = 0 }, ErrInvalidMaxTokens},
		{"temperature", func(c *Config) { c.LLM.Temperature = 2.5 }, ErrInvalidTemperature},
		{"breaker failures", func(c *Config) { c.LLM.Breaker.Failures = 0 }, ErrInvalidBreaker},
		{"breaker open for", func(c *Config) { c.LLM.Breaker.OpenFor = -time.Second }, ErrInvalidBreaker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Engine = EngineLLM
			tt.change(&cfg)
			if err := cfg.Validate(); !errors.Is(err, tt.want) {
				t.Errorf("Validate() = %v, want %v", err, tt.want)
			}
		})
	}
	// The narrative engine does not need valid LLM settings.
	cfg := DefaultConfig()
	cfg.LLM.Model = ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("narrative engine with unset LLM settings: %v", err)
	}
}

func TestNewBuildsTheConfiguredEngine(t *testing.T) {
	log := zaptest.NewLogger(t)
	cfg := DefaultConfig()
	e, err := New(cfg, nil, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.(*Narrative); !ok {
		t.Errorf("engine = %T, want *Narrative", e)
	}

	srv := newFakeChat(t, reply("Model summary."))
	cfg.Engine = EngineLLM
	cfg.LLM = testLLMConfig(srv.URL)
	reg := prometheus.NewRegistry()
	e, err = New(cfg, srv.Client(), log, reg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil || res.Engine != EngineLLM || res.Text != "Model summary." {
		t.Errorf("llm engine result = %+v, %v", res, err)
	}

	// The LLM engine falls back to the narrative engine.
	cfg.LLM.BaseURL = srv.URL + "/missing"
	srv.respond = func(w http.ResponseWriter, r *http.Request, _ int) { http.NotFound(w, r) }
	e, err = New(cfg, srv.Client(), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	res, err = e.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil || res.Engine != EngineNarrative {
		t.Errorf("fallback result = %+v, %v", res, err)
	}

	cfg.Engine = "markov"
	if _, err := New(cfg, nil, log, nil); !errors.Is(err, ErrUnknownEngine) {
		t.Errorf("New with an unknown engine: err = %v, want ErrUnknownEngine", err)
	}
}
