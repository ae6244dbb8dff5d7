package notes

import (
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.RatePerMinute >= 10000 {
		t.Errorf("default rate %d is not below Intercom's 10,000 a minute", c.RatePerMinute)
	}
	if c.Debounce <= 0 || c.MaxWait > 10*time.Second {
		t.Errorf("defaults do not keep notes near real time: debounce %s, max wait %s", c.Debounce, c.MaxWait)
	}
	if got := parseFlags(t); got != c {
		t.Errorf("flag defaults differ from DefaultConfig:\n%+v\n%+v", got, c)
	}
}

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("notewriter", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{
		"THREADLINE_NOTES_DEBOUNCE":        "250ms",
		"THREADLINE_NOTES_TIME_ZONE":       "Europe/Berlin",
		"THREADLINE_NOTES_RATE_PER_MINUTE": "5000",
		"THREADLINE_NOTES_MAX_WAIT":        "3s",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, []string{"-notes.max-wait=4s", "-notes.breaker-failures=7"}, lookup); err != nil {
		t.Fatal(err)
	}
	if cfg.Debounce != 250*time.Millisecond || cfg.TimeZone != "Europe/Berlin" || cfg.RatePerMinute != 5000 ||
		cfg.MaxWait != 4*time.Second || cfg.BreakerFailures != 7 || cfg.MaxLinesPerNote != 50 {
		t.Fatalf("parsed %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateNamesEachProblem(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Config)
		want   error
	}{
		{"negative debounce", func(c *Config) { c.Debounce = -time.Second }, ErrDebounce},
		{"max wait below debounce", func(c *Config) { c.MaxWait = c.Debounce / 2 }, ErrMaxWait},
		{"no lines", func(c *Config) { c.MaxLinesPerNote = 0 }, ErrMaxLinesPerNote},
		{"tiny notes", func(c *Config) { c.MaxNoteBytes = 100 }, ErrMaxNoteBytes},
		{"unknown zone", func(c *Config) { c.TimeZone = "Mars/Olympus" }, ErrTimeZone},
		{"no rate", func(c *Config) { c.RatePerMinute = 0 }, ErrRatePerMinute},
		{"odd window", func(c *Config) { c.RateWindow = time.Hour }, ErrRateWindow},
		{"negative floor", func(c *Config) { c.RateRemainingFloor = -1 }, ErrRateRemainingFloor},
		{"no failures", func(c *Config) { c.BreakerFailures = 0 }, ErrBreakerFailures},
		{"no open timeout", func(c *Config) { c.BreakerOpenTimeout = 0 }, ErrBreakerOpenTimeout},
		{"short ttl", func(c *Config) { c.DeliveredTTL = time.Minute }, ErrDeliveredTTL},
		{"no call timeout", func(c *Config) { c.CallTimeout = 0 }, ErrCallTimeout},
		{"short lease", func(c *Config) { c.LeaseTTL = c.CallTimeout }, ErrLeaseTTL},
		{"no poll", func(c *Config) { c.PollInterval = 0 }, ErrPollInterval},
		{"no concurrency", func(c *Config) { c.FlushConcurrency = 0 }, ErrFlushConcurrency},
		{"retry bounds", func(c *Config) { c.RetryMax = c.RetryMin / 2 }, ErrRetryBackoff},
		{"small backlog", func(c *Config) { c.MaxPending = c.MaxLinesPerNote - 1 }, ErrMaxPending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			if err := c.Validate(); !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	if !IsPermanent(errors.Join(errors.New("x"), ErrConversationGone)) || !IsPermanent(ErrInvalidInput) ||
		!IsPermanent(ErrRejected) {
		t.Error("gone, invalid input and rejected must be permanent")
	}
	for _, err := range []error{ErrBreakerOpen, ErrBacklogFull, ErrBusy, ErrUnauthorized, &RateLimitedError{}} {
		if IsPermanent(err) {
			t.Errorf("%v must be transient", err)
		}
	}
	if !IsUnauthorized(ErrUnauthorized) || IsUnauthorized(ErrBreakerOpen) {
		t.Error("IsUnauthorized")
	}
}
