// Package intercom owns everything Threadline says to and hears from Intercom: the REST client the
// notewriter uses (notes, redaction, conversations, contacts, data events), webhook signature
// verification and parsing, and the normalisation of webhook notifications into conversation events.
//
// The client targets one pinned API version (2.14 by default) and the shapes of that version.
package intercom

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

// Defaults of Config.
const (
	DefaultAPIBase         = "https://api.intercom.io"
	DefaultVersion         = "2.14"
	DefaultTimeout         = 10 * time.Second
	DefaultMaxRetries      = 2
	DefaultRetryBackoffMin = time.Second
	DefaultRetryBackoffMax = 30 * time.Second
)

// Errors returned by Config.Validate.
var (
	ErrInvalidAPIBase  = errors.New("intercom: api base must be an absolute http(s) URL")
	ErrMissingToken    = errors.New("intercom: access token is required")
	ErrMissingAdminID  = errors.New("intercom: admin id is required")
	ErrMissingVersion  = errors.New("intercom: version is required")
	ErrInvalidTimeout  = errors.New("intercom: timeout must be positive")
	ErrInvalidRetries  = errors.New("intercom: max retries must not be negative")
	ErrInvalidBackoff  = errors.New("intercom: retry backoff must be positive, with min <= max")
	ErrInvalidSessAttr = errors.New("intercom: session attribute and URL parameter must not contain spaces")
)

// Config configures the REST client.
type Config struct {
	APIBase         string        // regional base URL: https://api.intercom.io, https://api.eu.intercom.io, https://api.au.intercom.io, or a fake
	Token           config.Secret // access token, sent as a bearer token
	AdminID         string        // the admin that authors notes
	Version         string        // pinned Intercom-Version header
	Timeout         time.Duration // per attempt
	MaxRetries      int           // retries after the first attempt, for 408, 429 and 5xx
	RetryBackoffMin time.Duration // first backoff; doubles per retry
	RetryBackoffMax time.Duration // backoff cap; a 429 asking for a longer wait is returned, not waited for
}

// DefaultConfig returns the client configuration defaults.
func DefaultConfig() Config {
	return Config{
		APIBase:         DefaultAPIBase,
		Version:         DefaultVersion,
		Timeout:         DefaultTimeout,
		MaxRetries:      DefaultMaxRetries,
		RetryBackoffMin: DefaultRetryBackoffMin,
		RetryBackoffMax: DefaultRetryBackoffMax,
	}
}

// RegisterFlags registers the intercom.* client flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.APIBase, "intercom.api-base", d.APIBase, "Intercom REST base URL (regional host, or a fake)")
	config.SecretVar(fs, &c.Token, "intercom.token", "Intercom access token")
	fs.StringVar(&c.AdminID, "intercom.admin-id", d.AdminID, "id of the Intercom admin that authors notes")
	fs.StringVar(&c.Version, "intercom.version", d.Version, "Intercom-Version header to pin")
	config.DurationVar(fs, &c.Timeout, "intercom.timeout", d.Timeout, "timeout of one Intercom request attempt")
	fs.IntVar(&c.MaxRetries, "intercom.max-retries", d.MaxRetries, "retries of a request answered 408, 429 or 5xx")
	config.DurationVar(fs, &c.RetryBackoffMin, "intercom.retry-backoff-min", d.RetryBackoffMin, "first retry backoff (doubles per retry, with jitter)")
	config.DurationVar(fs, &c.RetryBackoffMax, "intercom.retry-backoff-max", d.RetryBackoffMax, "retry backoff cap; longer rate-limit waits are returned to the caller")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q", ErrInvalidAPIBase, c.APIBase)
	}
	if !c.Token.IsSet() {
		return ErrMissingToken
	}
	if c.AdminID == "" {
		return ErrMissingAdminID
	}
	if c.Version == "" {
		return ErrMissingVersion
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: %s", ErrInvalidTimeout, c.Timeout)
	}
	if c.MaxRetries < 0 {
		return fmt.Errorf("%w: %d", ErrInvalidRetries, c.MaxRetries)
	}
	if c.RetryBackoffMin <= 0 || c.RetryBackoffMax < c.RetryBackoffMin {
		return fmt.Errorf("%w: min %s, max %s", ErrInvalidBackoff, c.RetryBackoffMin, c.RetryBackoffMax)
	}
	return nil
}
