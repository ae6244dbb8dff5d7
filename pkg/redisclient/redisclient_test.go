package redisclient

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/testkit/redistest"
)

func TestValidate(t *testing.T) {
	if !errors.Is(Config{}.Validate(), ErrNoAddrs) {
		t.Fatal("no address accepted")
	}
	if !errors.Is((Config{Addrs: []string{"x:1"}, TLSCAFile: "/does/not/exist"}).Validate(), ErrTLSCA) {
		t.Fatal("missing CA file accepted")
	}
}

func TestOneAddressIsASingleServerAndSeveralAreACluster(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := New(Config{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.Client); !ok {
		t.Fatalf("one address gave %T", rdb)
	}
	if err := Ping(rdb)(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl, err := New(Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, ok := cl.(*redis.ClusterClient); !ok {
		t.Fatalf("two addresses gave %T", cl)
	}
}
