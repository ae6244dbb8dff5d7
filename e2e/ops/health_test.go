package ops

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// healthcheck runs binary -healthcheck the way the compose health check does (the service's
// environment, a wildcard admin address) and returns its exit code and standard error.
func healthcheck(t *testing.T, binary, adminAddr string) (int, string) {
	t.Helper()
	return healthcheckOn(t, binary, "THREADLINE_ADMIN_ADDR", adminAddr)
}

// healthcheckOn runs binary -healthcheck with only addrVar set, to addr on the wildcard host.
func healthcheckOn(t *testing.T, binary, addrVar, addr string) (int, string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), binary), "-healthcheck")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), addrVar + "=0.0.0.0:" + port}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stderr.String()
	}
	t.Fatalf("%s -healthcheck: %v", binary, err)
	return -1, ""
}

// readyz answers the status and body of a service's /readyz.
func readyz(t *testing.T, adminAddr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		return 0, err.Error() // not listening yet
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// backlog produces n raw page views spread over sessions, each one action once ingest reads it.
func backlog(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	start := time.Now().Add(-time.Hour).UTC()
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Millisecond)
		session := fmt.Sprintf("ops-session-%d", i%40)
		ev := fmt.Sprintf(`{"uuid":%q,"event":"$pageview","distinct_id":"ops-user-%d","timestamp":%q,`+
			`"properties":{"token":"phc_ops","$session_id":%q,"$current_url":"https://app.example.com/pricing","$pathname":"/pricing"}}`,
			posthog.NewUUIDv7(at), i%40, at.Format(time.RFC3339Nano), session)
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(session), Value: []byte(ev)})
	}
	kafkatest.Produce(t, brokers, recs...)
}

// A service started on a backlog answers /readyz 503 until its consumer has worked the backlog
// off: at the first 200, every action of the backlog is already produced. Its -healthcheck mode (the
// compose health check) exits 0 exactly while /readyz answers 200, and 1 while a dependency (Redis)
// is down.
func TestReadinessWaitsForTheBacklogAndTheHealthcheckFollowsIt(t *testing.T) {
	httpAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := newSystem(t,
		"THREADLINE_INTERCOM_CLIENT_SECRET=ops-client-secret",
		"THREADLINE_HTTP_ADDR="+httpAddr,
		"THREADLINE_CONSUMER_LAG_INTERVAL=500ms",
	)
	const n = 3000
	kafkatest.CreateTopic(t, s.Brokers, s.Topics.PosthogRaw, 3)
	backlog(t, s.Brokers, s.Topics.PosthogRaw, n)

	s.start(t, "ingest")
	admin := s.Admins["ingest"]
	var notReady []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, body := readyz(t, admin)
		if status == http.StatusOK {
			break
		}
		if status != 0 {
			notReady = append(notReady, strings.TrimSpace(body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest never became ready; last answer %d %q\nlogs:\n%s", status, body, s.Logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := totalRecords(t, s.Brokers, s.Topics.ProductActions); got != n {
		t.Fatalf("ingest turned ready with %d of the backlog's %d actions produced", got, n)
	}
	if len(notReady) == 0 || !strings.Contains(strings.Join(notReady, "\n"), "consumer") {
		t.Fatalf("before it was ready, /readyz answered %q; want 503 naming the consumer", notReady)
	}
	t.Logf("ready after %d not-ready answers, first %q", len(notReady), notReady[0])

	if code, stderr := healthcheck(t, "ingest", admin); code != 0 {
		t.Fatalf("ingest -healthcheck while ready: exit %d: %s", code, stderr)
	}

	s.Redis.Stop()
	kafkatest.Eventually(t, 30*time.Second, func() bool {
		status, _ := readyz(t, admin)
		return status == http.StatusServiceUnavailable
	}, "ingest stayed ready with Redis down")
	code, stderr := healthcheck(t, "ingest", admin)
	if code != 1 || !strings.Contains(stderr, "redis") {
		t.Fatalf("ingest -healthcheck with Redis down: exit %d, %q; want 1 naming redis", code, stderr)
	}

	if err := s.Redis.StartAgain(); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 30*time.Second, func() bool {
		status, _ := readyz(t, admin)
		return status == http.StatusOK
	}, "ingest did not turn ready again after Redis came back")
	if code, stderr := healthcheck(t, "ingest", admin); code != 0 {
		t.Fatalf("ingest -healthcheck after Redis came back: exit %d: %s", code, stderr)
	}
}

// -healthcheck of a service that is not running fails, so a crashed container turns unhealthy.
func TestHealthcheckFailsWhenNothingAnswers(t *testing.T) {
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range stack.Services {
		if code, stderr := healthcheck(t, b, addr); code != 1 || !strings.Contains(stderr, "/readyz") {
			t.Errorf("%s -healthcheck with nothing listening: exit %d, %q; want 1", b, code, stderr)
		}
	}
}

// The fake Intercom's health check (compose profile fake) looks at its page.
func TestFakeIntercomHealthcheckChecksItsPage(t *testing.T) {
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := healthcheckOn(t, "fakeintercom", "THREADLINE_FAKE_ADDR", addr); code != 1 {
		t.Fatalf("fakeintercom -healthcheck before it runs: exit %d, want 1", code)
	}
	st := stack.New(binaries(t), []string{"THREADLINE_FAKE_ADDR=" + addr}, &lockedBuffer{})
	if _, err := st.Start("fakeintercom"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Stop("fakeintercom", 10*time.Second); err != nil {
			t.Errorf("stop fakeintercom: %v", err)
		}
	})
	kafkatest.Eventually(t, 30*time.Second, func() bool {
		code, _ := healthcheckOn(t, "fakeintercom", "THREADLINE_FAKE_ADDR", addr)
		return code == 0
	}, "fakeintercom -healthcheck never passed")
}
