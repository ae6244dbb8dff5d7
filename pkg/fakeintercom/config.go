package fakeintercom

import (
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/threadline/threadline/pkg/config"
)

// Defaults of Config, for the dev stack and docker-compose.
const (
	DefaultAddr         = ":8090"
	DefaultToken        = "fake-intercom-token"
	DefaultAdminID      = "7310045"
	DefaultClientSecret = "fake-intercom-client-secret"
)

// Errors returned by Config.Validate.
var (
	ErrNoAddr         = errors.New("fakeintercom: listen address is required")
	ErrNoToken        = errors.New("fakeintercom: token is required")
	ErrNoAdminID      = errors.New("fakeintercom: admin id is required")
	ErrNoClientSecret = errors.New("fakeintercom: client secret is required")
	ErrBadRateLimit   = errors.New("fakeintercom: rate limit per 10 s must be positive")
)

// Config configures the fake as a standalone server (flags fake.*, env THREADLINE_FAKE_*).
type Config struct {
	Addr            string
	Token           config.Secret
	AdminID         string
	ClientSecret    config.Secret
	RateLimitPer10s int
	WorkspaceID     string
	WebhookURL      string
}

// RegisterFlags registers the fake.* flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "fake.addr", DefaultAddr, "listen address of the fake Intercom")
	c.Token = config.NewSecret(DefaultToken)
	config.SecretVar(fs, &c.Token, "fake.token", "bearer token the fake API accepts")
	fs.StringVar(&c.AdminID, "fake.admin-id", DefaultAdminID, "id of the admin that may author notes")
	c.ClientSecret = config.NewSecret(DefaultClientSecret)
	config.SecretVar(fs, &c.ClientSecret, "fake.client-secret", "client secret that signs webhooks (X-Hub-Signature)")
	fs.IntVar(&c.RateLimitPer10s, "fake.rate-limit-per-10s", DefaultRateLimitPer10s, "API calls allowed per 10-second window")
	fs.StringVar(&c.WorkspaceID, "fake.workspace-id", DefaultWorkspaceID, "workspace id (app_id) in webhooks")
	fs.StringVar(&c.WebhookURL, "fake.webhook-url", "", "default webhook URL of the /_fake/ endpoints, e.g. http://ingest:8080/webhooks/intercom")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return ErrNoAddr
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("fakeintercom: address %q: %w", c.Addr, err)
	}
	if !c.Token.IsSet() {
		return ErrNoToken
	}
	if c.AdminID == "" {
		return ErrNoAdminID
	}
	if !c.ClientSecret.IsSet() {
		return ErrNoClientSecret
	}
	if c.RateLimitPer10s <= 0 {
		return fmt.Errorf("%w: %d", ErrBadRateLimit, c.RateLimitPer10s)
	}
	return nil
}

// Options returns the server options the configuration describes.
func (c Config) Options() Options {
	return Options{
		Token:           c.Token.Reveal(),
		AdminID:         c.AdminID,
		ClientSecret:    c.ClientSecret.Reveal(),
		RateLimitPer10s: c.RateLimitPer10s,
		WorkspaceID:     c.WorkspaceID,
		WebhookURL:      c.WebhookURL,
	}
}
