package redact

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/config"
)

func TestConfigFlagsAndEnvironment(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if !slices.Equal(cfg.AllowQueryParams, DefaultConfig().AllowQueryParams) {
		t.Fatalf("defaults not registered: %v", cfg.AllowQueryParams)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	env := map[string]string{"THREADLINE_REDACT_ALLOW_QUERY_PARAMS": "plan, ref ,lang"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.Parse(fs, nil, lookup); err != nil {
		t.Fatal(err)
	}
	if want := []string{"plan", "ref", "lang"}; !slices.Equal(cfg.AllowQueryParams, want) {
		t.Fatalf("from environment: %v, want %v", cfg.AllowQueryParams, want)
	}
	if err := config.Parse(fs, []string{"-redact.allow-query-params=tab"}, lookup); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tab"}; !slices.Equal(cfg.AllowQueryParams, want) {
		t.Fatalf("flag over environment: %v, want %v", cfg.AllowQueryParams, want)
	}
	var printed strings.Builder
	if err := config.Print(&printed, fs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(printed.String(), "THREADLINE_REDACT_ALLOW_QUERY_PARAMS=tab\n") {
		t.Fatalf("print-config: %q", printed.String())
	}
	if got := New(cfg).URL("/a?plan=pro&tab=x"); got != "/a?tab=x" {
		t.Fatalf("configured redactor: %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		allow []string
		want  error
	}{
		{[]string{"plan", "utm_source"}, nil},
		{nil, nil},
		{[]string{""}, ErrInvalidQueryParam},
		{[]string{"a=b"}, ErrInvalidQueryParam},
		{[]string{"a b"}, ErrInvalidQueryParam},
		{[]string{"email"}, ErrSensitiveQueryParam},
		{[]string{"user_email"}, ErrSensitiveQueryParam},
		{[]string{"access_token"}, ErrSensitiveQueryParam},
		{[]string{"api-key"}, ErrSensitiveQueryParam},
		{[]string{"password"}, ErrSensitiveQueryParam},
		{[]string{"phone"}, ErrSensitiveQueryParam},
		{[]string{"code"}, ErrSensitiveQueryParam},
		{[]string{"plan", "email", "x&y"}, ErrSensitiveQueryParam},
	} {
		err := Config{AllowQueryParams: tc.allow}.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("Validate(%q) = %v, want nil", tc.allow, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Validate(%q) = %v, want %v", tc.allow, err, tc.want)
		}
	}
	err := Config{AllowQueryParams: []string{"email", "x&y"}}.Validate()
	if !errors.Is(err, ErrSensitiveQueryParam) || !errors.Is(err, ErrInvalidQueryParam) {
		t.Errorf("both problems should be reported: %v", err)
	}
}
