package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/redistest"
)

// DurationEnv sets how long the chaos run lasts (a Go duration); make chaos runs the full form.
const DurationEnv = "THREADLINE_CHAOS_DURATION"

// defaultDuration is the short form CI runs.
const defaultDuration = 60 * time.Second

// fullDuration is the length at which the plan reaches its full strength: a 60 s Intercom outage,
// 30 s of 429s. Shorter runs scale these down.
const fullDuration = 6 * time.Minute

// The journey's events that are not actions: the noise rule drops the first two, and $identify
// only tells the linker who the user is (it is on product.actions but never in a note).
var (
	noiseEvents   = map[string]bool{"$web_vitals": true, "$feature_flag_called": true}
	identifyEvent = "$identify"
)

// chaosPlan is what the chaos run does over its duration.
type chaosPlan struct {
	Duration            time.Duration
	JourneyEvery        time.Duration // a fresh journey starts this often
	Kills               int           // kill -9 of a random binary, then a restart
	RedisRestarts       int
	BrokerRestarts      int
	Outage              time.Duration // how long Redis or the broker stays away when restarted
	IntercomDown        time.Duration // the fake Intercom answers 503
	IntercomRateLimited time.Duration // the fake Intercom answers 429
	AfterEffectFaults   int           // connection resets, and as many 502s, after a call took effect
	DrainTimeout        time.Duration // how long the pipeline may take to finish after the chaos
}

// planFor returns the plan of a run of duration d.
func planFor(d time.Duration) chaosPlan {
	scale := min(1, float64(d)/float64(fullDuration))
	restarts := 1 + int(d/(4*time.Minute))
	return chaosPlan{
		Duration:            d,
		JourneyEvery:        600 * time.Millisecond,
		Kills:               max(4, int(d/(20*time.Second))),
		RedisRestarts:       restarts,
		BrokerRestarts:      restarts,
		Outage:              time.Duration(float64(5*time.Second) * max(scale, 0.4)),
		IntercomDown:        max(5*time.Second, time.Duration(float64(60*time.Second)*scale)),
		IntercomRateLimited: max(3*time.Second, time.Duration(float64(30*time.Second)*scale)),
		AfterEffectFaults:   3 + int(d/time.Minute),
		DrainTimeout:        max(2*time.Minute, d/2),
	}
}

func chaosDuration(t *testing.T) time.Duration {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(DurationEnv))
	if v == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 20*time.Second {
		t.Fatalf("%s=%q: want a Go duration of at least 20s", DurationEnv, v)
	}
	return d
}

// TestChaos runs steady load through the four binaries while a chaos loop kill -9s them at random
// moments and restarts them, restarts Redis (append-only file kept) and the broker (data directory
// kept), and takes the fake Intercom down and then rate-limits it. When the pipeline has drained,
// every linked conversation must hold each of its actions exactly once, in a note or under a
// summary, no note may have been posted twice, and every summary must precede the redaction of the
// notes it replaces.
func TestChaos(t *testing.T) {
	plan := planFor(chaosDuration(t))
	sys := startSystem(t, systemOptions{RedisArgs: redistest.PersistentArgs()})
	if sys.Redis.Embedded {
		t.Logf("no redis-server on PATH: Redis restarts run against the embedded fallback")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tap := sys.Client(t, kgo.ConsumeTopics(sys.Topics.NotesWritten, sys.Topics.ConversationSummaries,
		sys.Topics.ProductActions, sys.Topics.ConversationActions, sys.Topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(250*time.Millisecond))
	led := tapTopics(ctx, tap, sys.Topics)
	t.Logf("plan: %s of load and chaos, a journey every %s, %d kills, %d Redis and %d broker restarts (%s away), Intercom down %s then 429 for %s",
		plan.Duration, plan.JourneyEvery, plan.Kills, plan.RedisRestarts, plan.BrokerRestarts, plan.Outage, plan.IntercomDown, plan.IntercomRateLimited)

	started := time.Now()
	load := startLoad(ctx, t, sys, plan)
	mon := &monkey{sys: sys, plan: plan, rng: rand.New(rand.NewPCG(uint64(started.UnixNano()), 10))}
	superviseCtx, stopSupervising := context.WithCancel(ctx)
	supervised := make(chan struct{})
	go func() { defer close(supervised); mon.supervise(superviseCtx) }()
	intercomDone := make(chan struct{})
	go func() { defer close(intercomDone); mon.intercomFaults(ctx) }()
	mon.run(ctx, t)
	<-intercomDone
	load.stop()
	sys.Fake.SetFault(fakeintercom.Fault{})
	t.Logf("chaos over after %s: %d journeys started; waiting for webhooks and the pipeline to drain", time.Since(started).Round(time.Second), load.started())
	load.wait(t, 2*time.Minute)

	journeys := load.journeys()
	adm := kadm.NewClient(sys.Client(t))
	drainStart := time.Now()
	rep, drained := waitDrained(ctx, t, sys, adm, led, journeys, plan.DrainTimeout)
	stopSupervising()
	<-supervised
	t.Logf("drain took %s (drained: %v)", time.Since(drainStart).Round(time.Second), drained)

	// Every binary is still running and ready.
	for _, svc := range stack.Services {
		if !sys.Running(svc) {
			t.Errorf("%s is not running after the chaos", svc)
		} else if !sys.Ready(ctx, svc) {
			t.Errorf("%s is not ready after the chaos", svc)
		}
	}
	survived := mon.survived()

	// Ingest neither lost nor invented an action: every journey's session carries its actions.
	ingestLost := 0
	for _, j := range journeys {
		want := len(ingestActionIDs(j.Journey))
		if got := led.sessionActions(j.Journey.SessionID); got != want {
			ingestLost += max(0, want-got)
			t.Errorf("session %s: product.actions carries %d distinct actions, want %d", j.Journey.SessionID, got, want)
		}
	}
	undelivered := 0
	for _, j := range journeys {
		if j.ConvID != "" && !j.Delivered {
			undelivered++
			t.Errorf("the webhook of conversation %s was never accepted: %v", j.ConvID, j.Err)
		}
	}
	for _, d := range led.deadLetters() {
		t.Errorf("dead letter under clean load: %s from %s by %s: %s", d.Reason, d.SourceTopic, d.Service, d.Error)
	}
	led.mu.Lock()
	for _, u := range led.undecoded {
		t.Errorf("undecodable record: %s", u)
	}
	led.mu.Unlock()

	events, sent := 0, 0
	for _, j := range journeys {
		events += len(j.Journey.Events)
		sent += len(noteActionIDs(j.Journey))
	}
	reqs := sys.Fake.RequestLog()
	status := map[int]int{}
	for _, r := range reqs {
		status[r.Status]++
	}
	t.Logf("load: %d journeys (%d opened a conversation), %d events, %d actions sent", len(journeys), rep.Conversations, events, sent)
	t.Logf("Intercom: %d API calls, by status %v; %d answered 429", len(reqs), status, sys.Fake.RateLimited())
	t.Logf("restarts: %s", mon.describe())
	t.Logf("delivery: %s", rep.Summary())
	const maxShown = 40
	for i, p := range rep.Problems {
		if i == maxShown {
			t.Errorf("… and %d more problems", len(rep.Problems)-maxShown)
			break
		}
		t.Errorf("%s", p)
	}
	if rep.Duplicates != 0 || rep.Lost != 0 || ingestLost != 0 {
		t.Errorf("duplicates %d, lost %d (ingest lost %d): want 0", rep.Duplicates, rep.Lost, ingestLost)
	}
	if !drained {
		t.Errorf("%v within %s", errNotDrained, plan.DrainTimeout)
	}
	if mon.kills.Load() < 4 || plan.Duration >= fullDuration && mon.kills.Load() < 10 {
		t.Errorf("only %d kills happened", mon.kills.Load())
	}
	if n := mon.unplanned.Load(); n > 0 {
		t.Errorf("%d times a binary exited by itself instead of waiting for its dependencies (see the restarts above)", n)
	}

	// Replaying every topic from the start posts nothing again.
	replayed := 0
	if drained {
		replayed = replayEverything(ctx, t, sys, adm, led, journeys, plan.DrainTimeout)
	}
	t.Logf("CHAOS FIGURES: duration %s, actions sent %d (%d to linked conversations), delivered %d, duplicates %d, lost %d, restarts survived %d (kills %d, Redis %d, broker %d), unplanned exits %d, webhooks undelivered %d, notes posted again by a full replay %d",
		plan.Duration, sent, rep.ActionsExpected, rep.Delivered, rep.Duplicates, rep.Lost+ingestLost, survived,
		mon.kills.Load(), mon.redisRestarts.Load(), mon.brokerRestarts.Load(), mon.unplanned.Load(), undelivered, replayed)
}

// replayEverything restarts the four services with THREADLINE_REPLAY_FROM=earliest, waits until
// they have gone through every topic again, and returns how many notes that posted (want 0); the
// delivery check must still pass.
func replayEverything(ctx context.Context, t *testing.T, sys *system, adm *kadm.Client, led *ledger, journeys []journeyRecord, timeout time.Duration) int {
	t.Helper()
	notes := func() int {
		n := 0
		for _, j := range journeys {
			if j.ConvID != "" {
				n += len(sys.Fake.Notes(j.ConvID))
			}
		}
		return n
	}
	before := notes()
	led.mu.Lock()
	recordsBefore := led.records
	led.mu.Unlock()
	for _, svc := range stack.Services {
		if err := sys.Stack.Stop(svc, 20*time.Second); err != nil {
			t.Errorf("stop %s for the replay: %v", svc, err)
		}
		if _, err := sys.Stack.Start(svc, "THREADLINE_ADMIN_ADDR="+sys.Admins[svc], "THREADLINE_REPLAY_FROM=earliest"); err != nil {
			t.Fatalf("start %s to replay: %v", svc, err)
		}
	}
	readyCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, svc := range stack.Services {
		if err := stack.WaitReady(readyCtx, sys.Admins[svc]); err != nil {
			t.Errorf("%s did not finish its replay: %v", svc, err)
			return notes() - before
		}
	}
	rep, drained := waitDrained(ctx, t, sys, adm, led, journeys, timeout)
	if !drained {
		t.Errorf("the replay did not drain: %s", rep.Summary())
	}
	for _, p := range rep.Problems {
		t.Errorf("after the replay: %s", p)
	}
	// ingest's replay produces every action again: proof that the services did start over.
	led.mu.Lock()
	reproduced := led.records - recordsBefore
	led.mu.Unlock()
	if reproduced == 0 {
		t.Errorf("the replay produced nothing: the services did not start over from the beginning")
	}
	t.Logf("replay: the services went through every topic again; %d records reproduced downstream", reproduced)
	again := notes() - before
	if again != 0 {
		t.Errorf("replaying every topic posted %d notes again", again)
	}
	return again
}

// errNotDrained is reported when the pipeline did not finish within the time given.
var errNotDrained = errors.New("the pipeline did not drain")

// ingestActionIDs are the event uuids of the journey that ingest turns into actions.
func ingestActionIDs(j demo.Journey) []string {
	var ids []string
	for _, ev := range j.Events {
		if !noiseEvents[ev.Name] {
			ids = append(ids, ev.UUID)
		}
	}
	return ids
}

// noteActionIDs are the event uuids of the journey that must reach the conversation's notes.
func noteActionIDs(j demo.Journey) []string {
	var ids []string
	for _, ev := range j.Events {
		if !noiseEvents[ev.Name] && ev.Name != identifyEvent {
			ids = append(ids, ev.UUID)
		}
	}
	return ids
}

// waitDrained polls until every linked conversation holds all its actions, the four groups have
// no lag and nothing new arrives on the output topics, or timeout passes; it returns the delivery
// check of the final state.
func waitDrained(ctx context.Context, t *testing.T, sys *system, adm *kadm.Client, led *ledger, journeys []journeyRecord, timeout time.Duration) (deliveryReport, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	lastRecords, quiet := -1, 0
	var rep deliveryReport
	for {
		rep = deliveryCheck(sys, led, journeys)
		lag, lagKnown := sys.TotalLag(ctx, adm)
		led.mu.Lock()
		records := led.records
		led.mu.Unlock()
		if records == lastRecords {
			quiet++
		} else {
			quiet = 0
		}
		lastRecords = records
		if rep.Lost == 0 && rep.Delivered == rep.ActionsExpected && len(rep.Problems) == 0 && lagKnown && lag == 0 && quiet >= 3 {
			return rep, true
		}
		if time.Now().After(deadline) {
			t.Logf("not drained: lag %d (known %v), %d problems; %s", lag, lagKnown, len(rep.Problems), rep.Summary())
			return rep, false
		}
		time.Sleep(time.Second)
	}
}

// deliveryCheck checks the current state of every linked conversation.
func deliveryCheck(sys *system, led *ledger, journeys []journeyRecord) deliveryReport {
	written, summaries := led.snapshot()
	log := sys.Fake.RequestLog()
	calls := map[string]int{}
	for _, r := range log {
		m := replyPath.FindStringSubmatch(r.Path)
		if m == nil || r.Method != http.MethodPost {
			continue
		}
		// 200, or a reset or 502 the fault injected after the call took effect.
		if r.Status == http.StatusOK || r.Status == 0 || r.Status == http.StatusBadGateway {
			calls[m[1]]++
		}
	}
	truncated := len(log) >= 10000
	var convs []conversationFacts
	for _, j := range journeys {
		if j.ConvID == "" {
			continue
		}
		c := conversationFacts{ID: j.ConvID, Expected: noteActionIDs(j.Journey), Parts: sys.Fake.Notes(j.ConvID), ReplyCalls: calls[j.ConvID],
			Routed: led.routed(j.ConvID)}
		if truncated {
			c.ReplyCalls = -1
		}
		convs = append(convs, c)
	}
	return checkDelivery(convs, written, summaries)
}

// journeyRecord is one journey of the load and what became of its conversation.
type journeyRecord struct {
	Journey   demo.Journey
	ConvID    string // "" when the journey opened no conversation
	Delivered bool   // the conversation's webhook was accepted
	Err       error
}

// loadGenerator plays fresh journeys, each with distinct users; every other one opens a
// conversation through a signed webhook between its anonymous part and the rest, like a user who
// writes to support after a payment error.
type loadGenerator struct {
	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	begun    int
	records  []journeyRecord // the journeys played, in the order they finished
}

func startLoad(ctx context.Context, t *testing.T, sys *system, plan chaosPlan) *loadGenerator {
	t.Helper()
	producer := sys.Client(t, kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond))
	g := &loadGenerator{stopped: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		tick := time.NewTicker(plan.JourneyEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				rec := playJourney(ctx, sys, producer, i%2 == 0)
				g.mu.Lock()
				g.records = append(g.records, rec)
				g.mu.Unlock()
			}()
			g.mu.Lock()
			g.begun++
			g.mu.Unlock()
			select {
			case <-g.stopped:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

// journeySpeed compresses the recorded journey (54 s) to about 13 s.
const journeySpeed = 4

// playJourney produces one fresh journey to the raw topic, opening a conversation when converse.
func playJourney(ctx context.Context, sys *system, producer *kgo.Client, converse bool) journeyRecord {
	var rec journeyRecord
	span := time.Duration(float64(55*time.Second) / journeySpeed)
	j, err := demo.Fresh(time.Now().Add(-span), journeySpeed)
	if err != nil {
		rec.Err = err
		return rec
	}
	rec.Journey = j
	produceCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	produce := func(key string, evs []demo.Event) error {
		recs := make([]*kgo.Record, len(evs))
		for i, ev := range evs {
			recs[i] = &kgo.Record{Topic: sys.Topics.PosthogRaw, Key: []byte(key), Value: ev.Value}
		}
		return produceSync(produceCtx, producer, recs...)
	}
	before, after := j.Events[:demo.IdentifyIndex+1], j.Events[demo.IdentifyIndex+1:]
	if err := produce(j.AnonID, before); err != nil {
		rec.Err = err
		return rec
	}
	if converse {
		conv := sys.Fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: j.UserID, Email: j.Email, Name: "Chaos User", Role: "user"},
			"<p>The payment keeps failing.</p>", "https://app.acme.dev/checkout?plan=pro", nil)
		rec.ConvID = conv.ID
		rec.Err = deliverUntilAccepted(produceCtx, sys, conv.ID)
		rec.Delivered = rec.Err == nil
	}
	if err := produce(j.UserID, after); err != nil && rec.Err == nil {
		rec.Err = err
	}
	return rec
}

// deliverUntilAccepted sends the conversation.user.created notification, the same one again and
// again (as Intercom retries it), until ingest answers 2xx or ctx ends.
func deliverUntilAccepted(ctx context.Context, sys *system, convID string) error {
	n, err := sys.Fake.NewNotification("conversation.user.created", convID)
	if err != nil {
		return err
	}
	for {
		err = sys.Fake.Send(ctx, sys.WebhookURL, n, fakeintercom.WithResponseTimeout(5*time.Second))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (g *loadGenerator) stop() { g.stopOnce.Do(func() { close(g.stopped) }) }

func (g *loadGenerator) started() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.begun
}

// wait waits for every journey to be produced and its webhook answered.
func (g *loadGenerator) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Errorf("journeys still being produced after %s", timeout)
	}
}

// journeys returns the journeys played to the end.
func (g *loadGenerator) journeys() []journeyRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]journeyRecord, 0, len(g.records))
	for _, r := range g.records {
		if r.Journey.SessionID != "" {
			out = append(out, r)
		}
	}
	return out
}

// monkey is the chaos loop: it kills and restarts the binaries, restarts Redis and the broker, and
// injects Intercom faults, and it restarts any binary that exits by itself (counted as unplanned).
type monkey struct {
	sys  *system
	plan chaosPlan
	rng  *rand.Rand

	procMu   sync.Mutex // held while a process is killed and restarted, or checked and restarted
	mu       sync.Mutex
	watchers sync.WaitGroup
	restarts []restartRecord
	log      []string

	kills, redisRestarts, brokerRestarts, unplanned atomic.Int64
}

// restartRecord is one restart and whether the system came back from it.
type restartRecord struct {
	What  string
	At    time.Time
	Ready *atomic.Bool
}

// chaosEvent is one step of the loop.
type chaosEvent struct {
	At   time.Duration // from the start of the run
	Kind string        // "kill", "redis", "broker"
}

// schedule spreads the plan's events over the run, in random order, at jittered even spacing.
func (m *monkey) schedule() []chaosEvent {
	var kinds []string
	for i := 0; i < m.plan.Kills; i++ {
		kinds = append(kinds, "kill")
	}
	for i := 0; i < m.plan.RedisRestarts; i++ {
		kinds = append(kinds, "redis")
	}
	for i := 0; i < m.plan.BrokerRestarts; i++ {
		kinds = append(kinds, "broker")
	}
	m.rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	from, to := m.plan.Duration/10, m.plan.Duration*9/10
	step := (to - from) / time.Duration(len(kinds))
	out := make([]chaosEvent, len(kinds))
	for i, k := range kinds {
		jitter := time.Duration((m.rng.Float64() - 0.5) * 0.6 * float64(step))
		out[i] = chaosEvent{At: from + time.Duration(i)*step + step/2 + jitter, Kind: k}
	}
	return out
}

// run executes the schedule, then waits out the rest of the duration.
func (m *monkey) run(ctx context.Context, t *testing.T) {
	t.Helper()
	start := time.Now()
	order := m.serviceOrder()
	for _, ev := range m.schedule() {
		if !sleepUntil(ctx, start.Add(ev.At)) {
			return
		}
		switch ev.Kind {
		case "kill":
			if len(order) == 0 {
				order = m.serviceOrder()
			}
			svc := order[0]
			order = order[1:]
			m.killAndRestart(ctx, t, svc)
		case "redis":
			m.restartRedis(t)
		case "broker":
			m.restartBroker(t)
		}
	}
	sleepUntil(ctx, start.Add(m.plan.Duration))
}

// serviceOrder is the four services in random order: kills go round it so each binary dies.
func (m *monkey) serviceOrder() []string {
	order := append([]string{}, stack.Services...)
	m.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

func (m *monkey) note(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// killAndRestart kill -9s svc, leaves it dead for a moment, starts it again and watches for it to
// become ready.
func (m *monkey) killAndRestart(ctx context.Context, t *testing.T, svc string) {
	m.procMu.Lock()
	defer m.procMu.Unlock()
	if err := m.sys.Stack.Kill(svc); err != nil {
		t.Errorf("kill %s: %v", svc, err)
		return
	}
	m.kills.Add(1)
	m.note("killed %s", svc)
	time.Sleep(time.Duration(m.rng.Int64N(int64(1500 * time.Millisecond))))
	if err := m.sys.Restart(svc); err != nil {
		t.Errorf("restart %s: %v", svc, err)
		return
	}
	m.watchReady(ctx, "kill -9 "+svc, svc)
}

// watchReady records a restart and watches, in the background, for the services to be ready.
func (m *monkey) watchReady(ctx context.Context, what string, services ...string) {
	r := restartRecord{What: what, At: time.Now(), Ready: &atomic.Bool{}}
	m.mu.Lock()
	m.restarts = append(m.restarts, r)
	m.mu.Unlock()
	m.watchers.Add(1)
	go func() {
		defer m.watchers.Done()
		wctx, cancel := context.WithTimeout(ctx, m.plan.Duration+m.plan.DrainTimeout)
		defer cancel()
		for _, svc := range services {
			if stack.WaitReady(wctx, m.sys.Admins[svc]) != nil {
				return
			}
		}
		r.Ready.Store(true)
	}()
}

func (m *monkey) restartRedis(t *testing.T) {
	m.sys.Redis.Stop()
	m.note("Redis stopped")
	time.Sleep(m.plan.Outage)
	for attempt := 0; ; attempt++ {
		err := m.sys.Redis.StartAgain()
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Errorf("start Redis again: %v", err)
			return
		}
		time.Sleep(time.Second)
	}
	m.redisRestarts.Add(1)
	m.note("Redis started again")
	m.watchReady(context.Background(), "Redis restart", stack.Services...)
}

func (m *monkey) restartBroker(t *testing.T) {
	m.sys.Broker.Stop()
	m.note("broker stopped")
	time.Sleep(m.plan.Outage)
	if err := m.sys.Broker.StartAgain(); err != nil {
		t.Errorf("start the broker again: %v", err)
		return
	}
	m.brokerRestarts.Add(1)
	m.note("broker started again")
	m.watchReady(context.Background(), "broker restart", stack.Services...)
}

// intercomFaults takes the fake Intercom down, then rate-limits it, then resets connections and
// answers 502 after calls took effect (so a blind retry would post twice).
func (m *monkey) intercomFaults(ctx context.Context) {
	start := time.Now()
	if !sleepUntil(ctx, start.Add(m.plan.Duration*15/100)) {
		return
	}
	m.sys.Fake.SetFault(fakeintercom.Fault{DownFor: m.plan.IntercomDown})
	m.note("Intercom down for %s", m.plan.IntercomDown)
	if !sleepUntil(ctx, time.Now().Add(m.plan.IntercomDown+2*time.Second)) {
		return
	}
	m.sys.Fake.SetFault(fakeintercom.Fault{RateLimitedFor: m.plan.IntercomRateLimited})
	m.note("Intercom answers 429 for %s", m.plan.IntercomRateLimited)
	if !sleepUntil(ctx, time.Now().Add(m.plan.IntercomRateLimited+2*time.Second)) {
		return
	}
	m.sys.Fake.SetFault(fakeintercom.Fault{})
	if !sleepUntil(ctx, start.Add(m.plan.Duration*70/100)) {
		return
	}
	n := m.plan.AfterEffectFaults
	m.sys.Fake.SetFault(fakeintercom.Fault{Resets: n, ServerErrors: n, AfterProcessing: true})
	m.note("Intercom resets %d connections and answers 502 to %d calls, after they took effect", n, n)
}

// supervise restarts any binary that exited by itself, until ctx ends.
func (m *monkey) supervise(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.procMu.Lock()
		for _, svc := range stack.Services {
			if m.sys.Running(svc) {
				continue
			}
			m.unplanned.Add(1)
			m.note("%s exited by itself; last lines:\n%s", svc, lastLinesOf(m.sys.Logs.String(), svc, 8))
			if err := m.sys.Restart(svc); err == nil {
				m.watchReady(ctx, svc+" exited by itself", svc)
			}
		}
		m.procMu.Unlock()
	}
}

// lastLinesOf returns the last n log lines of service svc.
func lastLinesOf(logs, svc string, n int) string {
	var mine []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("%-10s |", svc)) {
			mine = append(mine, l)
		}
	}
	if len(mine) > n {
		mine = mine[len(mine)-n:]
	}
	return strings.Join(mine, "\n")
}

// survived waits for every restart's readiness watch and counts those the system came back from.
func (m *monkey) survived() int {
	m.watchers.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.restarts {
		if r.Ready.Load() {
			n++
		}
	}
	return n
}

// describe lists what the loop did.
func (m *monkey) describe() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	type tally struct{ all, ready int }
	byWhat := map[string]*tally{}
	for _, r := range m.restarts {
		if byWhat[r.What] == nil {
			byWhat[r.What] = &tally{}
		}
		byWhat[r.What].all++
		if r.Ready.Load() {
			byWhat[r.What].ready++
		}
	}
	var parts []string
	for w, n := range byWhat {
		parts = append(parts, fmt.Sprintf("%s ×%d (%d ready again)", w, n.all, n.ready))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ") + "\n" + strings.Join(m.log, "\n")
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
