package service

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

type component struct {
	Name  string
	Token config.Secret
}

var errEmptyName = errors.New("name is required")

func (c *component) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "thing.name", "", "")
	config.SecretVar(fs, &c.Token, "thing.token", "")
}

func (c component) Validate() error {
	if c.Name == "" {
		return errEmptyName
	}
	return nil
}

func TestParseValidatesWhatWasParsed(t *testing.T) {
	var c component
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := Parse(fs, []string{"-thing.name=x"}, &strings.Builder{}, &c); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	var d component
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	d.RegisterFlags(fs)
	if err := Parse(fs, nil, &strings.Builder{}, &d); !errors.Is(err, errEmptyName) {
		t.Fatalf("got %v, want the component's named error", err)
	}
}

func TestPrintConfigMasksSecretsAndStops(t *testing.T) {
	var c component
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	var out strings.Builder
	err := Parse(fs, []string{"-print-config", "-thing.name=n", "-thing.token=s3cret"}, &out, &c)
	if !errors.Is(err, ErrPrinted) {
		t.Fatalf("got %v, want ErrPrinted", err)
	}
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "THREADLINE_THING_TOKEN="+config.Mask) {
		t.Fatalf("printed:\n%s", out.String())
	}
}

func TestRunStopsEverythingOnTheFirstFailure(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan struct{})
	err := Run(context.Background(),
		func(ctx context.Context) error { <-ctx.Done(); close(stopped); return ctx.Err() },
		func(context.Context) error { return boom },
	)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	select {
	case <-stopped:
	case <-time.After(time.Second):
		t.Fatal("the other part was not stopped")
	}
}

func TestRunReturnsNilOnShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }); err != nil {
		t.Fatalf("clean shutdown returned %v", err)
	}
}
