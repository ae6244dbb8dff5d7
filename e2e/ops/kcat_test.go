package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/stack"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
	"github.com/threadline/threadline/pkg/testkit/tooltest"
)

// kcatPath finds kcat (librdkafka's command-line client): a test without it is skipped on a
// developer machine and fails in CI, which installs it.
func kcatPath(t *testing.T) string {
	t.Helper()
	return tooltest.Need(t, "Debian: apt-get install kcat", "kcat")[0]
}

// kcat runs kcat with args and stdin, and returns its standard output.
func kcat(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcatPath(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %q: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// startIngest runs ingest alone against a fresh broker and Redis, committing often.
func startIngest(t *testing.T) *system {
	t.Helper()
	httpAddr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := newSystem(t,
		"THREADLINE_INTERCOM_CLIENT_SECRET=ops-client-secret",
		"THREADLINE_HTTP_ADDR="+httpAddr,
		"THREADLINE_CONSUMER_COMMIT_INTERVAL=100ms",
		"THREADLINE_CONSUMER_LAG_INTERVAL=500ms",
	)
	s.start(t, "ingest")
	s.waitReady(t)
	return s
}

// waitProcessed waits until ingest's group has committed every record of topic.
func (s *system) waitProcessed(t *testing.T, topic string) {
	t.Helper()
	kafkatest.Eventually(t, 30*time.Second, func() bool {
		ends := kafkatest.EndOffsets(t, s.Brokers, topic)
		committed := kafkatest.CommittedOffsets(t, s.Brokers, "threadline-ingest", topic)
		for p, end := range ends {
			if committed[p] < end {
				return false
			}
		}
		return true
	}, "ingest did not process everything on %s\nlogs:\n%s", topic, s.Logs.String())
}

func totalRecords(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	n := 0
	for _, end := range kafkatest.EndOffsets(t, brokers, topic) {
		n += int(end)
	}
	return n
}

// A second Kafka client, kcat (librdkafka), produces the recorded journey as PostHog's capture
// output to the raw topic while ingest runs; kcat reads ingest's actions back: every event that is
// not noise is one readable action, keyed by its session, in order, as the journey's golden notes say.
func TestKcatProducesRawEventsAndReadsTheActions(t *testing.T) {
	kcatPath(t)
	s := startIngest(t)
	broker := strings.Join(s.Brokers, ",")

	rec, err := demo.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	uuids := map[string]bool{}
	for _, ev := range rec.Events {
		if bytes.ContainsAny(ev.Value, "\t\n") {
			t.Fatalf("event %s does not fit on one kcat line", ev.UUID)
		}
		uuids[ev.UUID] = true
		fmt.Fprintf(&in, "%s\t%s\n", rec.SessionID, ev.Value)
	}
	kcat(t, in.Bytes(), "-P", "-b", broker, "-t", s.Topics.PosthogRaw, "-K", "\t", "-H", "producer=kcat")
	if got := totalRecords(t, s.Brokers, s.Topics.PosthogRaw); got != len(rec.Events) {
		t.Fatalf("kcat produced %d records, want %d", got, len(rec.Events))
	}
	s.waitProcessed(t, s.Topics.PosthogRaw)

	n := totalRecords(t, s.Brokers, s.Topics.ProductActions)
	if n == 0 {
		t.Fatalf("no actions on %s\nlogs:\n%s", s.Topics.ProductActions, s.Logs.String())
	}
	out := kcat(t, nil, "-C", "-b", broker, "-t", s.Topics.ProductActions, "-o", "beginning", "-c", fmt.Sprint(n), "-e", "-f", "%k\t%s\n")
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		key, value, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("kcat printed %q, want key<TAB>value", line)
		}
		var pa messages.ProductAction
		if err := messages.Decode([]byte(value), &pa); err != nil {
			t.Fatalf("action %s: %v", value, err)
		}
		if key != rec.SessionID || pa.Action.SessionID != rec.SessionID {
			t.Errorf("action %s keyed %q for session %q, want the journey's session %s", pa.Action.ActionID, key, pa.Action.SessionID, rec.SessionID)
		}
		if !uuids[pa.Action.ActionID] {
			t.Errorf("action id %s is no event of the journey", pa.Action.ActionID)
		}
		if pa.Action.Kind == messages.KindIdentify {
			continue // who the user is, for the linker; not a note line
		}
		lines = append(lines, pa.Action.EventTime.UTC().Format("15:04:05")+" "+pa.Action.Text)
	}
	var want []string
	for _, l := range readGoldenNotes(t) {
		// "[n] hh:mm:ss text" → "hh:mm:ss text"
		_, rest, _ := strings.Cut(l, "] ")
		want = append(want, rest)
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("actions read with kcat:\n%s\n\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// The README's command for reading the dead-letter topic, run as written against a broker holding
// a record ingest could not decode, shows where it came from and why.
func TestReadmeKcatCommandReadsTheDeadLetterTopic(t *testing.T) {
	kcatPath(t)
	args := readmeDLQCommand(t)
	s := startIngest(t)
	broker := strings.Join(s.Brokers, ",")

	kcat(t, []byte("this is not an event\n"), "-P", "-b", broker, "-t", s.Topics.PosthogRaw)
	s.waitProcessed(t, s.Topics.PosthogRaw)
	if n := totalRecords(t, s.Brokers, s.Topics.DLQ); n != 1 {
		t.Fatalf("%d records on %s, want the one undecodable event\nlogs:\n%s", n, s.Topics.DLQ, s.Logs.String())
	}

	for i, a := range args {
		if a == "-b" && i+1 < len(args) {
			args[i+1] = broker
		}
	}
	out := strings.TrimSpace(kcat(t, nil, args...))
	t.Logf("kcat %s:\n%s", strings.Join(args, " "), out)
	headers, value, ok := strings.Cut(out, " {")
	if !ok {
		t.Fatalf("README command printed %q, want headers then the JSON value", out)
	}
	for _, h := range []string{
		"threadline.source-topic=" + s.Topics.PosthogRaw, "threadline.source-partition=", "threadline.source-offset=0",
		"threadline.service=ingest", "threadline.reason=", "threadline.error=",
	} {
		if !strings.Contains(headers, h) {
			t.Errorf("headers %q lack %q", headers, h)
		}
	}
	var dl messages.DeadLetter
	if err := json.Unmarshal([]byte("{"+value), &dl); err != nil {
		t.Fatalf("dead letter value: %v", err)
	}
	if string(dl.Value) != "this is not an event" || dl.SourceTopic != s.Topics.PosthogRaw || dl.Service != "ingest" {
		t.Fatalf("dead letter %+v, want the original record from %s by ingest", dl, s.Topics.PosthogRaw)
	}
}

// readmeDLQCommand finds the runbook's kcat command that reads threadline.dlq and splits it into
// arguments the way a shell would.
func readmeDLQCommand(t *testing.T) []string {
	t.Helper()
	for _, line := range readmeSection(t, "Runbook") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "kcat -C") && strings.Contains(line, "-t threadline.dlq") && strings.Contains(line, `'%h %s\n'`) {
			args, err := shellSplit(line)
			if err != nil {
				t.Fatalf("README: %q: %v", line, err)
			}
			if !slices.Contains(args, "-e") {
				t.Fatalf("README: %q does not exit at the end of the topic (-e)", line)
			}
			return args[1:]
		}
	}
	t.Fatalf("README: the Runbook has no kcat -C command that reads threadline.dlq with -f %s", `'%h %s\n'`)
	return nil
}

// shellSplit splits a command line on spaces, honouring single and double quotes.
func shellSplit(line string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		quote rune
		inArg bool
	)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// readGoldenNotes reads the end-to-end test's golden note lines of the recorded journey (one source
// of truth for what the journey reads like): "[n] hh:mm:ss text" per line.
func readGoldenNotes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "journey_notes.golden"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
