package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// The credentials the fake Intercom and the binaries share.
const (
	intercomToken = "chaos-intercom-token-5f1d8c"
	adminID       = "7310045"
	clientSecret  = "chaos-client-secret-9a7e42"
)

// groups are the consumer groups of the four services, whose lag says whether the pipeline drained.
var groups = []string{"threadline-ingest", "threadline-linker", "threadline-notewriter", "threadline-summarizer"}

// bins are the binaries under test, built once for the package.
var bins = stack.Binaries{}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

func binaries(t *testing.T) string { return bins.Dir(t) }

// broker is a kfake cluster on a fixed port with its data kept in a directory, so that a test can
// close it and bring it back: a broker restart the binaries reconnect to by themselves.
type broker struct {
	Addr string
	opts []kfake.Opt

	mu sync.Mutex
	c  *kfake.Cluster
}

// startBroker starts a one-broker kfake cluster with a data directory and a fixed port, closed when
// t ends. extra options (SASL, TLS) come last.
func startBroker(t *testing.T, extra ...kfake.Opt) *broker {
	t.Helper()
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, portText, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{
		Addr: addr,
		opts: append([]kfake.Opt{
			kfake.NumBrokers(1),
			kfake.Ports(port),
			kfake.DataDir(t.TempDir()),
			kfake.AllowAutoTopicCreation(),
			kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		}, extra...),
	}
	if err := b.open(); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func (b *broker) open() error {
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may take a moment to be free again
		var c *kfake.Cluster
		if c, err = kfake.NewCluster(b.opts...); err == nil {
			b.c = c
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kfake on %s: %w", b.Addr, err)
}

// Stop closes the broker; its data stays in the directory. Clients see connections refused.
func (b *broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

// StartAgain brings a stopped broker back on the same port with the same data.
func (b *broker) StartAgain() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return errors.New("broker is running")
	}
	return b.open()
}

// Close stops the broker for good.
func (b *broker) Close() { b.Stop() }

// systemOptions change how a system is started.
type systemOptions struct {
	Env        []string          // THREADLINE_* settings on top of the defaults
	BrokerOpts []kfake.Opt       // extra kfake options (SASL, TLS)
	ClientOpts []kgo.Opt         // what the test's own Kafka clients need to reach that broker
	RedisArgs  []string          // extra redis-server arguments
	Redis      *redistest.Server // a Redis started by the test, used instead of starting one
	Fake       fakeintercom.Options
}

// postedBody is the body of one call the notewriter made to post a note, as it was sent: notes
// redacted later keep their body here.
type postedBody struct {
	ConversationID string
	Body           string
}

// replyRecorder keeps the body of every reply call (the notes and summaries posted), whatever
// the fake answered.
type replyRecorder struct {
	mu     sync.Mutex
	bodies []postedBody
}

var replyPath = regexp.MustCompile(`^/conversations/([^/]+)/reply$`)

func (rr *replyRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := replyPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
			raw, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "unreadable body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			var req struct {
				Body string `json:"body"`
			}
			if json.Unmarshal(raw, &req) == nil {
				rr.mu.Lock()
				rr.bodies = append(rr.bodies, postedBody{ConversationID: m[1], Body: req.Body})
				rr.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Bodies returns the bodies posted so far.
func (rr *replyRecorder) Bodies() []postedBody {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]postedBody(nil), rr.bodies...)
}

// system is the pipeline under test: the four binaries as processes, the broker, Redis and the
// fake Intercom.
type system struct {
	Broker     *broker
	Redis      *redistest.Server
	Fake       *fakeintercom.Server
	IngestURL  string
	WebhookURL string
	Admins     map[string]string
	Stack      *stack.Stack
	Logs       *lockedBuffer
	Topics     kafka.Topics
	Posted     *replyRecorder // every note and summary body the notewriter sent

	clientOpts []kgo.Opt
}

// baseEnv are the settings every test runs the binaries with: short group timings so a killed
// member is replaced within seconds, quick lag checks for readiness, and short backoffs so the
// pipeline resumes soon after an outage ends.
var baseEnv = []string{
	"THREADLINE_KAFKA_TOPIC_PARTITIONS=3",
	"THREADLINE_CONSUMER_SESSION_TIMEOUT=3s",
	"THREADLINE_CONSUMER_HEARTBEAT_INTERVAL=300ms",
	"THREADLINE_CONSUMER_REBALANCE_TIMEOUT=6s",
	"THREADLINE_CONSUMER_DRAIN_TIMEOUT=3s",
	"THREADLINE_CONSUMER_LAG_INTERVAL=1s",
	"THREADLINE_CONSUMER_FETCH_MAX_WAIT=250ms",
	"THREADLINE_CONSUMER_RETRY_BACKOFF_MAX=2s",
	"THREADLINE_NOTES_BREAKER_OPEN_TIMEOUT=3s",
	"THREADLINE_NOTES_RETRY_MAX=3s",
	"THREADLINE_INTERCOM_RETRY_BACKOFF_MAX=3s",
	"THREADLINE_RESTORE_CHECK_INTERVAL=2s",
	"THREADLINE_SUMMARY_THRESHOLD=12",
	"THREADLINE_LOG_LEVEL=info",
}

// startSystem starts the broker, Redis, the fake Intercom and the four binaries, and waits until
// all four are ready.
func startSystem(t *testing.T, o systemOptions) *system {
	t.Helper()
	bin := binaries(t)
	s := &system{
		Broker:     startBroker(t, o.BrokerOpts...),
		Redis:      o.Redis,
		Topics:     kafka.DefaultTopics(),
		Logs:       &lockedBuffer{},
		Posted:     &replyRecorder{},
		clientOpts: o.ClientOpts,
	}
	if s.Redis == nil {
		s.Redis = redistest.StartWith(t, o.RedisArgs...)
	}
	if o.Fake.Token == "" {
		o.Fake.Token = intercomToken
	}
	if o.Fake.AdminID == "" {
		o.Fake.AdminID = adminID
	}
	if o.Fake.ClientSecret == "" {
		o.Fake.ClientSecret = clientSecret
	}
	s.Fake = fakeintercom.New(o.Fake)
	srv := httptest.NewServer(s.Posted.wrap(s.Fake))
	t.Cleanup(srv.Close)
	ingestAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s.IngestURL = "http://" + ingestAddr
	s.WebhookURL = s.IngestURL + "/webhooks/intercom"
	if s.Admins, err = stack.AdminAddrs(); err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, baseEnv...),
		"THREADLINE_KAFKA_BROKERS="+s.Broker.Addr,
		"THREADLINE_REDIS_ADDRS="+s.Redis.Addr,
		"THREADLINE_INTERCOM_API_BASE="+srv.URL,
		"THREADLINE_INTERCOM_TOKEN="+o.Fake.Token,
		"THREADLINE_INTERCOM_ADMIN_ID="+o.Fake.AdminID,
		"THREADLINE_INTERCOM_CLIENT_SECRET="+o.Fake.ClientSecret,
		"THREADLINE_HTTP_ADDR="+ingestAddr,
	)
	s.Stack = stack.New(bin, append(env, o.Env...), s.Logs)
	for _, svc := range stack.Services {
		s.start(t, svc)
	}
	t.Cleanup(func() {
		if err := s.Stack.StopAll(15 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs (last 400 lines):\n%s", s.Logs.Tail(400))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, svc := range stack.Services {
		if err := stack.WaitReady(ctx, s.Admins[svc]); err != nil {
			t.Fatalf("%s: %v\nlogs:\n%s", svc, err, s.Logs.Tail(200))
		}
	}
	return s
}

func (s *system) start(t *testing.T, svc string) {
	t.Helper()
	if _, err := s.Stack.Start(svc, "THREADLINE_ADMIN_ADDR="+s.Admins[svc]); err != nil {
		t.Fatal(err)
	}
}

// Restart starts a service again after it was killed or exited.
func (s *system) Restart(svc string) error {
	_, err := s.Stack.Start(svc, "THREADLINE_ADMIN_ADDR="+s.Admins[svc])
	return err
}

// Running reports whether the service's process is alive.
func (s *system) Running(svc string) bool {
	p := s.Stack.Process(svc)
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// Ready reports whether the service answers 200 on /readyz now.
func (s *system) Ready(ctx context.Context, svc string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return stack.WaitReady(ctx, s.Admins[svc]) == nil
}

// Client returns a Kafka client of the test's own (reaching the broker however the binaries do),
// closed when t ends.
func (s *system) Client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append(append([]kgo.Opt{kgo.SeedBrokers(s.Broker.Addr)}, s.clientOpts...), opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceSync produces records synchronously; the client retries through broker restarts until
// ctx ends.
func produceSync(ctx context.Context, cl *kgo.Client, recs ...*kgo.Record) error {
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// TotalLag sums the lag of the four services' groups; ok is false when it could not be read (a
// group rebalancing, the broker away).
func (s *system) TotalLag(ctx context.Context, adm *kadm.Client) (total int64, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := adm.Lag(ctx, groups...)
	if err != nil || !lags.Ok() {
		return 0, false
	}
	for _, g := range groups {
		l, found := lags[g]
		if !found {
			return 0, false
		}
		for _, byPartition := range l.Lag {
			for _, m := range byPartition {
				if m.Err != nil || m.Lag < 0 {
					return 0, false
				}
				total += m.Lag
			}
		}
	}
	return total, true
}

// lockedBuffer collects the processes' output.
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

// Tail returns the last n lines.
func (l *lockedBuffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
