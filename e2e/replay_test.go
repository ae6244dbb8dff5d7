package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/testkit/kafkatest"
)

// replayEnv makes commits frequent, so that a test can see from the committed offsets when every
// stage has caught up, and retries quick.
var replayEnv = []string{
	"THREADLINE_CONSUMER_COMMIT_INTERVAL=200ms",
	"THREADLINE_NOTES_BREAKER_OPEN_TIMEOUT=500ms",
	"THREADLINE_NOTES_RETRY_MAX=1s",
}

// consumerGroups are the groups of the stages after ingest, with the topics each consumes.
func (p *pipeline) consumerGroups() map[string][]string {
	return map[string][]string{
		"threadline-linker":     {p.Topics.ProductActions, p.Topics.ConversationEvents},
		"threadline-notewriter": {p.Topics.ConversationActions, p.Topics.ConversationSummaries},
		"threadline-summarizer": {p.Topics.NotesWritten},
	}
}

// journeyRun is the shared journey played into a pipeline.
type journeyRun struct {
	journey demo.Journey
	conv    fakeintercom.Conversation
	want    []string // the note lines the journey should produce, golden times shifted
}

// playJourney plays the journey as the journey test does: the anonymous and identified part, then
// the conversation, then the rest. hold, when not nil, runs between the conversation and the rest.
func playJourney(t *testing.T, p *pipeline, hold func()) journeyRun {
	t.Helper()
	rec, err := demo.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	first := rec.Events[0].Time
	startAt := time.Now().UTC().Truncate(time.Second).Add(-time.Minute).Add(first.Sub(first.Truncate(time.Second)))
	j, err := demo.Fresh(startAt, 1)
	if err != nil {
		t.Fatal(err)
	}
	run := journeyRun{journey: j, want: shiftGolden(t, readGolden(t, "journey_notes.golden"), startAt.Sub(first))}
	before, after := j.Events[:demo.IdentifyIndex+1], j.Events[demo.IdentifyIndex+1:]
	for _, ev := range before {
		p.produceRaw(t, j.AnonID, ev.Value)
	}
	kafkatest.Consume(t, p.Brokers, p.Topics.ProductActions, 7, 30*time.Second)
	run.conv = p.Fake.CreateConversation(fakeintercom.ContactSpec{
		ExternalID: j.UserID, Email: j.Email, Name: "Jane Doe", Role: "user",
	}, "<p>I can't change my plan, the payment keeps failing.</p>", "https://app.acme.dev/checkout?plan=pro", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Fake.DeliverWebhook(ctx, p.IngestURL+"/webhooks/intercom", "conversation.user.created", run.conv.ID); err != nil {
		t.Fatal(err)
	}
	if hold != nil {
		hold()
	}
	for _, ev := range after {
		p.produceRaw(t, j.UserID, ev.Value)
	}
	return run
}

// records reads every record now on topic.
func (p *pipeline) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	n := 0
	for _, end := range kafkatest.EndOffsets(t, p.Brokers, topic) {
		n += int(end)
	}
	if n == 0 {
		return nil
	}
	return kafkatest.Consume(t, p.Brokers, topic, n, 30*time.Second)
}

// notesWritten reads notes.written.
func (p *pipeline) notesWritten(t *testing.T) []messages.NoteWritten {
	t.Helper()
	var out []messages.NoteWritten
	for _, r := range p.records(t, p.Topics.NotesWritten) {
		var n messages.NoteWritten
		if err := messages.Decode(r.Value, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// noteLines returns the numbered lines of the actions notes in written, by line number.
func noteLines(written []messages.NoteWritten) []messages.NoteLine {
	var lines []messages.NoteLine
	for _, n := range written {
		if n.Kind == messages.NoteActions {
			lines = append(lines, n.Lines...)
		}
	}
	sort.SliceStable(lines, func(a, b int) bool { return lines[a].Seq < lines[b].Seq })
	return lines
}

// caughtUp reports whether every stage after ingest has committed the end of every partition it
// consumes.
func (p *pipeline) caughtUp(t *testing.T) bool {
	t.Helper()
	for group, topics := range p.consumerGroups() {
		for _, topic := range topics {
			committed := kafkatest.CommittedOffsets(t, p.Brokers, group, topic)
			for part, end := range kafkatest.EndOffsets(t, p.Brokers, topic) {
				if end > 0 && committed[part] != end {
					return false
				}
			}
		}
	}
	return true
}

// waitUntil polls cond every 200 ms until it holds, failing t after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, p *pipeline, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, p.dump(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSettled waits until the pipeline is idle: every stage has committed the end of its input,
// twice in a row with no new record anywhere in between.
func (p *pipeline) waitSettled(t *testing.T) {
	t.Helper()
	ends := func() string {
		var sb strings.Builder
		for _, topics := range p.consumerGroups() {
			for _, topic := range topics {
				fmt.Fprint(&sb, kafkatest.EndOffsets(t, p.Brokers, topic))
			}
		}
		return sb.String()
	}
	last := ""
	waitUntil(t, 90*time.Second, "every stage to catch up", p, func() bool {
		now := ends()
		settled := p.caughtUp(t) && now == last
		last = now
		return settled
	})
}

// metric reads a counter or gauge from a service's /metrics: the sum of the series of name whose
// labels contain every one of labels (such as `result="restored"`).
func (p *pipeline) metric(t *testing.T, service, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Admins[service] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// intercomWrites counts the calls that change a conversation: notes (and summaries) posted, and
// redactions.
func intercomWrites(f *fakeintercom.Server) (replies, redactions int) {
	return f.Requests(fakeintercom.EndpointReply), f.Requests(fakeintercom.EndpointRedact)
}

// Redis is lost after the journey was written, summary and redactions included. The recipe of
// docs/operations.md (restart the linker, notewriter and summarizer with
// THREADLINE_REPLAY_FROM=earliest) rebuilds every stage's state from the topics, and Intercom sees
// not a single call that writes: no note, no summary, no redaction. A new action afterwards is
// numbered on from the last line.
func TestRebuildingRedisByReplayPostsNoDuplicateNotes(t *testing.T) {
	p := start(t, append([]string{"THREADLINE_SUMMARY_THRESHOLD=12"}, replayEnv...)...)
	run := playJourney(t, p, nil)
	waitUntil(t, 90*time.Second, "the journey's notes, summary and redactions", p, func() bool {
		written := p.notesWritten(t)
		var summary *messages.NoteWritten
		for i := range written {
			if written[i].Kind == messages.NoteSummary {
				summary = &written[i]
			}
		}
		if len(noteLines(written)) < len(run.want) || summary == nil {
			return false
		}
		redacted := 0
		for _, part := range p.Fake.Notes(run.conv.ID) {
			if part.Redacted {
				redacted++
			}
		}
		return redacted > 0
	})
	p.waitSettled(t)
	before := p.notesWritten(t)
	lines := noteLines(before)
	if len(lines) != len(run.want) || lines[len(lines)-1].Seq != len(run.want) {
		t.Fatalf("before the rebuild: %d lines, last %d; want %d", len(lines), lines[len(lines)-1].Seq, len(run.want))
	}
	replies, redactions := intercomWrites(p.Fake)
	summaries := len(p.records(t, p.Topics.ConversationSummaries))
	partsBefore := p.Fake.Notes(run.conv.ID)

	// Redis is lost: every stage stops, Redis comes back empty.
	if err := p.Stack.StopAll(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	rdb := p.Redis.Client(t)
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("redis holds %d keys after FLUSHALL", n)
	}

	// The recipe: ingest as usual, the three stages after it replaying from the earliest offsets.
	p.restart(t, "ingest")
	for _, s := range []string{"linker", "notewriter", "summarizer"} {
		p.restart(t, s, "THREADLINE_REPLAY_FROM=earliest")
	}
	p.waitSettled(t)

	// The replay ran through every stage...
	if got := p.metric(t, "notewriter", "threadline_notewriter_restored_notes_total", `result="restored"`); got != float64(len(before)) {
		t.Errorf("the notewriter restored %v notes, want all %d on notes.written", got, len(before))
	}
	if got := p.metric(t, "notewriter", "threadline_notes_duplicate_actions_dropped_total"); got < float64(len(run.want)) {
		t.Errorf("the notewriter dropped %v replayed actions, want at least %d", got, len(run.want))
	}
	// Nothing was queued for a note, so nothing can still be on its way to Intercom.
	if got := p.metric(t, "notewriter", "threadline_notes_actions_accepted_total"); got != 0 {
		t.Errorf("the notewriter accepted %v replayed actions for new notes, want 0", got)
	}
	if got := len(p.records(t, p.Topics.ConversationSummaries)); got <= summaries {
		t.Errorf("the summarizer's replay requested no summary again (%d records, before %d)", got, summaries)
	}
	// ...and Intercom saw no call that writes.
	if r, d := intercomWrites(p.Fake); r != replies || d != redactions {
		t.Fatalf("the rebuild posted %d notes and made %d redactions, want none\nrequests: %+v", r-replies, d-redactions, p.Fake.RequestLog())
	}
	if after := p.notesWritten(t); len(after) != len(before) {
		t.Fatalf("notes.written grew from %d to %d records during the rebuild", len(before), len(after))
	}
	if parts := p.Fake.Notes(run.conv.ID); len(parts) != len(partsBefore) {
		t.Fatalf("the conversation has %d notes, before the rebuild %d", len(parts), len(partsBefore))
	}

	// The user goes on: the next action is numbered on from the last line.
	again, err := demo.Again(run.journey, time.Now().UTC(), 1)
	if err != nil {
		t.Fatal(err)
	}
	p.produceRaw(t, run.journey.UserID, again.Events[len(again.Events)-1].Value)
	var next messages.NoteWritten
	waitUntil(t, 60*time.Second, "a note of the new action", p, func() bool {
		written := p.notesWritten(t)
		if len(written) == len(before) {
			return false
		}
		next = written[len(written)-1]
		return true
	})
	if next.Kind != messages.NoteActions || len(next.Lines) != 1 || next.Lines[0].Seq != len(run.want)+1 {
		t.Fatalf("the note after the rebuild: %+v, want one line numbered %d", next, len(run.want)+1)
	}
	part := p.Fake.Notes(run.conv.ID)
	got := parseLines(part[len(part)-1].Body)
	if len(got) != 1 || got[0].Seq != len(run.want)+1 || got[0].Text != "User left the billing settings page" {
		t.Fatalf("the note after the rebuild reads %v", got)
	}
	if r, d := intercomWrites(p.Fake); r != replies+1 || d != redactions {
		t.Fatalf("after the rebuild: %d notes and %d redactions, want 1 and 0", r-replies, d-redactions)
	}
	t.Logf("rebuilt from %d notes.written records; the next action is line %d", len(before), got[0].Seq)
}

// Intercom is down while the user goes on, and the notewriter is restarted during the outage with
// the recipe's THREADLINE_REPLAY_FROM set to before it began. When Intercom is back, every action is
// in exactly one note, numbered 1, 2, 3 … without a gap or a repeat.
func TestNotesAfterAnIntercomOutageHoldEveryActionOnce(t *testing.T) {
	p := start(t, append([]string{"THREADLINE_SUMMARY_THRESHOLD=100"}, replayEnv...)...)
	var outageFrom time.Time
	run := playJourney(t, p, func() {
		// The pre-conversation batch reaches Intercom; then Intercom goes down.
		waitUntil(t, 60*time.Second, "the pre-conversation note", p, func() bool { return len(p.notesWritten(t)) > 0 })
		outageFrom = time.Now().UTC().Add(-time.Second).Truncate(time.Second)
		p.Fake.SetFault(fakeintercom.Fault{DownFor: time.Hour})
	})
	failed := func() bool {
		for _, r := range p.Fake.RequestLog() {
			if r.Endpoint == fakeintercom.EndpointReply && r.Status == http.StatusServiceUnavailable {
				return true
			}
		}
		return false
	}
	waitUntil(t, 60*time.Second, "the notewriter to meet the outage", p, failed)

	// The recipe: restart the notewriter with a replay from before the outage.
	if err := p.Stack.Stop("notewriter", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	p.restart(t, "notewriter", "THREADLINE_REPLAY_FROM="+outageFrom.Format(time.RFC3339))
	p.Fake.SetFault(fakeintercom.Fault{}) // Intercom is back

	waitUntil(t, 90*time.Second, "every action to be written", p, func() bool {
		return len(noteLines(p.notesWritten(t))) >= len(run.want)
	})
	p.waitSettled(t)

	// In Intercom, every action is in exactly one note, in order.
	var got []string
	for _, part := range p.Fake.Notes(run.conv.ID) {
		for _, l := range parseLines(part.Body) {
			got = append(got, l.String())
		}
	}
	if strings.Join(got, "\n") != strings.Join(run.want, "\n") {
		t.Fatalf("the conversation's notes read:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(run.want, "\n"))
	}
	written := p.notesWritten(t)
	lines := noteLines(written)
	for i, l := range lines {
		if l.Seq != i+1 {
			t.Fatalf("notes.written line %d has number %d", i+1, l.Seq)
		}
	}
	if n := len(p.Fake.Notes(run.conv.ID)); n != len(written) {
		t.Fatalf("%d notes in the conversation, %d on notes.written", n, len(written))
	}
	t.Logf("%d actions in %d notes after the outage", len(lines), len(written))
}
