package chaos

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/intercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/stack"
)

// corpusDir holds the bad inputs and the manifest of the outcomes they must get.
var corpusDir = filepath.Join("..", "..", "testdata", "corpus")

// corpusToken is the one project token the capture endpoint accepts in the corpus run.
const corpusToken = "phc_corpus"

// corpusInput is one bad input of the manifest.
type corpusInput struct {
	Name      string   `yaml:"name"`
	File      string   `yaml:"file"`
	Gen       string   `yaml:"gen"`
	Route     string   `yaml:"route"`
	Query     string   `yaml:"query"`
	Signature string   `yaml:"signature"`
	Want      []string `yaml:"want"` // the acceptable outcomes (see corpus.yaml)

	body []byte
}

func (in corpusInput) label() string {
	switch {
	case in.Name != "":
		return in.Name
	case in.File != "" && in.Signature != "":
		return in.File + " (" + in.Signature + " signature)"
	case in.File != "":
		return in.File
	case in.Signature != "":
		return in.Gen + " (" + in.Signature + " signature)"
	}
	return in.Gen
}

// allows reports whether outcome is one the input may get.
func (in corpusInput) allows(outcome string) bool {
	for _, w := range in.Want {
		if w == outcome {
			return true
		}
	}
	return false
}

// corpusManifest is testdata/corpus/corpus.yaml.
type corpusManifest struct {
	Capture     []corpusInput `yaml:"capture"`
	PosthogRaw  []corpusInput `yaml:"posthog_raw"`
	IntercomRaw []corpusInput `yaml:"intercom_raw"`
	Webhook     []corpusInput `yaml:"webhook"`
}

func loadCorpus(t *testing.T) corpusManifest {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, "corpus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m corpusManifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("corpus.yaml: %v", err)
	}
	for _, list := range []struct {
		entry string
		ins   []corpusInput
	}{{"capture", m.Capture}, {"posthog_raw", m.PosthogRaw}, {"intercom_raw", m.IntercomRaw}, {"webhook", m.Webhook}} {
		for i := range list.ins {
			in := &list.ins[i]
			switch {
			case in.File != "":
				if in.body, err = os.ReadFile(filepath.Join(corpusDir, in.File)); err != nil {
					t.Fatal(err)
				}
			case in.Gen != "":
				if in.body, err = generate(list.entry, in.Gen); err != nil {
					t.Fatalf("%s %s: %v", list.entry, in.Gen, err)
				}
			default:
				t.Fatalf("%s entry %d has neither file nor gen", list.entry, i)
			}
			if len(in.Want) == 0 {
				t.Fatalf("%s %s: no outcome wanted", list.entry, in.label())
			}
		}
	}
	return m
}

// generate makes the inputs too large to keep in the repository.
func generate(entry, name string) ([]byte, error) {
	event := func(props string) []byte {
		return []byte(`{"uuid":"` + posthog.NewUUIDv7(time.Now()) + `","api_key":"` + corpusToken + `","event":"$pageview","distinct_id":"corpus-user","properties":` + props + `}`)
	}
	// captureOutput wraps an event as PostHog capture writes it to Kafka, for the raw topic.
	captureOutput := func(data []byte) ([]byte, error) {
		return json.Marshal(map[string]any{"uuid": posthog.NewUUIDv7(time.Now()), "distinct_id": "corpus-user", "token": corpusToken,
			"now": time.Now().UTC().Format(time.RFC3339), "data": string(data)})
	}
	nested := func(depth int, open, close, inner string) string {
		return strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
	}
	switch name {
	case "gzip-bomb", "gzip-bomb-unlabelled":
		// 64 MiB of one byte inflates far beyond every limit from some 64 KiB.
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		chunk := bytes.Repeat([]byte{' '}, 1<<20)
		for i := 0; i < 64; i++ {
			if _, err := zw.Write(chunk); err != nil {
				return nil, err
			}
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case "oversized-event-body": // above the 2 MiB limit of the event routes
		return event(`{"blob":"` + strings.Repeat("x", 3<<20) + `"}`), nil
	case "oversized-batch-body": // above the 20 MiB limit of /batch/
		return []byte(`{"api_key":"` + corpusToken + `","batch":[` + strings.TrimSuffix(strings.Repeat(string(event(`{"blob":"`+strings.Repeat("x", 1<<20)+`"}`))+",", 21), ",") + `]}`), nil
	case "deep-nesting-array":
		return []byte(nested(200000, "[", "]", "")), nil
	case "deep-nesting-properties":
		if entry == "posthog_raw" {
			return captureOutput(event(nested(100000, `{"a":`, "}", "1")))
		}
		return event(nested(100000, `{"a":`, "}", "1")), nil
	case "deep-nesting-item":
		return []byte(`{"type":"notification_event","id":"notif_corpus_deep","topic":"conversation.user.created","created_at":1741947300,"data":{"type":"notification_event_data","item":` +
			nested(100000, `{"a":`, "}", "1") + `}}`), nil
	case "huge-distinct-id":
		return []byte(`{"uuid":"` + posthog.NewUUIDv7(time.Now()) + `","api_key":"` + corpusToken + `","event":"$pageview","distinct_id":"` +
			strings.Repeat("d", 100000) + `","properties":{}}`), nil
	case "oversized-single-event": // within the 2 MiB body limit, over the broker's 1 MB message limit
		return event(`{"$session_id":"corpus-session","blob":"` + strings.Repeat("x", 1500000) + `"}`), nil
	case "huge-event-name":
		ev := []byte(`{"uuid":"` + posthog.NewUUIDv7(time.Now()) + `","api_key":"` + corpusToken + `","event":"` + strings.Repeat("e", 500000) +
			`","distinct_id":"corpus-user","properties":{"$session_id":"corpus-session"}}`)
		if entry == "posthog_raw" {
			return captureOutput(ev)
		}
		return ev, nil
	case "notification":
		return []byte(`{"type":"notification_event","app_id":"ab12cd34","id":"notif_corpus_forged","topic":"conversation.user.created","created_at":1741947300,` +
			`"data":{"type":"notification_event_data","item":{"type":"conversation","id":"999","created_at":1741947300}}}`), nil
	case "oversized-notification": // above the receiver's 1 MiB limit
		return []byte(`{"type":"notification_event","id":"notif_corpus_big","topic":"conversation.user.created","data":{"item":{"type":"conversation","id":"1","blob":"` +
			strings.Repeat("x", 3<<19) + `"}}}`), nil
	}
	return nil, fmt.Errorf("no generator %q", name)
}

// corpusFigures are the figures of the corpus run.
type corpusFigures struct {
	Tried, DeadLettered, Rejected, Accepted, Crashes int
}

// TestBadInputCorpus sends the bad input corpus through every entry point of ingest: the capture
// endpoint and the webhook receiver must refuse each input with the right status (never a 5xx,
// never 410 or 429) or accept it into an action or a dead letter, the raw topics must dead-letter
// each one with the right reason and go on with the records behind it, a captured webhook delivery
// replayed must be taken for the duplicate it is, and HTML and script in element text, event names,
// exception messages and URLs must arrive escaped in the notes. Afterwards every binary must still
// be running and ready.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel() // after TestChaos, which runs alone
	m := loadCorpus(t)
	sys := startSystem(t, systemOptions{Env: []string{"THREADLINE_POSTHOG_TOKENS=" + corpusToken}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tap := sys.Client(t, kgo.ConsumeTopics(sys.Topics.DLQ, sys.Topics.NotesWritten, sys.Topics.ConversationSummaries, sys.Topics.ProductActions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond))
	led := tapTopics(ctx, tap, sys.Topics)
	var fig corpusFigures
	client := &http.Client{Timeout: 30 * time.Second}

	captureEntryPoint(ctx, t, sys, led, client, m.Capture, &fig)
	webhookEntryPoint(ctx, t, sys, client, m.Webhook, &fig)
	fig.Tried += injectionJourney(ctx, t, sys, led)
	rawTopics(ctx, t, sys, led, map[string][]corpusInput{sys.Topics.PosthogRaw: m.PosthogRaw, sys.Topics.IntercomRaw: m.IntercomRaw}, &fig)

	// No crash: every binary still running and ready.
	for _, svc := range stack.Services {
		if !sys.Running(svc) || !sys.Ready(ctx, svc) {
			fig.Crashes++
			t.Errorf("%s is not running and ready after the corpus", svc)
		}
	}
	if fatal := regexp.MustCompile(`(?m)panic:|fatal error:|goroutine \d+ \[running\]`).FindString(sys.Logs.String()); fatal != "" {
		fig.Crashes++
		t.Errorf("a binary panicked: %q in its output", fatal)
	}
	t.Logf("CORPUS FIGURES: inputs tried %d, dead-lettered with reason %d, rejected with the right status %d, accepted as they should be %d, crashes %d",
		fig.Tried, fig.DeadLettered, fig.Rejected, fig.Accepted, fig.Crashes)
}

// uuidRE finds the event uuids of a capture body, to trace what capture accepted.
var uuidRE = regexp.MustCompile(`"uuid"\s*:\s*"([0-9a-fA-F-]{36})"`)

// captureEntryPoint POSTs the capture inputs and checks each answer; accepted events are traced to
// an action or a dead letter.
func captureEntryPoint(ctx context.Context, t *testing.T, sys *system, led *ledger, client *http.Client, ins []corpusInput, fig *corpusFigures) {
	t.Helper()
	type accepted struct {
		in    corpusInput
		uuids []string
	}
	var traced []accepted
	for _, in := range ins {
		fig.Tried++
		route := in.Route
		if route == "" {
			route = "/e/"
		}
		url := sys.IngestURL + route
		if in.Query != "" {
			url += "?" + in.Query
		}
		status, answer := post(ctx, t, client, url, in.body, nil)
		outcome := fmt.Sprint(status)
		if status == http.StatusOK {
			var uuids []string
			for _, m := range uuidRE.FindAllSubmatch(in.body, -1) {
				uuids = append(uuids, string(m[1]))
			}
			if len(uuids) == 0 {
				t.Errorf("capture %s was accepted but carries no uuid to trace it by", in.label())
				continue
			}
			traced = append(traced, accepted{in, uuids})
			continue
		}
		if !in.allows(outcome) {
			t.Errorf("capture %s: %s (%s), want one of %q", in.label(), outcome, answer, in.Want)
			continue
		}
		fig.Rejected++
	}
	putStatus, _ := do(ctx, t, client, http.MethodPut, sys.IngestURL+"/e/", []byte(`{}`), nil)
	fig.Tried++
	if putStatus != http.StatusMethodNotAllowed {
		t.Errorf("capture PUT: status %d, want 405", putStatus)
	} else {
		fig.Rejected++
	}

	// What capture accepted ends as an action or a dead letter.
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range traced {
		outcome := ""
		for outcome == "" && time.Now().Before(deadline) {
			actions, dead := 0, 0
			for _, id := range a.uuids {
				if led.hasAction(id) {
					actions++
				}
				for _, d := range led.deadLetters() {
					if bytes.Contains(d.Value.Value, []byte(id)) {
						dead++
						break
					}
				}
			}
			switch {
			case actions == len(a.uuids):
				outcome = "200 action"
			case dead > 0 && actions+dead == len(a.uuids):
				outcome = "200 dead-letter"
			default:
				time.Sleep(200 * time.Millisecond)
			}
		}
		switch {
		case outcome == "":
			t.Errorf("capture %s: accepted, but neither an action nor a dead letter came of it", a.in.label())
		case !a.in.allows(outcome):
			t.Errorf("capture %s: %s, want one of %q", a.in.label(), outcome, a.in.Want)
		default:
			fig.Accepted++
		}
	}
}

// webhookEntryPoint POSTs the webhook inputs, checks each answer and that nothing refused reached
// intercom.webhooks.raw, then replays a captured delivery.
func webhookEntryPoint(ctx context.Context, t *testing.T, sys *system, client *http.Client, ins []corpusInput, fig *corpusFigures) {
	t.Helper()
	rawBefore := endOffsetSum(t, sys, sys.Topics.IntercomRaw)
	stored := int64(0)
	for _, in := range ins {
		fig.Tried++
		status, answer := post(ctx, t, client, sys.WebhookURL, in.body, webhookHeaders(t, in))
		outcome := fmt.Sprint(status)
		if status == http.StatusOK {
			outcome = "200 stored"
			stored++
		}
		if !in.allows(outcome) {
			t.Errorf("webhook %s: %s (%s), want one of %q", in.label(), outcome, answer, in.Want)
			continue
		}
		if status == http.StatusOK {
			fig.Accepted++
		} else {
			fig.Rejected++
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		fig.Tried++
		if status, _ := do(ctx, t, client, method, sys.WebhookURL, nil, nil); status != http.StatusMethodNotAllowed {
			t.Errorf("webhook %s: status %d, want 405", method, status)
		} else {
			fig.Rejected++
		}
	}
	if got := endOffsetSum(t, sys, sys.Topics.IntercomRaw) - rawBefore; got != stored {
		t.Errorf("the webhook inputs left %d records on %s, want %d (the accepted ones only)", got, sys.Topics.IntercomRaw, stored)
	}

	// A captured delivery, replayed: accepted once, then taken for the duplicate it is.
	rawBefore = endOffsetSum(t, sys, sys.Topics.IntercomRaw)
	conv := sys.Fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: "usr_corpus_replay", Email: "replay@example.com"}, "<p>Hi</p>", "https://app.acme.dev/", nil)
	captured := captureDelivery(ctx, t, sys.Fake, "conversation.user.created", conv.ID)
	for attempt, want := range []string{"ok", "duplicate", "duplicate"} {
		status, answer := post(ctx, t, client, sys.WebhookURL, captured.body, captured.header)
		if attempt == 0 {
			if status != http.StatusOK || !strings.Contains(answer, `"`+want+`"`) {
				t.Fatalf("a fresh signed delivery: %d %s, want 200 %q", status, answer, want)
			}
			continue
		}
		fig.Tried++
		if status != http.StatusOK || !strings.Contains(answer, `"`+want+`"`) {
			t.Errorf("replay %d of a captured delivery: %d %s, want 200 %q", attempt, status, answer, want)
		} else {
			fig.Rejected++
		}
	}
	if got := endOffsetSum(t, sys, sys.Topics.IntercomRaw) - rawBefore; got != 1 {
		t.Errorf("a delivery replayed twice left %d records on %s, want 1", got, sys.Topics.IntercomRaw)
	}
	if status, _ := do(ctx, t, client, http.MethodHead, sys.WebhookURL, nil, nil); status != http.StatusOK {
		t.Errorf("webhook HEAD: %d, want 200", status)
	}
}

// rawTopics produces every raw input and checks that each was dead-lettered with its reason, or
// passed, and that ingest's group committed past it: no input may stop its partition.
func rawTopics(ctx context.Context, t *testing.T, sys *system, led *ledger, inputs map[string][]corpusInput, fig *corpusFigures) {
	t.Helper()
	producer := sys.Client(t, kgo.AllowAutoTopicCreation(), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedBytes(64<<20))
	type probe struct {
		topic string
		in    corpusInput
		key   string
		rec   *kgo.Record // the input, with its partition and offset once produced
	}
	var probes []*probe
	var recs []*kgo.Record
	for _, topic := range []string{sys.Topics.PosthogRaw, sys.Topics.IntercomRaw} {
		for i, in := range inputs[topic] {
			p := &probe{topic: topic, in: in, key: fmt.Sprintf("corpus:%s:%d", topic, i)}
			p.rec = &kgo.Record{Topic: topic, Key: []byte(p.key), Value: in.body}
			probes = append(probes, p)
			recs = append(recs, p.rec)
			fig.Tried++
		}
	}
	if err := produceSync(ctx, producer, recs...); err != nil {
		t.Fatalf("produce the corpus: %v", err)
	}
	adm := kadm.NewClient(sys.Client(t))
	passed := func(p *probe, committed kadm.OffsetResponses) bool {
		o, ok := committed.Lookup(p.topic, p.rec.Partition)
		return ok && o.Err == nil && o.At > p.rec.Offset
	}
	deadLetter := func(p *probe) (deadLetter, bool) {
		for _, d := range led.deadLetters() {
			if string(d.Value.Key) == p.key {
				return d, true
			}
		}
		return deadLetter{}, false
	}
	var committed kadm.OffsetResponses
	deadline := time.Now().Add(60 * time.Second)
	for {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := adm.FetchOffsets(fctx, groups[0])
		cancel()
		if err == nil {
			committed = resp
		}
		pending := 0
		for _, p := range probes {
			if !passed(p, committed) {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range probes {
		where := fmt.Sprintf("%s %s (partition %d, offset %d)", p.topic, p.in.label(), p.rec.Partition, p.rec.Offset)
		d, dead := deadLetter(p)
		outcome := "accepted"
		if dead {
			outcome = "dead-letter " + d.Reason
		}
		switch {
		case !passed(p, committed):
			t.Errorf("%s: ingest never committed past it: its partition is stopped at or before it", where)
		case !p.in.allows(outcome):
			t.Errorf("%s: %s, want one of %q", where, outcome, p.in.Want)
		case !dead:
			fig.Accepted++
		case d.Reason == "" || d.Value.Reason != d.Reason || d.Error == "" || d.Value.Error == "":
			t.Errorf("%s: dead letter without its reason and error: header %q, value %q, error %q", where, d.Reason, d.Value.Reason, d.Error)
		case d.SourceTopic != p.topic || d.Value.SourceTopic != p.topic || d.Service != "ingest":
			t.Errorf("%s: dead letter names source %q/%q and service %q", where, d.SourceTopic, d.Value.SourceTopic, d.Service)
		case d.Value.Partition != p.rec.Partition || d.Value.Offset != p.rec.Offset || !bytes.Equal(d.Value.Value, deadLetteredPart(p.in.body)):
			t.Errorf("%s: dead letter names %d@%d and carries %d bytes of value (%d sent)", where, d.Value.Partition, d.Value.Offset, len(d.Value.Value), len(p.in.body))
		default:
			fig.DeadLettered++
		}
	}
}

// post POSTs body to url with headers and returns the status and (the start of) the answer.
func post(ctx context.Context, t *testing.T, client *http.Client, url string, body []byte, header http.Header) (int, string) {
	t.Helper()
	return do(ctx, t, client, http.MethodPost, url, body, header)
}

func do(ctx context.Context, t *testing.T, client *http.Client, method, url string, body []byte, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusTooManyRequests {
		t.Errorf("%s %s answered %d: an entry point must never answer this to bad input", method, url, resp.StatusCode)
	}
	return resp.StatusCode, strings.TrimSpace(string(answer))
}

// webhookHeaders signs a webhook input as its manifest entry says.
func webhookHeaders(t *testing.T, in corpusInput) http.Header {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"intercom-parrot-service-client/1.0"}}
	switch in.Signature {
	case "valid":
		h.Set(intercom.SignatureHeader, intercom.Sign([]byte(clientSecret), in.body))
	case "forged":
		h.Set(intercom.SignatureHeader, intercom.Sign([]byte("not-the-client-secret"), in.body))
	case "missing":
	case "other-body":
		h.Set(intercom.SignatureHeader, intercom.Sign([]byte(clientSecret), append([]byte(" "), in.body...)))
	case "sha256":
		mac := hmac.New(sha256.New, []byte(clientSecret))
		mac.Write(in.body)
		h.Set(intercom.SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	default:
		t.Fatalf("webhook %s: unknown signature %q", in.label(), in.Signature)
	}
	return h
}

// capturedDelivery is a webhook delivery as it went over the wire.
type capturedDelivery struct {
	body   []byte
	header http.Header
}

// captureDelivery has the fake Intercom deliver a notification to a recorder and returns what it sent.
func captureDelivery(ctx context.Context, t *testing.T, fake *fakeintercom.Server, topic, convID string) capturedDelivery {
	t.Helper()
	got := make(chan capturedDelivery, 1)
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- capturedDelivery{body: body, header: r.Header.Clone()}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(rec)
	defer srv.Close()
	if err := fake.DeliverWebhook(ctx, srv.URL+"/", topic, convID); err != nil {
		t.Fatal(err)
	}
	return <-got
}

// endOffsetSum is how many records topic holds in all.
func endOffsetSum(t *testing.T, sys *system, topic string) int64 {
	t.Helper()
	cl := sys.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	offsets.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// deadLetteredPart is what a dead letter carries of a value: all of it, or its first
// kafka.MaxDeadLetterValue bytes, so that the dead letter itself stays storable.
func deadLetteredPart(value []byte) []byte {
	return value[:min(len(value), kafka.MaxDeadLetterValue)]
}
