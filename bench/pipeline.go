package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/loadgen"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// Credentials the services and the fake Intercom share in the run.
const (
	benchToken        = "bench-intercom-token"
	benchAdminID      = "7310045"
	benchClientSecret = "bench-client-secret"
	webhookPath       = "/webhooks/intercom"
)

// groupOf is the consumer group of a service (its default, which the run keeps).
func groupOf(service string) string { return "threadline-" + service }

// notewriterEndpoints are the fake's endpoints the notewriter calls; the others are ingest's
// contact lookups.
func notewriterEndpoints() []string {
	return []string{
		fakeintercom.EndpointReply, fakeintercom.EndpointRedact, fakeintercom.EndpointGetConversation,
		fakeintercom.EndpointCreateEvent,
	}
}

// allEndpoints are every endpoint the fake counts.
func allEndpoints() []string {
	return []string{
		fakeintercom.EndpointReply, fakeintercom.EndpointRedact, fakeintercom.EndpointGetConversation,
		fakeintercom.EndpointGetContact, fakeintercom.EndpointFindContact, fakeintercom.EndpointSearchContacts,
		fakeintercom.EndpointCreateEvent, fakeintercom.EndpointListEvents, fakeintercom.EndpointUnknown,
	}
}

// system is the pipeline under test: a kfake broker, a redis-server, the fake Intercom and the
// four services as processes.
type system struct {
	cfg     Config
	out     io.Writer
	log     *zap.Logger
	workDir string

	broker  *kfake.Cluster
	brokers []string
	redis   *redistest.Server
	fake    *fakeintercom.Server
	fakeSrv *http.Server
	ingest  string // ingest's HTTP base URL
	topics  kafka.Topics

	stack   *stack.Stack
	logFile *os.File
	admins  map[string]string
	running map[string]bool
	noteEnv []string // the notewriter's current coalescing environment

	client   *kgo.Client // admin requests
	adm      *kadm.Client
	producer *kgo.Client // the load generator's
	notes    *notesWatcher
	stages   *stageWatcher

	mu      sync.Mutex
	peakRSS map[string]int64
}

// startSystem starts the broker, Redis and the fake Intercom (not the services).
func startSystem(ctx context.Context, cfg Config, workDir string, out io.Writer, log *zap.Logger) (*system, error) {
	s := &system{
		cfg: cfg, out: out, log: log, workDir: workDir, topics: kafka.DefaultTopics(),
		running: map[string]bool{}, peakRSS: map[string]int64{},
	}
	var err error
	s.broker, err = kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("bench: kfake: %w", err)
	}
	s.brokers = s.broker.ListenAddrs()
	redisDir := filepath.Join(workDir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		s.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	s.redis, err = redistest.StartProcess(redisDir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: a real redis-server is needed: %w", err)
	}
	s.fake = fakeintercom.New(fakeintercom.Options{Token: benchToken, AdminID: benchAdminID, ClientSecret: benchClientSecret})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: fake Intercom: %w", err)
	}
	s.fakeSrv = &http.Server{Handler: s.fake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.fakeSrv.Serve(ln) }()
	fakeURL := "http://" + ln.Addr().String()

	s.client, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: kafka client: %w", err)
	}
	s.adm = kadm.NewClient(s.client)
	s.producer, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: kafka client: %w", err)
	}

	ingestAddr, err := stack.FreeAddr()
	if err != nil {
		s.close()
		return nil, err
	}
	s.ingest = "http://" + ingestAddr
	if s.admins, err = stack.AdminAddrs(); err != nil {
		s.close()
		return nil, err
	}
	s.logFile, err = os.Create(filepath.Join(workDir, "services.log"))
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	s.stack = stack.New(filepath.Join(workDir, "bin"), []string{
		"THREADLINE_KAFKA_BROKERS=" + strings.Join(s.brokers, ","),
		"THREADLINE_KAFKA_TOPIC_PARTITIONS=" + strconv.Itoa(cfg.Partitions),
		"THREADLINE_REDIS_ADDRS=" + s.redis.Addr,
		"THREADLINE_INTERCOM_API_BASE=" + fakeURL,
		"THREADLINE_INTERCOM_TOKEN=" + benchToken,
		"THREADLINE_INTERCOM_ADMIN_ID=" + benchAdminID,
		"THREADLINE_INTERCOM_CLIENT_SECRET=" + benchClientSecret,
		"THREADLINE_HTTP_ADDR=" + ingestAddr,
	}, s.logFile)
	return s, nil
}

// close stops everything still running.
func (s *system) close() {
	if s.stack != nil {
		for _, name := range slices.Backward(stack.Services) {
			if s.running[name] {
				_ = s.stack.Stop(name, 15*time.Second)
			}
		}
	}
	if s.notes != nil {
		s.notes.close()
	}
	if s.stages != nil {
		s.stages.close()
	}
	if s.producer != nil {
		s.producer.Close()
	}
	if s.client != nil {
		s.client.Close()
	}
	if s.fakeSrv != nil {
		_ = s.fakeSrv.Close()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
	if s.broker != nil {
		s.broker.Close()
	}
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
}

func (s *system) progress(format string, args ...any) {
	fmt.Fprintf(s.out, "bench: "+format+"\n", args...)
}

// start starts service with extra environment.
func (s *system) start(service string, extra ...string) error {
	env := []string{"THREADLINE_ADMIN_ADDR=" + s.admins[service]}
	if _, err := s.stack.Start(service, append(env, extra...)...); err != nil {
		return err
	}
	s.running[service] = true
	return nil
}

// stop stops service after noting its peak RSS.
func (s *system) stop(service string) error {
	s.notePeakRSS(service)
	s.running[service] = false
	return s.stack.Stop(service, 20*time.Second)
}

func (s *system) notePeakRSS(service string) {
	p := s.stack.Process(service)
	if p == nil || !s.running[service] {
		return
	}
	rss, err := PeakRSS(p.Pid())
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peakRSS[service] = max(s.peakRSS[service], rss)
}

func (s *system) pid(service string) int {
	if p := s.stack.Process(service); p != nil {
		return p.Pid()
	}
	return 0
}

// alive fails when a service that should be running has exited.
func (s *system) alive() error {
	for _, name := range stack.Services {
		if !s.running[name] {
			continue
		}
		p := s.stack.Process(name)
		select {
		case <-p.Done():
			return fmt.Errorf("bench: %s exited; see %s", name, s.logFile.Name())
		default:
		}
	}
	return nil
}

func (s *system) waitReady(ctx context.Context, services ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, name := range services {
		if err := stack.WaitReady(ctx, s.admins[name]); err != nil {
			return fmt.Errorf("bench: %s: %w; see %s", name, err, s.logFile.Name())
		}
	}
	return nil
}

// calls returns the fake's API calls so far, by endpoint.
func (s *system) calls() map[string]int {
	out := map[string]int{}
	for _, e := range allEndpoints() {
		out[e] = s.fake.Requests(e)
	}
	return out
}

func sumCalls(calls map[string]int, endpoints []string) int {
	n := 0
	for _, e := range endpoints {
		n += calls[e]
	}
	return n
}

func diffCalls(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// endOffsets sums the end offsets of topic's partitions.
func (s *system) endOffsets(ctx context.Context, topic string) (int64, error) {
	ends, err := s.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("bench: end offsets of %s: %w", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n, nil
}

// lag sums the committed lag of every running service's group.
func (s *system) lag(ctx context.Context) (int64, error) {
	groups := make([]string, 0, len(stack.Services))
	for _, name := range stack.Services {
		if s.running[name] {
			groups = append(groups, groupOf(name))
		}
	}
	lags, err := s.adm.Lag(ctx, groups...)
	if err != nil {
		return 0, fmt.Errorf("bench: lag: %w", err)
	}
	var total int64
	lags.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
	return total, nil
}

// settle waits until the pipeline has finished: every group committed everything, the watchers
// read every note and action record, and the fake Intercom saw no call for quiet. It returns how
// long it waited, and when the last call or note it saw happened.
func (s *system) settle(ctx context.Context, quiet time.Duration) (took time.Duration, lastActivity time.Time, err error) {
	start := time.Now()
	deadline := start.Add(s.cfg.DrainTimeout)
	last, lastChange := -1, time.Now()
	for {
		if err := s.alive(); err != nil {
			return 0, time.Time{}, err
		}
		activity := sumCalls(s.calls(), allEndpoints()) + s.notes.len()
		if activity != last {
			last, lastChange = activity, time.Now()
		}
		var lag int64 = -1
		if time.Since(lastChange) >= quiet {
			if lag, err = s.lag(ctx); err != nil {
				return 0, time.Time{}, err
			}
			caughtUp, err := s.watchersCaughtUp(ctx)
			if err != nil {
				return 0, time.Time{}, err
			}
			if lag == 0 && caughtUp {
				return time.Since(start), lastChange, nil
			}
		}
		if time.Now().After(deadline) {
			return time.Since(start), lastChange, fmt.Errorf("bench: the pipeline did not settle within %s (lag %d)", s.cfg.DrainTimeout, lag)
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// watchersCaughtUp reports whether the watchers have read every record of their topics.
func (s *system) watchersCaughtUp(ctx context.Context) (bool, error) {
	written, err := s.endOffsets(ctx, s.topics.NotesWritten)
	if err != nil {
		return false, err
	}
	if int64(s.notes.len()) < written {
		return false, nil
	}
	for _, topic := range []string{s.topics.ProductActions, s.topics.ConversationActions} {
		if s.stages == nil {
			break
		}
		end, err := s.endOffsets(ctx, topic)
		if err != nil {
			return false, err
		}
		if int64(s.stages.read(topic)) < end {
			return false, nil
		}
	}
	return true, nil
}

// cpu returns the CPU time of every running service, and of this process.
func (s *system) cpu() map[string]time.Duration {
	out := map[string]time.Duration{BenchProcess: selfCPU()}
	for _, name := range stack.Services {
		if !s.running[name] {
			continue
		}
		if d, err := ProcessCPU(s.pid(name)); err == nil {
			out[name] = d
		}
	}
	return out
}

// drain samples service's consumed-records counter of topic, and its CPU time, until it has
// consumed target records.
func (s *system) drain(ctx context.Context, service, topic string, target int) (Drain, error) {
	d := Drain{Service: service, Topic: topic, Target: target}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	labels := map[string]string{"topic": topic}
	for {
		if err := s.alive(); err != nil {
			return d, err
		}
		v, err := Scrape(ctx, s.admins[service], RecordsConsumedMetric, labels)
		if err == nil {
			smp := Sample{At: time.Now(), Value: v, Bench: selfCPU()}
			if cpu, err := ProcessCPU(s.pid(service)); err == nil {
				smp.CPU = cpu
			}
			if cpu, err := ProcessCPU(s.redis.Pid()); err == nil {
				smp.Redis = cpu
			}
			d.Samples = append(d.Samples, smp)
			if v >= float64(target) {
				d.HandleSeconds, _ = Scrape(ctx, s.admins[service], "threadline_consumer_handle_seconds_sum", labels)
				d.HandleCalls, _ = Scrape(ctx, s.admins[service], "threadline_consumer_handle_seconds_count", labels)
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("bench: %s consumed %d of %d %s records within %s", service, int(lastValue(d)), target, topic, s.cfg.DrainTimeout)
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lastValue(d Drain) float64 {
	if len(d.Samples) == 0 {
		return 0
	}
	return d.Samples[len(d.Samples)-1].Value
}

// profileCPU starts a CPU profile of service for seconds, in the background; wait for it with
// the returned function.
func (s *system) profileCPU(ctx context.Context, service, stage string, seconds int) func() (Profile, error) {
	if !s.cfg.Profile {
		return nil
	}
	p := Profile{Service: service, Kind: ProfileCPU, Stage: stage,
		Path: filepath.Join(s.workDir, "profiles", service+"-"+stage+"-cpu.pprof")}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
		defer cancel()
		done <- FetchProfile(ctx, s.admins[service], fmt.Sprintf("profile?seconds=%d", seconds), p.Path)
	}()
	return func() (Profile, error) { return p, <-done }
}

// profileAllocs saves the allocations service made since it started.
func (s *system) profileAllocs(ctx context.Context, service, stage string) (Profile, error) {
	p := Profile{Service: service, Kind: ProfileAllocs, Stage: stage,
		Path: filepath.Join(s.workDir, "profiles", service+"-"+stage+"-allocs.pprof")}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p, FetchProfile(ctx, s.admins[service], "allocs", p.Path)
}

// recordingOpener remembers who would open a conversation, to open them later.
type recordingOpener struct {
	mu    sync.Mutex
	users []loadgen.User
}

func (r *recordingOpener) OpenConversation(_ context.Context, u loadgen.User) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users = append(r.users, u)
	return "", nil
}

// notesWatcher reads notes.written from the start, as the run goes.
type notesWatcher struct {
	client *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	notes []messages.NoteWritten
	bad   int
}

func watchNotes(ctx context.Context, brokers []string, topic string) (*notesWatcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("bench: notes watcher: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &notesWatcher{client: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			fetches.EachRecord(func(r *kgo.Record) {
				var n messages.NoteWritten
				err := messages.Decode(r.Value, &n)
				w.mu.Lock()
				if err != nil {
					w.bad++
				}
				w.notes = append(w.notes, n)
				w.mu.Unlock()
			})
		}
	}()
	return w, nil
}

func (w *notesWatcher) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.notes)
}

// since returns the notes read after the first n.
func (w *notesWatcher) since(n int) []messages.NoteWritten {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]messages.NoteWritten(nil), w.notes[min(n, len(w.notes)):]...)
}

func (w *notesWatcher) close() {
	w.cancel()
	<-w.done
	w.client.Close()
}

// errNoLoad is returned when the load generator produced nothing.
var errNoLoad = errors.New("bench: the load generator produced no events")
