// Package summary owns the summarisation engines: turning a conversation's redacted product actions
// (and the summary written before them) into a short English account for the support team.
//
// Narrative is the default engine: deterministic, dependency-free, and careful to say only what
// the actions show. LLM asks an OpenAI-compatible chat-completions API for the summary, behind its
// own circuit breaker, and falls back to another engine (normally Narrative) on any failure.
package summary

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
)

// Engine names, as configured with summary.engine and reported in Result.Engine.
const (
	EngineNarrative = "narrative"
	EngineLLM       = "llm"
)

// Input is what a summary covers: the session so far.
type Input struct {
	ConversationID string
	// Previous is the text of the previous summary of this conversation; it may be empty.
	Previous string
	// PreviousActions are the actions the previous summary covered, when known. Engines that can
	// summarise them directly do so instead of building on the previous text.
	PreviousActions []messages.Action
	// Actions are the actions since the previous summary.
	Actions []messages.Action
}

// Result is a written summary and the engine that wrote it.
type Result struct {
	Text   string
	Engine string // EngineNarrative or EngineLLM
}

// Engine writes a summary of a session so far.
type Engine interface {
	Summarize(ctx context.Context, in Input) (Result, error)
}

// ErrNothingToSummarize is returned when an input has neither actions nor a previous summary.
var ErrNothingToSummarize = errors.New("summary: nothing to summarise")

// Config selects and configures the summarisation engine.
type Config struct {
	Engine string // EngineNarrative or EngineLLM
	LLM    LLMConfig
}

// DefaultConfig returns the configuration the flags default to.
func DefaultConfig() Config {
	return Config{Engine: defaultEngine, LLM: DefaultLLMConfig()}
}

const defaultEngine = EngineNarrative

// ErrUnknownEngine is returned by Validate for an engine name other than narrative or llm.
var ErrUnknownEngine = errors.New("summary: unknown engine")

// RegisterFlags registers summary.engine and the summary.llm-* flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Engine, "summary.engine", defaultEngine,
		"summarisation engine: narrative (deterministic, built in) or llm (OpenAI-compatible API, falls back to narrative)")
	c.LLM.RegisterFlags(fs)
}

// Validate checks the engine name, and the LLM settings when the LLM engine is selected.
func (c Config) Validate() error {
	switch c.Engine {
	case EngineNarrative:
		return nil
	case EngineLLM:
		return c.LLM.Validate()
	}
	return fmt.Errorf("%w %q (want %s or %s)", ErrUnknownEngine, c.Engine, EngineNarrative, EngineLLM)
}

// New builds the configured engine. The LLM engine falls back to a Narrative engine; hc is the
// HTTP client it calls the API with (nil: a default client; the per-request timeout is
// cfg.LLM.Timeout either way), and its metrics are registered on reg (nil: not registered).
func New(cfg Config, hc *http.Client, log *zap.Logger, reg prometheus.Registerer) (Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid summary config: %w", err)
	}
	if cfg.Engine == EngineLLM {
		return NewLLM(cfg.LLM, hc, NewNarrative(), log, reg), nil
	}
	return NewNarrative(), nil
}

// sessionActions returns the actions in the order they happened, each once: actions replayed from
// Kafka or covered twice (previous and new) are dropped by action id.
func sessionActions(lists ...[]messages.Action) []messages.Action {
	var out []messages.Action
	seen := make(map[string]bool)
	for _, list := range lists {
		for _, a := range list {
			if a.ActionID != "" {
				if seen[a.ActionID] {
					continue
				}
				seen[a.ActionID] = true
			}
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].EventTime.Before(out[j].EventTime) })
	return out
}
