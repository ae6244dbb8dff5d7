package capture

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

// FuzzCaptureBody posts arbitrary bodies to the capture handler: it never fails with a server error,
// and everything it accepts decodes again as capture output.
func FuzzCaptureBody(f *testing.F) {
	// small seeds keep the fuzzer's minimisation quick: the journey's last (one-event) request
	lines := posthogtest.ReadLines(f, filepath.Join("..", "..", "testdata", "posthog", "journey_capture_batch.jsonl"))
	last := lines[len(lines)-1]
	f.Add(last, "text/plain")
	f.Add(posthogtest.Gzip(f, last), "text/plain")
	ev := oneEvent(testToken, "$pageview")
	f.Add(ev, "application/json")
	f.Add(posthogtest.Gzip(f, ev), "text/plain")
	f.Add([]byte("data="+url.QueryEscape(base64.StdEncoding.EncodeToString(ev))), "application/x-www-form-urlencoded")
	f.Add([]byte("compression=lz64&data="+url.QueryEscape(lz64OfEvent)), "application/x-www-form-urlencoded")
	f.Add([]byte(`[{"event":"e","distinct_id":1,"properties":{"token":"t"}}]`), "application/json")

	pub := &recorder{}
	cfg := DefaultConfig()
	cfg.MaxBodyBytes, cfg.MaxBatchBodyBytes, cfg.MaxDecodedBytes = 1<<16, 1<<16, 1<<18
	h := NewHandler(cfg, pub, zap.NewNop(), prometheus.NewRegistry(), func() time.Time { return posthogtest.ProcessingTime() })
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/e/", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		for _, batch := range pub.take() {
			if rec.Code != http.StatusOK {
				t.Fatalf("published on status %d", rec.Code)
			}
			for _, ev := range batch {
				msg, _ := json.Marshal(ev)
				evs, err := posthog.Decode(msg, posthogtest.ProcessingTime())
				if err != nil {
					t.Fatalf("captured event does not decode: %v\n%s", err, msg)
				}
				if evs[0].UUID != ev.UUID || evs[0].Name != ev.Event {
					t.Fatalf("decoded %+v from %+v", evs[0], ev)
				}
			}
		}
	})
}
