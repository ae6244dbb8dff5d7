package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/posthog/posthogtest"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// TestCaptureEndpointToProductActions posts the journey to the running ingest as posthog-js does,
// half as gzip batches and half as base64 form bodies, and reads the actions the consumer made of
// what the endpoint stored.
func TestCaptureEndpointToProductActions(t *testing.T) {
	ing := startIngest(t, "-posthog.tokens="+posthogtest.Token)
	topics := ing.topics()
	post := func(path, contentType string, body []byte) int {
		t.Helper()
		resp, err := http.Post(ing.url+path, contentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) != `{"status":1}` {
			t.Errorf("%s answered %s", path, b)
		}
		return resp.StatusCode
	}

	requests := posthogtest.ReadLines(t, filepath.Join(journeyDir, "journey_capture_batch.jsonl"))
	events := 0
	for i, line := range requests {
		var req struct {
			SentAt string            `json:"sent_at"`
			Batch  []json.RawMessage `json:"batch"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatal(err)
		}
		sent, err := time.Parse(time.RFC3339Nano, req.SentAt)
		if err != nil {
			t.Fatal(err)
		}
		// posthog-js posts the array of events, and says when it sent them in `_`
		payload, err := json.Marshal(req.Batch)
		if err != nil {
			t.Fatal(err)
		}
		query := fmt.Sprintf("?ver=1.418.10&_=%d", sent.UnixMilli())
		var status int
		if i%2 == 0 {
			status = post("/e/"+query+"&compression=gzip-js", "text/plain", posthogtest.Gzip(t, payload))
		} else {
			form := "data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(payload))
			status = post("/e/"+query, "application/x-www-form-urlencoded", []byte(form))
		}
		if status != http.StatusOK {
			t.Fatalf("request %d: status %d", i, status)
		}
		events += len(req.Batch)
	}
	if events != posthogtest.Events {
		t.Fatalf("posted %d events, want %d", events, posthogtest.Events)
	}
	// a project token the allowlist does not hold is refused, and nothing of it is stored
	foreign := []byte(`[{"event":"$pageview","properties":{"token":"phc_someone_else","distinct_id":"d1","$session_id":"s9"}}]`)
	if status := post("/e/?compression=gzip-js", "text/plain", posthogtest.Gzip(t, foreign)); status != http.StatusUnauthorized {
		t.Errorf("foreign token: status %d, want 401", status)
	}
	if got := ing.count(t, topics.PosthogRaw); got != int64(events) {
		t.Errorf("%d raw records, want %d (one per accepted event)", got, events)
	}

	out := ing.consume(t, topics.ProductActions, journeyActions)
	want := map[string]goldenAction{}
	for _, g := range readGolden(t, "journey_actions.golden.json", []goldenAction(nil)) {
		want[g.ActionID] = g
	}
	if len(want) != journeyActions {
		t.Fatalf("golden file has %d actions", len(want))
	}
	// the capture key (token:distinct_id) changes at $identify, so actions come from two raw
	// partitions: compare by action id
	for i, pa := range productActions(t, out) {
		got := goldenOf(out[i], pa)
		w, ok := want[got.ActionID]
		if !ok {
			t.Errorf("unexpected action %+v", got)
			continue
		}
		delete(want, got.ActionID)
		if got != w {
			t.Errorf("action %s:\n got %+v\nwant %+v", got.ActionID, got, w)
		}
		if pa.Action.EventTime.IsZero() || pa.Identity.DistinctID == "" {
			t.Errorf("action %s: time %s, distinct id %q", got.ActionID, pa.Action.EventTime, pa.Identity.DistinctID)
		}
	}
	if len(want) > 0 {
		t.Errorf("actions missing: %v", want)
	}
	if got := ing.count(t, topics.DLQ); got != 0 {
		t.Errorf("%d dead letters", got)
	}
	if got := ing.metric(t, "threadline_ingest_events_total", `source="posthog"`, `outcome="noise"`); got != posthogtest.Events-journeyActions {
		t.Errorf("noise events counted %v, want %d", got, posthogtest.Events-journeyActions)
	}
	// caught up with everything it was given, ingest reports ready
	kafkatest.Eventually(t, waitForKafka, func() bool {
		resp, err := http.Get(ing.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "ingest never reported ready")
}
