// Package phrasing owns turning a decoded PostHog event into the readable one-line action Threadline
// writes into a conversation ("User clicked Select Pro button on the pricing page"): naming pages as a
// person would, naming what was clicked without ever naming a value typed, the noise rule that drops
// events nobody needs to read, the identity the linker matches, and the few redacted properties trigger
// rules may use. All text that comes from the product goes through a Redactor.
package phrasing

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/threadline/threadline/pkg/config"
)

// Defaults of Config (the lists are in DefaultConfig).
const (
	DefaultDropUnknownBuiltins = true
	DefaultMaxProperties       = 32
	DefaultMaxLabelLength      = 60
)

// Errors returned by Config.Validate.
var (
	ErrEmptyDropEntry       = errors.New("phrasing: drop lists must not hold empty entries (an empty prefix drops everything)")
	ErrInvalidMaxProperties = errors.New("phrasing: max properties must not be negative")
	ErrInvalidMaxLabel      = errors.New("phrasing: max label length must be at least 8")
)

// Config configures the phraser: the noise rule and what travels with an action.
type Config struct {
	// DropEvents are event names that are noise, exactly.
	DropEvents []string
	// DropPrefixes are event name prefixes that are noise.
	DropPrefixes []string
	// DropUnknownBuiltins makes a $-prefixed event that has no sentence of its own noise (new SDK
	// bookkeeping events); when false it is phrased like a custom event.
	DropUnknownBuiltins bool
	// KeepProperties are built-in ($-prefixed) properties carried on actions when present.
	KeepProperties []string
	// DenyPropertyWords keep a property off an action when its name contains one (case-insensitive).
	DenyPropertyWords []string
	// MaxProperties caps the properties carried on one action (0: none).
	MaxProperties int
	// MaxLabelLength caps, in characters, a label taken from the page (button text, error message).
	MaxLabelLength int
}

// DefaultConfig returns the defaults: the one place they are written.
func DefaultConfig() Config {
	return Config{
		// events that say nothing a support agent needs: performance and flag bookkeeping, replay
		// chunks, person and group updates, heatmap split-offs
		DropEvents: []string{
			"$web_vitals", "$feature_flag_called", "$snapshot", "$set", "$groupidentify", "$opt_in", "$$heatmap",
			"$create_alias", "$bot_pageview", "$feature_view", "$feature_interaction", "$performance_event",
		},
		// PostHog's internal ($$…) and LLM-analytics ($ai_…) events
		DropPrefixes:        []string{"$$", "$ai_"},
		DropUnknownBuiltins: DefaultDropUnknownBuiltins,
		KeepProperties:      []string{"$event_type", "$prev_pageview_duration", "$prev_pageview_pathname", "$screen_name", "$exception_level"},
		DenyPropertyWords: []string{
			"password", "passwd", "secret", "token", "api_key", "apikey", "auth", "cookie", "card", "cvv", "cvc",
			"ssn", "iban", "email", "phone", "address", "birth",
		},
		MaxProperties:  DefaultMaxProperties,
		MaxLabelLength: DefaultMaxLabelLength,
	}
}

// RegisterFlags registers the phrasing.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	config.StringListVar(fs, &c.DropEvents, "phrasing.drop-events", d.DropEvents, "comma-separated event names that are noise (not written as actions)")
	config.StringListVar(fs, &c.DropPrefixes, "phrasing.drop-prefixes", d.DropPrefixes, "comma-separated event name prefixes that are noise")
	fs.BoolVar(&c.DropUnknownBuiltins, "phrasing.drop-unknown-builtins", d.DropUnknownBuiltins, "treat $-prefixed events without a sentence of their own as noise")
	config.StringListVar(fs, &c.KeepProperties, "phrasing.keep-properties", d.KeepProperties, "comma-separated built-in ($) properties carried on actions for trigger rules")
	config.StringListVar(fs, &c.DenyPropertyWords, "phrasing.deny-property-words", d.DenyPropertyWords, "comma-separated words; a property whose name holds one is never carried")
	fs.IntVar(&c.MaxProperties, "phrasing.max-properties", d.MaxProperties, "most properties carried on one action")
	fs.IntVar(&c.MaxLabelLength, "phrasing.max-label-length", d.MaxLabelLength, "most characters of a label taken from the page")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	for _, list := range [][]string{c.DropEvents, c.DropPrefixes} {
		for _, e := range list {
			if strings.TrimSpace(e) == "" {
				errs = append(errs, ErrEmptyDropEntry)
				break
			}
		}
	}
	if c.MaxProperties < 0 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrInvalidMaxProperties, c.MaxProperties))
	}
	if c.MaxLabelLength < 8 {
		errs = append(errs, fmt.Errorf("%w: %d", ErrInvalidMaxLabel, c.MaxLabelLength))
	}
	return errors.Join(errs...)
}
