package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerAnswersHealthReadinessAndMetrics(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"}, zap.NewNop())
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	var ready error = errors.New("consumer not caught up")
	s.AddReadiness("consumer", func(context.Context) error { return ready })

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "consumer not caught up") {
		t.Fatalf("readyz before ready: %d %q", code, body)
	}
	ready = nil
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz when ready: %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}

func TestConfigValidate(t *testing.T) {
	if !errors.Is(Config{}.Validate(), ErrNoAddr) {
		t.Fatal("empty address accepted")
	}
	if (Config{Addr: "nonsense"}).Validate() == nil {
		t.Fatal("address without port accepted")
	}
	if err := (Config{Addr: "127.0.0.1:9101"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestServerProfilesOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		s := New(Config{Addr: "127.0.0.1:0", Pprof: enabled}, zap.NewNop())
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		base := "http://" + s.Addr()
		code, body := get(t, base+"/debug/pprof/heap?debug=1")
		switch {
		case enabled && (code != 200 || !strings.Contains(body, "heap profile")):
			t.Errorf("pprof on: heap profile %d %.80q", code, body)
		case !enabled && code != 404:
			t.Errorf("pprof off: heap profile answered %d", code)
		}
		if enabled {
			if code, body := get(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
				t.Errorf("pprof index %d %.80q", code, body)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
