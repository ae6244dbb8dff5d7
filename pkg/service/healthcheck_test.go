package service

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestedRecognisesTheHealthcheckArgument(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-healthcheck"}, true},
		{[]string{"--healthcheck"}, true},
		{[]string{"-admin.addr=:9100", "-healthcheck=true"}, true},
		{[]string{"-healthcheck=false"}, false},
		{[]string{"-print-config"}, false},
		{[]string{"healthcheck"}, false},
		{[]string{"--", "-healthcheck"}, false},
		{[]string{"-healthcheckx"}, false},
	}
	for _, c := range cases {
		if got := Requested(c.args); got != c.want {
			t.Errorf("Requested(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestProbeURLReadsTheAddressLikeTheBinary(t *testing.T) {
	p := ReadyProbe("127.0.0.1:9101")
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, "http://127.0.0.1:9101/readyz"},
		{"env", nil, map[string]string{"THREADLINE_ADMIN_ADDR": "10.0.0.5:9200"}, "http://10.0.0.5:9200/readyz"},
		{"wildcard host on loopback", nil, map[string]string{"THREADLINE_ADMIN_ADDR": "0.0.0.0:9100"}, "http://127.0.0.1:9100/readyz"},
		{"empty host on loopback", nil, map[string]string{"THREADLINE_ADMIN_ADDR": ":9100"}, "http://127.0.0.1:9100/readyz"},
		{"ipv6 wildcard on loopback", nil, map[string]string{"THREADLINE_ADMIN_ADDR": "[::]:9100"}, "http://127.0.0.1:9100/readyz"},
		{"flag wins over env", []string{"-admin.addr=127.0.0.1:9300"}, map[string]string{"THREADLINE_ADMIN_ADDR": "0.0.0.0:9100"}, "http://127.0.0.1:9300/readyz"},
		{"flag as two arguments", []string{"--admin.addr", "localhost:9400", "-healthcheck"}, nil, "http://localhost:9400/readyz"},
	}
	for _, c := range cases {
		if got := p.URL(c.args, env(c.env)); got != c.want {
			t.Errorf("%s: URL = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckPassesOnlyOn200(t *testing.T) {
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("consumer: consumer not caught up\n"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	p := ReadyProbe("127.0.0.1:1")
	args := []string{"-healthcheck", "-admin.addr=" + addr}

	err := p.Check(context.Background(), srv.Client(), args, nil)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "not caught up") {
		t.Fatalf("503: err = %v, want ErrUnhealthy with the reason", err)
	}
	status = http.StatusOK
	if err := p.Check(context.Background(), srv.Client(), args, nil); err != nil {
		t.Fatalf("200: %v", err)
	}
	srv.Close()
	if err := p.Check(context.Background(), http.DefaultClient, args, nil); err == nil {
		t.Fatal("nothing listening: want an error")
	}
}
