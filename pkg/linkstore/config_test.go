package linkstore

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

func TestDefaultsValidate(t *testing.T) {
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if d.BufferWindow != 120*time.Second || d.BufferMax != 200 || d.Policy != PolicyMostRecent {
		t.Fatalf("defaults differ from the documented ones: %+v", d)
	}
}

func TestRegisterFlagsFromEnvAndArgs(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("linker", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if c != DefaultConfig() {
		t.Fatalf("after RegisterFlags: %+v, want the defaults", c)
	}
	env := map[string]string{
		"THREADLINE_LINKER_BUFFER_WINDOW": "90s",
		"THREADLINE_LINKER_BUFFER_MAX":    "50",
		"THREADLINE_LINKER_POLICY":        "all-open",
		"THREADLINE_LINKER_CLOSED_GRACE":  "0s",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, []string{"-linker.pending-ttl=30m", "-linker.session-ttl=12h", "-linker.buffer-ttl=5m"}, lookup); err != nil {
		t.Fatal(err)
	}
	want := Config{
		BufferWindow: 90 * time.Second, BufferMax: 50, BufferTTL: 5 * time.Minute, SessionTTL: 12 * time.Hour,
		PendingTTL: 30 * time.Minute, ClosedGrace: 0, Policy: PolicyAllOpen,
	}
	if c != want {
		t.Fatalf("parsed %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesEachProblem(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		want   error
	}{
		{func(c *Config) { c.BufferWindow = 0 }, ErrBufferWindow},
		{func(c *Config) { c.BufferMax = -1 }, ErrBufferMax},
		{func(c *Config) { c.BufferTTL = c.BufferWindow / 2 }, ErrBufferTTL},
		{func(c *Config) { c.SessionTTL = time.Minute }, ErrSessionTTL},
		{func(c *Config) { c.PendingTTL = 0 }, ErrPendingTTL},
		{func(c *Config) { c.ClosedGrace = -time.Second }, ErrClosedGrace},
		{func(c *Config) { c.Policy = "newest" }, ErrPolicy},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mutate(&c)
		if err := c.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%+v: Validate() = %v, want %v", c, err, tc.want)
		}
	}
}

func TestZeroFieldsTakeDefaults(t *testing.T) {
	got := Config{BufferMax: 7}.withDefaults()
	want := DefaultConfig()
	want.BufferMax = 7
	want.ClosedGrace = 0 // zero grace is a choice, not a missing value
	if got != want {
		t.Fatalf("withDefaults: %+v, want %+v", got, want)
	}
}
