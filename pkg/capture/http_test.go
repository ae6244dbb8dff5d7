package capture

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/config"
)

const testToken = "phc_test"

// oneEvent is a posthog-js style event body (token and distinct id inside properties).
func oneEvent(token, name string) []byte {
	b, _ := json.Marshal(map[string]any{
		"uuid": "0195aaaa-0000-7000-8000-00000000000a", "event": name, "offset": 250,
		"properties": map[string]any{"distinct_id": "anon-1", "token": token, "$session_id": "s1", "$pathname": "/pricing"},
	})
	return b
}

func TestRoutes(t *testing.T) {
	s := newServer(t, DefaultConfig())
	body := oneEvent(testToken, "$pageview")
	for _, route := range []string{"/e", "/i/v0/e", "/batch", "/capture", "/track"} {
		for _, path := range []string{route, route + "/", route + "/?ver=1.418.10"} {
			resp, b := s.do(t, http.MethodPost, path, body, nil)
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != `{"status":1}` {
				t.Errorf("POST %s: %d %s", path, resp.StatusCode, b)
			}
			resp, _ = s.do(t, http.MethodOptions, path, nil, map[string]string{"Origin": "https://app.acme.dev", "Access-Control-Request-Method": "POST"})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("OPTIONS %s: %d", path, resp.StatusCode)
			}
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			q := url.Values{"data": {base64.StdEncoding.EncodeToString(body)}}
			resp, b = s.do(t, http.MethodGet, path+sep+q.Encode(), nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s?data=: %d %s", path, resp.StatusCode, b)
			}
		}
	}
	if n := len(s.pub.take()); n != 5*3*2 {
		t.Errorf("%d publishes, want %d", n, 5*3*2)
	}
	for _, path := range []string{"/e/x", "/batchx", "/", "/i/v0/e/extra"} {
		if resp, _ := s.do(t, http.MethodPost, path, body, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := s.do(t, http.MethodPut, "/e/", body, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT /e/: %d, want 405", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	s := newServer(t, DefaultConfig())
	resp, _ := s.do(t, http.MethodOptions, "/e/", nil, map[string]string{
		"Origin": "https://app.acme.dev", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-custom"})
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != "https://app.acme.dev" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		h.Get("Access-Control-Allow-Headers") != "content-type, x-custom" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight headers: %v", h)
	}
	resp, _ = s.do(t, http.MethodPost, "/e/", oneEvent(testToken, "e"), map[string]string{"Origin": "https://other.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://other.example" || !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("POST headers: %v", resp.Header)
	}
	resp, _ = s.do(t, http.MethodPost, "/e/", oneEvent(testToken, "e"), nil)
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("no Origin, yet Access-Control-Allow-Origin %q", v)
	}
	resp, _ = s.do(t, http.MethodGet, "/array/"+testToken+"/config", nil, map[string]string{"Origin": "https://app.acme.dev"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.acme.dev" {
		t.Errorf("config CORS: %v", resp.Header)
	}
}

func TestTokens(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tokens = []string{testToken, "abcdef123456"}
	s := newServer(t, cfg)
	for _, c := range []struct {
		name string
		body []byte
		code int
	}{
		{"allowed", oneEvent(testToken, "e"), http.StatusOK},
		{"allowed batch api_key without phc_", []byte(`{"api_key":"abcdef123456","batch":[{"event":"e","distinct_id":"d"}]}`), http.StatusOK},
		{"unknown token", oneEvent("phc_other", "e"), http.StatusUnauthorized},
		{"no token", []byte(`{"event":"e","distinct_id":"d"}`), http.StatusUnauthorized},
		{"personal key", oneEvent("phx_secret", "e"), http.StatusUnauthorized},
		{"mixed tokens", []byte(`[` + string(oneEvent(testToken, "a")) + `,` + string(oneEvent("abcdef123456", "b")) + `]`), http.StatusUnauthorized},
	} {
		resp, b := s.do(t, http.MethodPost, "/e/", c.body, nil)
		if resp.StatusCode != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.code)
		}
	}
	if n := len(s.pub.take()); n != 2 {
		t.Errorf("%d publishes, want 2", n)
	}
	if got := s.metric(t, "threadline_capture_rejected_total", map[string]string{"reason": "token"}); got != 4 {
		t.Errorf("token rejections metric %v, want 4", got)
	}
	if resp, _ := s.do(t, http.MethodGet, "/array/phc_other/config", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("config for an unknown token: %d", resp.StatusCode)
	}
}

func TestBodyLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	cfg.MaxBatchBodyBytes = 256 << 10
	cfg.MaxDecodedBytes = 512 << 10
	s := newServer(t, cfg)
	// a valid batch of about 100 KiB: too large for /e/, fine for /batch/
	var events []string
	for len(strings.Join(events, ",")) < 100<<10 {
		events = append(events, `{"event":"e","distinct_id":"d","properties":{"pad":"`+strings.Repeat("x", 1000)+`"}}`)
	}
	big := []byte(`{"api_key":"` + testToken + `","batch":[` + strings.Join(events, ",") + `]}`)
	if resp, _ := s.do(t, http.MethodPost, "/e/", big, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("100 KiB on /e/: %d, want 413", resp.StatusCode)
	}
	if resp, b := s.do(t, http.MethodPost, "/batch/", big, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("100 KiB on /batch/: %d %s", resp.StatusCode, b)
	}
	// without a Content-Length the limit still holds
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/e/", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 100 KiB on /e/: %d, want 413", resp.StatusCode)
	}
	// a gzip bomb: 16 MiB of zeros in about 16 KiB, under a 512 KiB decoded limit
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	var member bytes.Buffer
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	member.Write(bomb.Bytes())
	payload := bytes.Repeat(member.Bytes(), 16)
	if int64(len(payload)) > cfg.MaxBodyBytes {
		t.Fatalf("bomb of %d bytes exceeds the body limit", len(payload))
	}
	if resp, _ := s.do(t, http.MethodPost, "/e/", payload, map[string]string{"Content-Type": "text/plain"}); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip bomb: %d, want 413", resp.StatusCode)
	}
	if got := s.metric(t, "threadline_capture_rejected_total", map[string]string{"reason": "too_large"}); got != 3 {
		t.Errorf("too_large metric %v, want 3", got)
	}
}

func TestBodyEncodings(t *testing.T) {
	s := newServer(t, DefaultConfig())
	// a payload whose base64 holds '+' and '/'
	event := []byte(`{"event":"x>>?","properties":{"distinct_id":"~~~>>>???","token":"` + testToken + `"}}`)
	std := base64.StdEncoding.EncodeToString(event)
	if !strings.Contains(std, "+") {
		t.Fatalf("no '+' in %s", std)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(event)
	_ = zw.Close()
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		name, path string
		body       []byte
		header     map[string]string
	}{
		{"json", "/e/", event, map[string]string{"Content-Type": "application/json"}},
		{"gzip as posthog-js sends it", "/e/?compression=gzip-js", gz.Bytes(), map[string]string{"Content-Type": "text/plain"}},
		{"gzip with Content-Encoding", "/batch/?compression=gzip", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"}},
		{"gzip without a hint", "/e/", gz.Bytes(), nil},
		{"form base64 with '+' percent-encoded", "/e/", []byte("data=" + url.QueryEscape(std)), map[string]string{"Content-Type": form}},
		{"form base64 with raw '+'", "/e/", []byte("data=" + std), map[string]string{"Content-Type": form}},
		{"form with a compression field", "/e/", []byte("compression=base64&data=" + url.QueryEscape(std)), map[string]string{"Content-Type": form}},
		{"form under a wrong gzip hint", "/e/?compression=gzip-js", []byte("data=" + url.QueryEscape(std)), map[string]string{"Content-Type": form}},
		{"whole body base64", "/e/", []byte(std), map[string]string{"Content-Type": "text/plain"}},
		{"lz64 form", "/e/", []byte("compression=lz64&data=" + url.QueryEscape(lz64OfEvent)), map[string]string{"Content-Type": form}},
	} {
		resp, b := s.do(t, http.MethodPost, c.path, c.body, c.header)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, b)
			continue
		}
		got := s.pub.take()
		if len(got) != 1 || len(got[0]) != 1 {
			t.Errorf("%s: published %v", c.name, got)
			continue
		}
		ev := got[0][0]
		if c.name == "lz64 form" {
			if ev.Event != "$pageview" || ev.DistinctID != "abc" {
				t.Errorf("%s: %+v", c.name, ev)
			}
			continue
		}
		if ev.Event != "x>>?" || ev.DistinctID != "~~~>>>???" || ev.Token != testToken || ev.Data != string(event) {
			t.Errorf("%s: %+v", c.name, ev)
		}
		if ev.UUID == "" || len(ev.UUID) != 36 || ev.UUID[14] != '7' {
			t.Errorf("%s: generated uuid %q is not a v7", c.name, ev.UUID)
		}
	}
	for _, c := range []struct {
		name string
		body []byte
		code int
	}{
		{"garbage", []byte("hello"), http.StatusBadRequest},
		{"empty", nil, http.StatusBadRequest},
		{"no event name", []byte(`{"properties":{"distinct_id":"d","token":"` + testToken + `"}}`), http.StatusBadRequest},
		{"no distinct id", []byte(`{"event":"e","properties":{"token":"` + testToken + `"}}`), http.StatusBadRequest},
		{"truncated gzip", gz.Bytes()[:10], http.StatusBadRequest},
	} {
		if resp, b := s.do(t, http.MethodPost, "/e/", c.body, nil); resp.StatusCode != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.code)
		}
	}
	if n := len(s.pub.take()); n != 0 {
		t.Errorf("%d publishes of bad requests", n)
	}
}

// lz64OfEvent is lz-string 1.5.0 compressToBase64 of a posthog-js event array (made with the
// JavaScript library).
const lz64OfEvent = "NobwRApgbhB2AuYBcYAkAHAhgc2gSwgHcwAaMdAJwHt0IL4CBnZcAEz0YdgGN4B9PK2RhMAI26kw8KgGs4w9AAtufAB6TU3AK4UKcfjoA2wxfHjpGSAPRXM6dADpM3ALYQHraFcp5ueWNiSDPCGEMIAChS+/tgABIDIBLEAgq4QsYC8G4AAe2AAvjkAukA=="

func TestTimesAndIP(t *testing.T) {
	cfg := DefaultConfig()
	s := newServer(t, cfg)
	now := time.Date(2025, 3, 14, 10, 15, 34, 85_000_000, time.UTC)
	s.clock.set(now)
	// old posthog-js: array body, offsets, sent_at in the query as milliseconds
	body := []byte(`[{"event":"a","offset":1000,"properties":{"distinct_id":"d","token":"` + testToken + `"}},` +
		`{"event":"b","timestamp":"2025-03-14T10:05:30.000Z","properties":{"distinct_id":"d","token":"` + testToken + `"}}]`)
	// the client's clock is 10 minutes slow: it sent at 10:05:34.000 by its own clock
	sent := now.Add(-10*time.Minute - 85*time.Millisecond)
	path := "/e/?_=" + strconvMs(sent) + "&ver=1.160.0"
	resp, b := s.do(t, http.MethodPost, path, body, map[string]string{"X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	evs := s.pub.take()[0]
	if got := mustTime(t, evs[0].Timestamp); !got.Equal(now.Add(-time.Second)) {
		t.Errorf("offset: %s", got)
	}
	// 10:05:30 by the slow clock is 4 s before it sent: 10:15:30.085 by the server's
	if got := mustTime(t, evs[1].Timestamp); !got.Equal(time.Date(2025, 3, 14, 10, 15, 30, 85_000_000, time.UTC)) {
		t.Errorf("skew corrected: %s", got)
	}
	if !mustTime(t, evs[0].SentAt).Equal(sent) || !mustTime(t, evs[0].Now).Equal(now) {
		t.Errorf("sent_at %s now %s", evs[0].SentAt, evs[0].Now)
	}
	if evs[0].IP != "198.51.100.7" {
		t.Errorf("ip %q", evs[0].IP)
	}

	cfg.TrustForwardedFor = false
	s2 := newServer(t, cfg)
	s2.do(t, http.MethodPost, "/e/", oneEvent(testToken, "e"), map[string]string{"X-Forwarded-For": "198.51.100.7"})
	if ev := s2.pub.take()[0][0]; ev.IP != "127.0.0.1" {
		t.Errorf("untrusted X-Forwarded-For: ip %q", ev.IP)
	}
}

func strconvMs(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestLegacyFieldsDroppedFromData(t *testing.T) {
	s := newServer(t, DefaultConfig())
	body := []byte(`{"api_key":"` + testToken + `","batch":[{"event":"e","distinct_id":"d","type":"capture","library":"posthog-node","library_version":"4.0.0","properties":{"a":1},"$set":{"b":2}}]}`)
	if resp, b := s.do(t, http.MethodPost, "/batch", body, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	ev := s.pub.take()[0][0]
	var data map[string]any
	if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
		t.Fatal(err)
	}
	if len(data) != 4 || data["event"] != "e" || data["distinct_id"] != "d" || data["properties"] == nil || data["$set"] == nil {
		t.Errorf("data %s", ev.Data)
	}
}

func TestPublishFailure(t *testing.T) {
	s := newServer(t, DefaultConfig())
	s.pub.err = errors.New("kafka unavailable")
	resp, _ := s.do(t, http.MethodPost, "/e/", oneEvent(testToken, "e"), nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("publish failure: %d, want 503 (retried by SDKs)", resp.StatusCode)
	}
}

func TestConfigAndFlagsStubs(t *testing.T) {
	s := newServer(t, DefaultConfig())
	resp, b := s.do(t, http.MethodGet, "/array/"+testToken+"/config", nil, nil)
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("config: %d %s", resp.StatusCode, b)
	}
	if cfg["autocapture_opt_out"] != false || cfg["token"] != testToken || cfg["elementsChainAsString"] != true ||
		cfg["sessionRecording"] != false || !strings.Contains(string(b), `"supportedCompression":["gzip","gzip-js"]`) {
		t.Errorf("config %s", b)
	}
	resp, b = s.do(t, http.MethodGet, "/array/"+testToken+"/config.js", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") ||
		!strings.Contains(string(b), `window._POSTHOG_REMOTE_CONFIG["phc_test"]={"config":{`) {
		t.Errorf("config.js: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/flags/?v=2", "/flags", "/decide/?v=3", "/decide"} {
		resp, b := s.do(t, http.MethodPost, path, []byte(`{"token":"`+testToken+`","distinct_id":"d"}`), map[string]string{"Content-Type": "application/json"})
		var flags map[string]any
		if err := json.Unmarshal(b, &flags); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if flags["autocapture_opt_out"] != false || flags["errorsWhileComputingFlags"] != false ||
			flags["config"].(map[string]any)["enable_collect_everything"] != true {
			t.Errorf("%s: %s", path, b)
		}
	}
	if n := len(s.pub.take()); n != 0 {
		t.Errorf("stubs published %d batches", n)
	}
}

func TestConfigValidate(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	env := map[string]string{"THREADLINE_POSTHOG_TOKENS": "phc_a, phc_b", "THREADLINE_CAPTURE_MAX_BODY_BYTES": "1048576"}
	if err := config.Parse(fs, nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tokens) != 2 || cfg.Tokens[1] != "phc_b" || cfg.MaxBodyBytes != 1<<20 || cfg.MaxBatchBodyBytes != DefaultMaxBatchBodyBytes {
		t.Fatalf("parsed %+v", cfg)
	}
	bad := DefaultConfig()
	bad.Tokens = []string{"phx_personal"}
	bad.MaxBatchBodyBytes = 1
	bad.MaxDecodedBytes = 1
	err := bad.Validate()
	for _, want := range []error{ErrInvalidToken, ErrInvalidBodyLimit, ErrInvalidDecodedLimit} {
		if !errors.Is(err, want) {
			t.Errorf("Validate() = %v, want it to wrap %v", err, want)
		}
	}
	if strings.Contains(err.Error(), "phx_personal") {
		t.Errorf("Validate repeats a personal key: %v", err)
	}
}
