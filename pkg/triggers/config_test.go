package triggers

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

func TestConfigFromEnvironment(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if c != DefaultConfig() || c.Enabled() {
		t.Fatalf("registered defaults = %+v (enabled %v), want %+v, off", c, c.Enabled(), DefaultConfig())
	}
	env := map[string]string{
		"THREADLINE_TRIGGERS_FILE":        "/etc/threadline/triggers.yaml",
		"THREADLINE_TRIGGERS_DWELL_GRACE": "3s",
		"THREADLINE_TRIGGERS_CLAIM_LEASE": "1m",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, []string{"-triggers.marker-ttl=48h"}, lookup); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.File, want.DwellGrace, want.ClaimLease, want.MarkerTTL = "/etc/threadline/triggers.yaml", 3*time.Second, time.Minute, 48*time.Hour
	if c != want || !c.Enabled() {
		t.Fatalf("config = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]struct {
		change func(*Config)
		want   error
	}{
		"no grace":          {func(c *Config) { c.DwellGrace = 0 }, ErrDwellGrace},
		"no lease":          {func(c *Config) { c.ClaimLease = 0 }, ErrClaimLease},
		"short marker TTL":  {func(c *Config) { c.MarkerTTL = time.Hour }, ErrMarkerTTL},
		"no redeliveries":   {func(c *Config) { c.MaxRedeliveries = 0 }, ErrMaxRedeliveries},
		"negative batch":    {func(c *Config) { c.TickBatch = -1 }, ErrTickBatch},
		"defaults, no file": {func(*Config) {}, nil},
	}
	for name, tc := range cases {
		c := DefaultConfig()
		tc.change(&c)
		err := c.Validate()
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	c := Config{DwellGrace: -1, ClaimLease: -1}
	if err := c.Validate(); !errors.Is(err, ErrDwellGrace) || !errors.Is(err, ErrClaimLease) || !errors.Is(err, ErrTickBatch) {
		t.Errorf("every problem is reported: %v", err)
	}
	if got := (Config{File: "x"}).withDefaults(); got.DwellGrace != DefaultConfig().DwellGrace || got.Validate() != nil {
		t.Errorf("withDefaults = %+v", got)
	}
}
