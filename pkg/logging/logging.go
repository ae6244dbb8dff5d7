// Package logging owns how Threadline binaries log: zap, JSON by default, a level and format from config.
package logging

import (
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ErrBadFormat is returned for an unknown log format.
var ErrBadFormat = errors.New("logging: format must be json or console")

// Config configures the logger.
type Config struct {
	Level  string
	Format string
}

// RegisterFlags registers log.level and log.format.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Format, "log.format", "json", "log format: json or console")
}

// Validate checks the level and format.
func (c Config) Validate() error {
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		return fmt.Errorf("logging: level %q: %w", c.Level, err)
	}
	if c.Format != "json" && c.Format != "console" {
		return ErrBadFormat
	}
	return nil
}

// New builds a logger for service, named and tagged with the service field.
func New(cfg Config, service string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	zc := zap.NewProductionConfig()
	if cfg.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.DisableStacktrace = true
	zc.Sampling = nil
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("logging: build: %w", err)
	}
	return log.With(zap.String("service", service)), nil
}
