package intercom_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/intercom"
)

func TestConfigFlagsAndEnv(t *testing.T) {
	var c intercom.Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	env := map[string]string{
		"THREADLINE_INTERCOM_API_BASE": "https://api.eu.intercom.io",
		"THREADLINE_INTERCOM_TOKEN":    "tok-123",
		"THREADLINE_INTERCOM_ADMIN_ID": "7310045",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, []string{"-intercom.max-retries=3"}, lookup); err != nil {
		t.Fatal(err)
	}
	if c.APIBase != "https://api.eu.intercom.io" || c.Token.Reveal() != "tok-123" || c.AdminID != "7310045" ||
		c.Version != "2.14" || c.Timeout != 10*time.Second || c.MaxRetries != 3 {
		t.Errorf("config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var out strings.Builder
	if err := config.Print(&out, fs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "tok-123") || !strings.Contains(out.String(), "THREADLINE_INTERCOM_VERSION=2.14") {
		t.Errorf("print-config output:\n%s", out.String())
	}
}

func TestConfigValidate(t *testing.T) {
	good := intercom.DefaultConfig()
	good.Token = config.NewSecret("t")
	good.AdminID = "1"
	tests := []struct {
		name string
		edit func(*intercom.Config)
		want error
	}{
		{"relative base", func(c *intercom.Config) { c.APIBase = "api.intercom.io" }, intercom.ErrInvalidAPIBase},
		{"ftp base", func(c *intercom.Config) { c.APIBase = "ftp://api.intercom.io" }, intercom.ErrInvalidAPIBase},
		{"no token", func(c *intercom.Config) { c.Token = config.Secret{} }, intercom.ErrMissingToken},
		{"no admin", func(c *intercom.Config) { c.AdminID = "" }, intercom.ErrMissingAdminID},
		{"no version", func(c *intercom.Config) { c.Version = "" }, intercom.ErrMissingVersion},
		{"zero timeout", func(c *intercom.Config) { c.Timeout = 0 }, intercom.ErrInvalidTimeout},
		{"negative retries", func(c *intercom.Config) { c.MaxRetries = -1 }, intercom.ErrInvalidRetries},
		{"max below min", func(c *intercom.Config) { c.RetryBackoffMax = c.RetryBackoffMin / 2 }, intercom.ErrInvalidBackoff},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		if err := c.Validate(); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestNormalizeConfig(t *testing.T) {
	var c intercom.NormalizeConfig
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	lookup := func(k string) (string, bool) {
		if k == "THREADLINE_INTERCOM_SESSION_ATTRIBUTE" {
			return "web_session_id", true
		}
		return "", false
	}
	if err := config.Parse(fs, nil, lookup); err != nil {
		t.Fatal(err)
	}
	if c.SessionAttribute != "web_session_id" || c.SessionURLParam != intercom.DefaultSessionAttribute {
		t.Errorf("config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	c.SessionAttribute = "web session"
	if err := c.Validate(); !errors.Is(err, intercom.ErrInvalidSessAttr) {
		t.Errorf("err = %v, want ErrInvalidSessAttr", err)
	}
}

func TestDataEventValidate(t *testing.T) {
	at := time.Unix(1795000000, 0)
	good := intercom.DataEvent{EventName: "hit-checkout-error", CreatedAt: at, UserID: "cust_4821",
		Metadata: map[string]any{"page": "checkout", "amount": 4900, "link": intercom.RichLink{URL: "https://x.example", Value: "x"}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good event: %v", err)
	}
	many := map[string]any{}
	for i := range 11 {
		many[string(rune('a'+i))] = i
	}
	for name, ev := range map[string]intercom.DataEvent{
		"no name":        {CreatedAt: at, UserID: "u"},
		"no time":        {EventName: "e", UserID: "u"},
		"no identifier":  {EventName: "e", CreatedAt: at},
		"11 keys":        {EventName: "e", CreatedAt: at, UserID: "u", Metadata: many},
		"dotted key":     {EventName: "e", CreatedAt: at, UserID: "u", Metadata: map[string]any{"a.b": "x"}},
		"dollar key":     {EventName: "e", CreatedAt: at, UserID: "u", Metadata: map[string]any{"$a": "x"}},
		"nested":         {EventName: "e", CreatedAt: at, UserID: "u", Metadata: map[string]any{"a": map[string]any{"b": 1}}},
		"array":          {EventName: "e", CreatedAt: at, UserID: "u", Metadata: map[string]any{"a": []string{"b"}}},
		"256-char value": {EventName: "e", CreatedAt: at, UserID: "u", Metadata: map[string]any{"a": strings.Repeat("x", 256)}},
	} {
		if err := ev.Validate(); !errors.Is(err, intercom.ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
}
