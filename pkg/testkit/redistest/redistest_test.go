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
