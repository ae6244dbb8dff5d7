package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/service"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-fake.addr=" + addr, "-fake.token=t9", "-log.level=error"}) }()

	var resp *http.Response
	for range 200 {
		if resp, err = http.Get("http://" + addr + "/"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("page never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("page: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/contacts/x", nil)
	req.Header.Set("Authorization", "Bearer t9")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("X-RateLimit-Limit") != "1666" {
		t.Errorf("API with the flag's token: %d %v", resp.StatusCode, resp.Header)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

func TestRunPrintsConfig(t *testing.T) {
	if err := run(context.Background(), []string{"-print-config"}); !errors.Is(err, service.ErrPrinted) {
		t.Errorf("err = %v, want ErrPrinted", err)
	}
	if err := run(context.Background(), []string{"-fake.rate-limit-per-10s=0"}); !errors.Is(err, fakeintercom.ErrBadRateLimit) {
		t.Errorf("err = %v, want ErrBadRateLimit", err)
	}
	if got := pageURL(":8090"); got != "http://localhost:8090/" {
		t.Errorf("pageURL = %q", got)
	}
}
