// Package config owns how every Threadline binary reads its configuration: command-line flags, each
// backed by a THREADLINE_* environment variable, secrets that never print, and -print-config.
//
// A component registers its own flags on a flag.FlagSet (RegisterFlags) and checks them (Validate);
// this package only maps flag names to environment variables and prints the result. The flag
// "kafka.brokers" reads THREADLINE_KAFKA_BROKERS; dots and dashes become underscores.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// EnvPrefix prefixes every environment variable that configures Threadline.
const EnvPrefix = "THREADLINE_"

// EnvName returns the environment variable that backs the flag called name.
func EnvName(name string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(name))
}

// Parse sets every flag of fs from its environment variable (looked up with lookupEnv, normally
// os.LookupEnv), then from args, so that a flag on the command line wins over the environment.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := lookupEnv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%q: %w", EnvName(f.Name), maskIfSecret(f, v), err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

func maskIfSecret(f *flag.Flag, v string) string {
	if _, ok := f.Value.(*Secret); ok {
		return Mask
	}
	return v
}

// Print writes every flag of fs as ENV_NAME=value, sorted, with secrets masked.
func Print(w io.Writer, fs *flag.FlagSet) error {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "print-config" {
			return
		}
		lines = append(lines, fmt.Sprintf("%s=%s", EnvName(f.Name), f.Value.String()))
	})
	sort.Strings(lines)
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

// Mask is what a set secret prints as.
const Mask = "******"

// Secret is a string flag value that never prints: String returns Mask when it is set.
type Secret struct{ value string }

// NewSecret returns a Secret holding v.
func NewSecret(v string) Secret { return Secret{value: v} }

// Set implements flag.Value.
func (s *Secret) Set(v string) error { s.value = v; return nil }

// String implements flag.Value and fmt.Stringer; it never reveals the value.
func (s *Secret) String() string {
	if s == nil || s.value == "" {
		return ""
	}
	return Mask
}

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret holds a value.
func (s Secret) IsSet() bool { return s.value != "" }

// MarshalText keeps secrets out of JSON and zap output.
func (s Secret) MarshalText() ([]byte, error) {
	if s.value == "" {
		return nil, nil
	}
	return []byte(Mask), nil
}

// StringList is a comma-separated list flag value.
type StringList []string

// Set implements flag.Value.
func (l *StringList) Set(v string) error {
	*l = SplitList(v)
	return nil
}

// String implements flag.Value.
func (l *StringList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// SplitList splits a comma-separated value, trimming spaces and dropping empty items.
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// StringListVar registers a comma-separated list flag with a default.
func StringListVar(fs *flag.FlagSet, p *[]string, name string, def []string, usage string) {
	*p = append([]string(nil), def...)
	fs.Var((*StringList)(p), name, usage)
}

// SecretVar registers a secret flag.
func SecretVar(fs *flag.FlagSet, p *Secret, name, usage string) {
	fs.Var(p, name, usage)
}

// DurationVar is flag.DurationVar, kept here so components read alike.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	fs.DurationVar(p, name, def, usage)
}
