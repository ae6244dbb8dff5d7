package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/service"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

func TestRunPlaysTheLoadAndOpensConversationsThroughTheFakesEndpoint(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "raw")
	kafkatest.CreateTopic(t, brokers, topic, 2)
	fake := fakeintercom.New(fakeintercom.Options{Token: "t", AdminID: "1", ClientSecret: "s"})
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	var webhooks atomic.Int32
	ingest := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { webhooks.Add(1) }))
	t.Cleanup(ingest.Close)

	var out bytes.Buffer
	err := run(context.Background(), []string{
		"-kafka.brokers=" + strings.Join(brokers, ","),
		"-topic.posthog-raw=" + topic,
		"-loadgen.sessions=3", "-loadgen.passes=1", "-loadgen.unpaced", "-loadgen.conversation-share=1",
		"-loadgen.fake-url=" + api.URL, "-loadgen.webhook-url=" + ingest.URL,
		"-log.level=warn",
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rec, _ := demo.Recorded()
	want := 3 * len(rec.Events)
	if got := len(kafkatest.Consume(t, brokers, topic, want, 20*time.Second)); got != want {
		t.Fatalf("%d records, want %d", got, want)
	}
	if n := len(fake.Conversations()); n != 3 || webhooks.Load() != 3 {
		t.Fatalf("%d conversations and %d webhooks, want 3 each", n, webhooks.Load())
	}
	if !strings.Contains(out.String(), "3 conversations opened, 0 failed") {
		t.Fatalf("output does not report the conversations:\n%s", out.String())
	}
}

func TestRunRefusesConversationsWithoutAFake(t *testing.T) {
	err := run(context.Background(), []string{"-loadgen.fake-url=", "-loadgen.conversation-share=0.5"}, &bytes.Buffer{})
	if !errors.Is(err, ErrNoFakeURL) {
		t.Fatalf("err %v, want ErrNoFakeURL", err)
	}
}

func TestRunRefusesAURLThatIsNotHTTP(t *testing.T) {
	err := run(context.Background(), []string{"-loadgen.webhook-url=ingest:8080/webhooks"}, &bytes.Buffer{})
	if !errors.Is(err, ErrBadURL) {
		t.Fatalf("err %v, want ErrBadURL", err)
	}
}

func TestPrintConfigListsTheLoadSettings(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-print-config", "-loadgen.sessions=42"}, &out)
	if !errors.Is(err, service.ErrPrinted) {
		t.Fatalf("err %v, want ErrPrinted", err)
	}
	for _, want := range []string{"THREADLINE_LOADGEN_SESSIONS=42", "THREADLINE_LOADGEN_EVENTS_PER_SECOND=2000", "THREADLINE_LOADGEN_FAKE_URL="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("print-config lacks %s:\n%s", want, out.String())
		}
	}
}
