// Package capture owns Threadline's PostHog-compatible capture endpoint: the HTTP routes posthog-js
// and the server SDKs post events to (/e/, /i/v0/e/, /batch/, /capture/, /track/), every body encoding
// they use, the config and flags stubs that keep posthog-js autocapture on, the project token
// allowlist, CORS and size limits. Accepted events are handed to a Publisher in the shape PostHog's
// own capture writes to Kafka (events_plugin_ingestion), so one decoder reads both.
package capture

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/threadline/threadline/pkg/config"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 2 << 20  // event routes, as PostHog capture
	DefaultMaxBatchBodyBytes = 20 << 20 // /batch/, as PostHog capture
	DefaultMaxDecodedBytes   = 20 << 20 // what a compressed or encoded body may inflate to
	DefaultTrustForwardedFor = true
)

// Errors returned by Config.Validate.
var (
	ErrInvalidBodyLimit    = errors.New("capture: body limits must be positive, and the batch limit at least the event limit")
	ErrInvalidDecodedLimit = errors.New("capture: the decoded size limit must be at least the event body limit")
	ErrInvalidToken        = errors.New("capture: project tokens must be non-empty, without spaces, and not personal keys (phx_)")
)

// Config configures the capture endpoint.
type Config struct {
	// Tokens are the accepted project tokens (posthog.tokens, THREADLINE_POSTHOG_TOKENS). Empty accepts
	// any token, which the handler logs once.
	Tokens []string
	// MaxBodyBytes limits the request body of the event routes; MaxBatchBodyBytes that of /batch/.
	MaxBodyBytes      int64
	MaxBatchBodyBytes int64
	// MaxDecodedBytes limits what a body inflates to after gzip, base64 or lz-string decoding.
	MaxDecodedBytes int64
	// TrustForwardedFor takes the client IP from X-Forwarded-For (behind a proxy or load balancer).
	TrustForwardedFor bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:      DefaultMaxBodyBytes,
		MaxBatchBodyBytes: DefaultMaxBatchBodyBytes,
		MaxDecodedBytes:   DefaultMaxDecodedBytes,
		TrustForwardedFor: DefaultTrustForwardedFor,
	}
}

// RegisterFlags registers posthog.tokens and the capture.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	config.StringListVar(fs, &c.Tokens, "posthog.tokens", d.Tokens, "comma-separated PostHog project tokens the capture endpoint accepts (empty: any)")
	fs.Int64Var(&c.MaxBodyBytes, "capture.max-body-bytes", d.MaxBodyBytes, "largest request body on the event routes (413 above)")
	fs.Int64Var(&c.MaxBatchBodyBytes, "capture.max-batch-body-bytes", d.MaxBatchBodyBytes, "largest request body on /batch/ (413 above)")
	fs.Int64Var(&c.MaxDecodedBytes, "capture.max-decoded-bytes", d.MaxDecodedBytes, "largest payload after decompression (413 above)")
	fs.BoolVar(&c.TrustForwardedFor, "capture.trust-forwarded-for", d.TrustForwardedFor, "take the client IP from X-Forwarded-For")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes <= 0 || c.MaxBatchBodyBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("%w: %d and %d", ErrInvalidBodyLimit, c.MaxBodyBytes, c.MaxBatchBodyBytes))
	}
	if c.MaxDecodedBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("%w: %d", ErrInvalidDecodedLimit, c.MaxDecodedBytes))
	}
	for i, t := range c.Tokens {
		if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' }) || strings.HasPrefix(t, personalKeyPrefix) {
			// the value is not repeated: a personal key is a secret
			errs = append(errs, fmt.Errorf("%w: token %d of %d", ErrInvalidToken, i+1, len(c.Tokens)))
		}
	}
	return errors.Join(errs...)
}

// personalKeyPrefix starts PostHog personal API keys, which must never be used to capture.
const personalKeyPrefix = "phx_"
