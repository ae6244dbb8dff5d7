// Package redisclient owns how Threadline connects to Redis: one address is a single server, several
// are a Redis Cluster; password and TLS are options. Everything gets a redis.UniversalClient.
package redisclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/config"
)

// Errors returned by Validate.
var (
	ErrNoAddrs = errors.New("redis: at least one address is required")
	ErrTLSCA   = errors.New("redis: tls CA file is unreadable")
)

// Config configures the Redis connection.
type Config struct {
	Addrs                 []string
	Password              config.Secret
	DB                    int
	TLSEnabled            bool
	TLSCAFile             string
	TLSInsecureSkipVerify bool
	DialTimeout           time.Duration
	ReadTimeout           time.Duration
}

// RegisterFlags registers the redis.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	config.StringListVar(fs, &c.Addrs, "redis.addrs", []string{"localhost:6379"}, "comma-separated Redis addresses; more than one means Redis Cluster")
	config.SecretVar(fs, &c.Password, "redis.password", "Redis password")
	fs.IntVar(&c.DB, "redis.db", 0, "Redis database (single server only)")
	fs.BoolVar(&c.TLSEnabled, "redis.tls-enabled", false, "connect to Redis over TLS")
	fs.StringVar(&c.TLSCAFile, "redis.tls-ca-file", "", "PEM file of the CA that signed the Redis server certificate")
	fs.BoolVar(&c.TLSInsecureSkipVerify, "redis.tls-insecure-skip-verify", false, "skip Redis certificate verification (testing only)")
	fs.DurationVar(&c.DialTimeout, "redis.dial-timeout", 2*time.Second, "Redis dial timeout")
	fs.DurationVar(&c.ReadTimeout, "redis.read-timeout", 2*time.Second, "Redis read timeout")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Addrs) == 0 {
		return ErrNoAddrs
	}
	if c.TLSCAFile != "" {
		if _, err := os.Stat(c.TLSCAFile); err != nil {
			return fmt.Errorf("%w: %v", ErrTLSCA, err)
		}
	}
	return nil
}

// New builds the client; it does not connect until first use.
func New(cfg Config) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:        cfg.Addrs,
		Password:     cfg.Password.Reveal(),
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.ReadTimeout,
	}
	if len(cfg.Addrs) == 1 {
		opts.DB = cfg.DB
	} else {
		opts.IsClusterMode = true
	}
	if cfg.TLSEnabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecureSkipVerify} //nolint:gosec // operator's explicit choice
		if cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrTLSCA, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: no certificates in %s", ErrTLSCA, cfg.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		opts.TLSConfig = tc
	}
	return redis.NewUniversalClient(opts), nil
}

// Ping is a readiness check.
func Ping(rdb redis.UniversalClient) func(ctx context.Context) error {
	return func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
}
