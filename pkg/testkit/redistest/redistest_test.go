package redistest

import (
	"context"
	"testing"
)

func TestStart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	if err := c.Set(context.Background(), "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get(context.Background(), "a").Result(); v != "" {
		t.Fatal("kept")
	}
	if s.Embedded {
		t.Fatal("embedded")
	}
}

// TestPersistentServerSurvivesAnOutage stops a server started with PersistentArgs (a kill, so
// only what was synced survives), sees the outage, starts it again on the same address and finds
// the data; Restart keeps the arguments too.
func TestPersistentServerSurvivesAnOutage(t *testing.T) {
	s := StartWith(t, PersistentArgs()...)
	if s.Embedded {
		t.Fatal("embedded")
	}
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "a", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAgain(); err == nil {
		t.Fatal("StartAgain on a running server: no error")
	}
	addr := s.Addr
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping answered while the server was stopped")
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Fatalf("started again on %s, was %s", s.Addr, addr)
	}
	if v, err := c.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("after StartAgain: %q, %v; want the value written before the kill", v, err)
	}
	if err := c.Set(ctx, "b", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "b").Result(); err != nil || v != "2" {
		t.Fatalf("after Restart: %q, %v; want the value written before it", v, err)
	}
}
