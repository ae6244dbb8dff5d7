// Package browser is Threadline's end-to-end browser test: the real posthog-js from npm, on a small
// local site in headless Chromium driven by playwright-core, reports to the real ingest binary, and
// what the person did there must arrive on product.actions as the readable actions support reads.
package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/config"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/redistest"
	"github.com/threadline/threadline/pkg/testkit/tooltest"
)

// Switches of the browser test, read from the environment.
const (
	// RequireBrowserEnv set to 1 makes a missing tool a failure whatever else is set (CI sets it).
	RequireBrowserEnv = "THREADLINE_TEST_REQUIRE_BROWSER"
	// BrowserEnv set to 0 switches the test off: it is reported as skipped, never as passed.
	BrowserEnv = "THREADLINE_TEST_BROWSER"
	// ChromiumEnv names the Chromium executable; otherwise chromium (or chromium-browser) on PATH.
	ChromiumEnv = "THREADLINE_TEST_CHROMIUM"
)

const (
	projectToken = "phc_threadline_browser_e2e"
	clientSecret = "browser-e2e-client-secret"
	// What the driver types into the checkout form: personal data that must never reach a topic.
	typedEmail = "pro-buyer@example.com"
	typedCard  = "4242 4242 4242 4242"

	driverScript  = "drive.mjs"
	siteDir       = "testdata/site"
	posthogBundle = "node_modules/posthog-js/dist/array.full.js"

	journeyTimeout = 60 * time.Second // the driver's whole visit
	actionsTimeout = 30 * time.Second // for the actions to arrive once the driver is done
)

// expectedJourney is what the visit must read as on product.actions, in event-time order. Other
// actions may come in between: posthog-js reports a field's change once per change event, and a
// browser may fire more than one.
var expectedJourney = []expectedAction{
	{messages.KindPageview, "/pricing", "User opened the pricing page"},
	{messages.KindClick, "/pricing", "User clicked Select Pro button on the pricing page"},
	{messages.KindPageleave, "/pricing", "User left the pricing page"},
	{messages.KindPageview, "/checkout", "User opened the checkout page"},
	{messages.KindChange, "/checkout", "User changed the email field on the checkout page"},
	{messages.KindChange, "/checkout", "User changed the card number field on the checkout page"},
	{messages.KindClick, "/checkout", "User clicked Pay now button on the checkout page"},
	{messages.KindSubmit, "/checkout", "User submitted checkout form on the checkout page"},
	{messages.KindPageleave, "/checkout", "User left the checkout page"},
	{messages.KindPageview, "/confirmation", "User opened the confirmation page"},
	{messages.KindClick, "/confirmation", "User clicked Billing settings link on the confirmation page"},
	{messages.KindPageleave, "/confirmation", "User left the confirmation page"},
	{messages.KindPageview, "/settings/billing", "User opened the billing settings page"},
}

type expectedAction struct {
	Kind, Path, Text string
}

func TestPosthogJSJourneyArrivesAsProductActions(t *testing.T) {
	tools := requireTools(t)
	ensureNodeModules(t, tools)

	brokers := kafkatest.Brokers(t)
	topics := kafka.DefaultTopics()
	topics.PosthogRaw = kafkatest.Topic(t, "posthog.events.raw")
	topics.ProductActions = kafkatest.Topic(t, "product.actions")
	topics.DLQ = kafkatest.Topic(t, "threadline.dlq")
	ingestURL, ingestLogs := startIngest(t, brokers, topics)

	site := httptest.NewServer(newSiteHandler(ingestURL, projectToken))
	t.Cleanup(site.Close)

	driver := startDriver(t, tools, site.URL+"/pricing")
	if err := driver.waitDone(journeyTimeout); err != nil {
		t.Fatalf("browser journey: %v\ndriver output:\n%s\ningest logs:\n%s", err, driver.output(), ingestLogs.String())
	}

	if r := driver.report; r.IngestRequests == 0 || r.IngestFailures != 0 {
		t.Errorf("posthog-js made %d requests to ingest, %d of them refused or failed; want some and none\n%s",
			r.IngestRequests, r.IngestFailures, driver.output())
	}

	got, err := waitForJourney(t, brokers, topics.ProductActions, expectedJourney, actionsTimeout)
	if err != nil {
		t.Fatalf("%v\nproduct.actions (event-time order):\n%s\ndriver output:\n%s\ningest logs:\n%s",
			err, describe(got), driver.output(), ingestLogs.String())
	}
	if err := driver.finish(20 * time.Second); err != nil {
		t.Errorf("driver: %v\n%s", err, driver.output())
	}
	t.Logf("product.actions from the browser (event-time order):\n%s", describe(got))

	checkOneVisitor(t, got)
	checkNoTypedData(t, got)
	if n := recordCount(t, brokers, topics.DLQ); n != 0 {
		t.Errorf("%d records on the dead-letter topic: ingest could not take everything posthog-js sent\n%s", n, ingestLogs.String())
	}
}

// browserTools are the programs the test runs.
type browserTools struct {
	Node, Npm, Chromium string
}

// requireTools finds node, Chromium and, when node_modules must still be installed, npm. A missing
// one skips the test, naming it, or fails it when THREADLINE_TEST_REQUIRE_BROWSER=1 (as in CI);
// THREADLINE_TEST_BROWSER=0 switches the test off unless it is required.
func requireTools(t *testing.T) browserTools {
	t.Helper()
	required := os.Getenv(RequireBrowserEnv) == "1"
	if os.Getenv(BrowserEnv) == "0" {
		if !required {
			t.Skipf("%s=0: the end-to-end browser test is switched off", BrowserEnv)
		}
		t.Logf("%s=0 is ignored: %s=1 requires the browser test", BrowserEnv, RequireBrowserEnv)
	}
	var tools browserTools
	var missing []string
	find := func(tool string, names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		missing = append(missing, tool)
		return ""
	}
	tools.Node = find("node (Node.js)", "node", "nodejs")
	if !nodeModulesInstalled() {
		tools.Npm = find("npm (to install node_modules)", "npm")
	}
	if p := os.Getenv(ChromiumEnv); p != "" {
		tools.Chromium = find("Chromium (at "+ChromiumEnv+"="+p+")", p)
	} else {
		tools.Chromium = find("Chromium", "chromium", "chromium-browser")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the end-to-end browser test needs %s, which was not found: install what is missing "+
			"(Debian: apt-get install -y chromium nodejs npm)", strings.Join(missing, " and "))
		if !required && !tooltest.Required() {
			t.Skipf("%s; skipped here, CI installs it and sets %s=1", msg, RequireBrowserEnv)
		}
		t.Fatalf("%s; %s=1 requires the browser test", msg, RequireBrowserEnv)
	}
	return tools
}

// nodeModulePackages are the npm packages the site and the driver load from node_modules.
var nodeModulePackages = []string{"posthog-js", "playwright-core"}

func nodeModulesInstalled() bool {
	for _, p := range nodeModulePackages {
		if _, err := os.Stat(filepath.Join("node_modules", p, "package.json")); err != nil {
			return false
		}
	}
	return true
}

// ensureNodeModules installs the locked npm packages when node_modules lacks them.
func ensureNodeModules(t *testing.T, tools browserTools) {
	t.Helper()
	if nodeModulesInstalled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.Npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci (node_modules is missing): %v\n%s", err, out)
	}
	if !nodeModulesInstalled() {
		t.Fatalf("npm ci did not install %s\n%s", strings.Join(nodeModulePackages, " and "), out)
	}
}

// startIngest builds the ingest binary and runs it as a process against brokers, with topics, a
// real redis-server and a free HTTP address; it returns that address as a URL and the process's logs.
func startIngest(t *testing.T, brokers []string, topics kafka.Topics) (string, *lockedBuffer) {
	t.Helper()
	binDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := stack.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", binDir+string(os.PathSeparator), "./ingest")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./ingest: %v\n%s", err, out)
	}

	rdb := redistest.Start(t)
	httpAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		config.EnvName("kafka.brokers") + "=" + strings.Join(brokers, ","),
		config.EnvName("kafka.topic-partitions") + "=3",
		config.EnvName("redis.addrs") + "=" + rdb.Addr,
		config.EnvName("http.addr") + "=" + httpAddr,
		config.EnvName("admin.addr") + "=" + adminAddr,
		config.EnvName("posthog.tokens") + "=" + projectToken,
		config.EnvName("intercom.client-secret") + "=" + clientSecret,
		config.EnvName("topic.posthog-raw") + "=" + topics.PosthogRaw,
		config.EnvName("topic.product-actions") + "=" + topics.ProductActions,
		config.EnvName("topic.dlq") + "=" + topics.DLQ,
		config.EnvName("consumer.group") + "=" + topics.PosthogRaw + ".ingest", // unique, as the topics
		config.EnvName("log.level") + "=info",
	}
	logs := &lockedBuffer{}
	services := stack.New(binDir, env, logs)
	if _, err := services.Start("ingest"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := services.Stop("ingest", 15*time.Second); err != nil {
			t.Errorf("stop ingest: %v\n%s", err, logs.String())
		}
	})
	ready, cancelReady := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelReady()
	if err := stack.WaitReady(ready, adminAddr); err != nil {
		t.Fatalf("ingest: %v\nlogs:\n%s", err, logs.String())
	}
	return "http://" + httpAddr, logs
}

// newSiteHandler serves the test site: its pages at paths whose page names read well, its script
// and style, the posthog-js bundle from node_modules, and site-config.js, which tells the site's
// script where ingest is and which project token to use.
func newSiteHandler(ingestURL, token string) http.Handler {
	mux := http.NewServeMux()
	files := map[string]string{
		"/pricing":           filepath.Join(siteDir, "pricing.html"),
		"/checkout":          filepath.Join(siteDir, "checkout.html"),
		"/confirmation":      filepath.Join(siteDir, "confirmation.html"),
		"/settings/billing":  filepath.Join(siteDir, "billing.html"),
		"/static/app.js":     filepath.Join(siteDir, "app.js"),
		"/static/site.css":   filepath.Join(siteDir, "site.css"),
		"/static/posthog.js": posthogBundle,
	}
	for route, file := range files {
		mux.HandleFunc("GET "+route, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			http.ServeFile(w, r, file)
		})
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	siteConfig, err := json.Marshal(map[string]string{"apiHost": ingestURL, "token": token})
	if err != nil {
		panic(err) // two strings always marshal
	}
	mux.HandleFunc("GET /static/site-config.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "window.threadlineSite = %s;\n", siteConfig)
	})
	return mux
}

// driver is a running `node drive.mjs`.
type driver struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *lockedBuffer // stdout and stderr
	done   chan struct{} // closed when the driver reports the journey done; report is then set
	report driverReport
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

// startDriver runs the driver on pageURL; the test's end stops it if it still runs.
func startDriver(t *testing.T, tools browserTools, pageURL string) *driver {
	t.Helper()
	d := &driver{out: &lockedBuffer{}, done: make(chan struct{}), exited: make(chan struct{})}
	d.cmd = exec.Command(tools.Node, driverScript, pageURL)
	d.cmd.Env = append(os.Environ(),
		"CHROMIUM_PATH="+tools.Chromium,
		"DRIVE_EMAIL="+typedEmail,
		"DRIVE_CARD="+typedCard,
		fmt.Sprintf("DRIVE_TIMEOUT_MS=%d", (journeyTimeout+actionsTimeout+30*time.Second).Milliseconds()),
	)
	d.cmd.Stderr = d.out
	d.cmd.WaitDelay = 5 * time.Second
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start the driver: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		reported := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(d.out, "%s\n", line)
			var report driverReport
			if !reported && json.Unmarshal([]byte(line), &report) == nil && report.Done {
				reported = true
				d.report = report
				close(d.done)
			}
		}
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		// playwright closes its browser on SIGTERM
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	return d
}

// driverReport is the line the driver prints when the journey is done.
type driverReport struct {
	Done           bool   `json:"done"`
	URL            string `json:"url"`
	IngestRequests int    `json:"ingestRequests"` // requests posthog-js made to ingest that were answered
	IngestFailures int    `json:"ingestFailures"` // of those and others to ingest: answered 4xx/5xx, or failed
}

// waitDone waits until the driver reports the journey done and posthog-js flushed.
func (d *driver) waitDone(timeout time.Duration) error {
	select {
	case <-d.done:
		return nil
	case <-d.exited:
		return fmt.Errorf("the driver exited before finishing the journey: %v", d.err)
	case <-time.After(timeout):
		return fmt.Errorf("the driver did not finish the journey within %s", timeout)
	}
}

// finish lets the driver close the browser and waits for it to exit.
func (d *driver) finish(timeout time.Duration) error {
	_ = d.stdin.Close()
	select {
	case <-d.exited:
		return d.err
	case <-time.After(timeout):
		return fmt.Errorf("the driver did not exit within %s of being told to", timeout)
	}
}

func (d *driver) output() string { return d.out.String() }

// received is one record of product.actions: decoded, and as it was on the topic.
type received struct {
	Action messages.ProductAction
	Raw    []byte
}

// waitForJourney reads topic from the start until the actions it holds, in event-time order,
// contain want in order, or timeout passes. It returns what it read, in event-time order.
func waitForJourney(t *testing.T, brokers []string, topic string, want []expectedAction, timeout time.Duration) ([]received, error) {
	t.Helper()
	cl := kafkatest.Client(t, brokers,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []received
	for {
		fetches := cl.PollFetches(ctx)
		var errs []error
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("fetch %s/%d: %w", topic, partition, err))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var a messages.ProductAction
			if err := json.Unmarshal(r.Value, &a); err != nil {
				errs = append(errs, fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err))
				return
			}
			got = append(got, received{Action: a, Raw: r.Value})
		})
		sortByEventTime(got, want)
		if err := errors.Join(errs...); err != nil {
			return got, err
		}
		missing := unmatched(got, want)
		if len(missing) == 0 {
			return got, nil
		}
		if ctx.Err() != nil {
			lines := make([]string, len(missing))
			for i, m := range missing {
				lines[i] = fmt.Sprintf("  %s %s %q", m.Kind, m.Path, m.Text)
			}
			return got, fmt.Errorf("after %s, %s lacks, in order from the first missing one:\n%s", timeout, topic, strings.Join(lines, "\n"))
		}
	}
}

// sameGesture is how close in event time two actions of one gesture come: a click on a submit
// button and the form's submit are stamped within a few milliseconds of each other, in either
// order, as posthog-js handles them.
const sameGesture = 20 * time.Millisecond

// sortByEventTime orders got by event time, except that actions of one gesture (within
// sameGesture of each other), which have no order to observe, take the order of want.
func sortByEventTime(got []received, want []expectedAction) {
	rank := func(a messages.Action) int {
		for i, w := range want {
			if a.Kind == w.Kind && a.Path == w.Path && a.Text == w.Text {
				return i
			}
		}
		return len(want)
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].Action.Action.EventTime.Before(got[j].Action.Action.EventTime) })
	for i := 1; i < len(got); i++ {
		for k := i; k > 0; k-- {
			a, b := got[k-1].Action.Action, got[k].Action.Action
			if b.EventTime.Sub(a.EventTime) > sameGesture || rank(b) >= rank(a) {
				break
			}
			got[k-1], got[k] = got[k], got[k-1]
		}
	}
}

// unmatched returns the tail of want that got, in order, does not contain.
func unmatched(got []received, want []expectedAction) []expectedAction {
	i := 0
	for _, g := range got {
		a := g.Action.Action
		if i < len(want) && a.Kind == want[i].Kind && a.Path == want[i].Path && a.Text == want[i].Text {
			i++
		}
	}
	return want[i:]
}

// checkOneVisitor checks that every action belongs to one PostHog session and one distinct id:
// posthog-js kept its identity across the site's pages.
func checkOneVisitor(t *testing.T, got []received) {
	t.Helper()
	sessions, people := map[string]int{}, map[string]int{}
	for _, g := range got {
		sessions[g.Action.Action.SessionID]++
		people[g.Action.Identity.DistinctID]++
	}
	if len(sessions) != 1 || sessions[""] > 0 {
		t.Errorf("want every action in one session, got session ids %v", sessions)
	}
	if len(people) != 1 || people[""] > 0 {
		t.Errorf("want every action from one distinct id, got %v", people)
	}
}

// checkNoTypedData checks that nothing typed into the checkout form reached product.actions, in
// any of the forms it takes on the way (the form is sent with GET, so it is in the next page's URL).
func checkNoTypedData(t *testing.T, got []received) {
	t.Helper()
	cardDigits := strings.ReplaceAll(typedCard, " ", "")
	forbidden := []string{
		typedEmail, strings.ReplaceAll(typedEmail, "@", "%40"), strings.Split(typedEmail, "@")[0],
		typedCard, cardDigits, strings.ReplaceAll(typedCard, " ", "+"), strings.ReplaceAll(typedCard, " ", "%20"),
	}
	for _, g := range got {
		raw := strings.ToLower(string(g.Raw))
		for _, f := range forbidden {
			if strings.Contains(raw, strings.ToLower(f)) {
				t.Errorf("product.actions carries %q, typed into the checkout form: %s", f, g.Raw)
			}
		}
	}
}

// recordCount is how many records topic holds.
func recordCount(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	var n int64
	for _, end := range kafkatest.EndOffsets(t, brokers, topic) {
		n += end
	}
	return n
}

func describe(got []received) string {
	var sb strings.Builder
	for _, g := range got {
		a := g.Action.Action
		fmt.Fprintf(&sb, "  %s %-9s %-18s %s\n", a.EventTime.Format("15:04:05.000"), a.Kind, a.Path, a.Text)
	}
	return sb.String()
}

// lockedBuffer collects a process's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
