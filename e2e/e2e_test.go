// Package e2e runs the four Threadline binaries as processes against a Kafka-protocol broker, a
// real redis-server and the fake Intercom, and checks what reaches the conversation.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

const (
	token        = "e2e-token"
	adminID      = "7310045"
	clientSecret = "e2e-client-secret"
)

// bins are the binaries under test, built once for the package.
var bins = stack.Binaries{}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

func binaries(t *testing.T) string { return bins.Dir(t) }

// pipeline is a running system under test.
type pipeline struct {
	Brokers   []string
	Redis     *redistest.Server
	Fake      *fakeintercom.Server
	IngestURL string
	Stack     *stack.Stack
	Topics    kafka.Topics
	Logs      *lockedBuffer
	Admins    map[string]string // service → its admin address (/metrics, /readyz)
}

// start runs the four binaries with env on top of the defaults and waits until all are ready.
func start(t *testing.T, env ...string) *pipeline {
	t.Helper()
	bin := binaries(t)
	p := &pipeline{Brokers: kafkatest.Brokers(t), Redis: redistest.Start(t), Topics: kafka.DefaultTopics(), Logs: &lockedBuffer{}}
	p.Fake = fakeintercom.New(fakeintercom.Options{Token: token, AdminID: adminID, ClientSecret: clientSecret})
	api := httptest.NewServer(p.Fake)
	t.Cleanup(api.Close)
	ingestAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p.IngestURL = "http://" + ingestAddr
	admins, err := stack.AdminAddrs()
	if err != nil {
		t.Fatal(err)
	}
	p.Admins = admins
	base := []string{
		"THREADLINE_KAFKA_BROKERS=" + strings.Join(p.Brokers, ","),
		"THREADLINE_KAFKA_TOPIC_PARTITIONS=3",
		"THREADLINE_REDIS_ADDRS=" + p.Redis.Addr,
		"THREADLINE_INTERCOM_API_BASE=" + api.URL,
		"THREADLINE_INTERCOM_TOKEN=" + token,
		"THREADLINE_INTERCOM_ADMIN_ID=" + adminID,
		"THREADLINE_INTERCOM_CLIENT_SECRET=" + clientSecret,
		"THREADLINE_HTTP_ADDR=" + ingestAddr,
		"THREADLINE_LOG_LEVEL=info",
	}
	p.Stack = stack.New(bin, append(base, env...), p.Logs)
	for _, s := range stack.Services {
		if _, err := p.Stack.Start(s, "THREADLINE_ADMIN_ADDR="+admins[s]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := p.Stack.StopAll(15 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", p.Logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range stack.Services {
		if err := stack.WaitReady(ctx, admins[s]); err != nil {
			t.Fatalf("%s: %v\nlogs:\n%s", s, err, p.Logs.String())
		}
	}
	return p
}

// restart starts service again, after it was stopped, with env on top of the pipeline's, and waits
// until it is ready.
func (p *pipeline) restart(t *testing.T, service string, env ...string) {
	t.Helper()
	if _, err := p.Stack.Start(service, append([]string{"THREADLINE_ADMIN_ADDR=" + p.Admins[service]}, env...)...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stack.WaitReady(ctx, p.Admins[service]); err != nil {
		t.Fatalf("%s: %v\nlogs:\n%s", service, err, p.Logs.String())
	}
}

// dump reads what is on the pipeline's topics, for a failure message.
func (p *pipeline) dump(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	for _, topic := range []string{p.Topics.ConversationEvents, p.Topics.ConversationActions, p.Topics.DLQ} {
		n := 0
		for _, off := range kafkatest.EndOffsets(t, p.Brokers, topic) {
			n += int(off)
		}
		fmt.Fprintf(&sb, "== %s (%d records)\n", topic, n)
		if n == 0 {
			continue
		}
		for _, r := range kafkatest.Consume(t, p.Brokers, topic, n, 10*time.Second) {
			fmt.Fprintf(&sb, "%s\n", r.Value)
		}
	}
	return sb.String()
}

func (p *pipeline) produceRaw(t *testing.T, key string, values ...[]byte) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: p.Topics.PosthogRaw, Key: []byte(key), Value: v}
	}
	kafkatest.Produce(t, p.Brokers, recs...)
}

// noteLine is one "[n] hh:mm:ss text" line of an actions note.
type noteLine struct {
	Seq  int
	Time string
	Text string
}

var lineRE = regexp.MustCompile(`^\[(\d+)\] (\d\d:\d\d:\d\d) (.*)$`)

// parseLines reads the numbered lines out of a note body.
func parseLines(body string) []noteLine {
	var out []noteLine
	for _, chunk := range regexp.MustCompile(`<br>|</p><p>|<p>|</p>`).Split(body, -1) {
		m := lineRE.FindStringSubmatch(html.UnescapeString(strings.TrimSpace(chunk)))
		if m == nil {
			continue
		}
		var seq int
		fmt.Sscan(m[1], &seq)
		out = append(out, noteLine{Seq: seq, Time: m[2], Text: m[3]})
	}
	return out
}

func (l noteLine) String() string { return fmt.Sprintf("[%d] %s %s", l.Seq, l.Time, l.Text) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*lockedBuffer)(nil)
