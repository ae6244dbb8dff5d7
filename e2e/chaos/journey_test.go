package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
)

// rewriteEvent changes the event of a capture-output message: edit gets the event (the JSON in
// `data`) and may change anything in it; a changed event name is copied to the envelope.
func rewriteEvent(value []byte, edit func(ev map[string]any)) ([]byte, error) {
	var msg map[string]any
	if err := json.Unmarshal(value, &msg); err != nil {
		return nil, fmt.Errorf("capture output: %w", err)
	}
	data, _ := msg["data"].(string)
	var ev map[string]any
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return nil, fmt.Errorf("capture output data: %w", err)
	}
	edit(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	msg["data"], msg["event"] = string(b), ev["event"]
	return json.Marshal(msg)
}

// props returns the properties of an event being rewritten.
func props(ev map[string]any) map[string]any {
	p, _ := ev["properties"].(map[string]any)
	return p
}

// eventIndex returns the position of the first event named name at or after from.
func eventIndex(t *testing.T, j demo.Journey, name string, from int) int {
	t.Helper()
	for i := from; i < len(j.Events); i++ {
		if j.Events[i].Name == name {
			return i
		}
	}
	t.Fatalf("the journey has no %s event after %d", name, from)
	return -1
}

// playLinkedJourney produces j to the raw topic with a conversation opened for its user after the
// anonymous part, and waits until its notes hold every action (notes.written lists them all).
// It returns the conversation id.
func playLinkedJourney(ctx context.Context, t *testing.T, sys *system, led *ledger, j demo.Journey) string {
	t.Helper()
	producer := sys.Client(t, kgo.AllowAutoTopicCreation())
	produce := func(key string, evs []demo.Event) {
		recs := make([]*kgo.Record, len(evs))
		for i, ev := range evs {
			recs[i] = &kgo.Record{Topic: sys.Topics.PosthogRaw, Key: []byte(key), Value: ev.Value}
		}
		if err := produceSync(ctx, producer, recs...); err != nil {
			t.Fatal(err)
		}
	}
	produce(j.AnonID, j.Events[:demo.IdentifyIndex+1])
	conv := sys.Fake.CreateConversation(fakeintercom.ContactSpec{ExternalID: j.UserID, Email: j.Email, Name: "Test User", Role: "user"},
		"<p>Help, the payment fails.</p>", "https://app.acme.dev/checkout", nil)
	if err := deliverUntilAccepted(ctx, sys, conv.ID); err != nil {
		t.Fatal(err)
	}
	produce(j.UserID, j.Events[demo.IdentifyIndex+1:])
	want := len(noteActionIDs(j))
	for {
		written, _ := led.snapshot()
		lines := map[string]bool{}
		for _, n := range written {
			if n.ConversationID == conv.ID {
				for _, id := range n.ActionIDs() {
					lines[id] = true
				}
			}
		}
		if len(lines) >= want {
			return conv.ID
		}
		select {
		case <-ctx.Done():
			t.Fatalf("conversation %s holds %d of %d actions: %v\nlogs:\n%s", conv.ID, len(lines), want, ctx.Err(), sys.Logs.Tail(100))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitForSummary waits until a summary of the conversation is posted (a summary request on
// conversation.summaries, and its note in Intercom).
func waitForSummary(ctx context.Context, t *testing.T, sys *system, led *ledger, conv string) {
	t.Helper()
	for {
		written, summaries := led.snapshot()
		requested := false
		for _, s := range summaries {
			requested = requested || s.ConversationID == conv
		}
		if requested {
			for _, n := range written {
				if n.ConversationID == conv && n.Kind == messages.NoteSummary {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no summary was posted to conversation %s: %v", conv, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Injections are planted where a user's product controls the text: element text, a custom event
// name, an exception message and a URL path.
var injections = struct{ ElementText, EventName, Exception, Path string }{
	ElementText: `<script>alert(1)</script><img src=x onerror=alert(2)>`,
	EventName:   `<img src=x onerror=alert(3)>_failed`,
	Exception:   `<script>alert(4)</script> card declined`,
	Path:        `/<svg onload=alert(5)>`,
}

// allowedTag is what a note body may contain as markup: p, br, b and i.
var (
	anyTag     = regexp.MustCompile(`<[^>]*>`)
	allowedTag = regexp.MustCompile(`^</?(p|br|b|i)>$`)
)

// injectionJourney plays a journey whose element text, custom event name, exception message and
// URL carry HTML and script, and checks every body posted to its conversation: only the note
// markup, and the planted text escaped. It returns the number of injections tried.
func injectionJourney(ctx context.Context, t *testing.T, sys *system, led *ledger) int {
	t.Helper()
	j, err := demo.Fresh(time.Now().Add(-20*time.Second), 4)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[int]func(map[string]any){
		eventIndex(t, j, "$autocapture", 0): func(ev map[string]any) {
			p := props(ev)
			p["$el_text"] = injections.ElementText
			chain, _ := p["$elements_chain"].(string)
			p["$elements_chain"] = strings.Replace(chain, `text="Select Pro"`, `text="`+injections.ElementText+`"`, 1)
		},
		eventIndex(t, j, "payment_validation_failed", 0): func(ev map[string]any) { ev["event"] = injections.EventName },
		eventIndex(t, j, "$exception", 0): func(ev map[string]any) {
			list, _ := props(ev)["$exception_list"].([]any)
			first, _ := list[0].(map[string]any)
			first["value"] = injections.Exception
		},
		eventIndex(t, j, "$pageview", demo.IdentifyIndex): func(ev map[string]any) {
			p := props(ev)
			p["$current_url"] = "https://app.acme.dev" + injections.Path
			p["$pathname"] = injections.Path
		},
	}
	for i, edit := range edits {
		if j.Events[i].Value, err = rewriteEvent(j.Events[i].Value, edit); err != nil {
			t.Fatal(err)
		}
	}
	conv := playLinkedJourney(ctx, t, sys, led, j)
	waitForSummary(ctx, t, sys, led, conv)
	var bodies []string
	for _, b := range sys.Posted.Bodies() {
		if b.ConversationID == conv {
			bodies = append(bodies, b.Body)
		}
	}
	all := strings.Join(bodies, "\n")
	for _, tag := range anyTag.FindAllString(all, -1) {
		if !allowedTag.MatchString(tag) {
			t.Errorf("a note posted to conversation %s carries markup %q:\n%s", conv, tag, all)
		}
	}
	for _, escaped := range []string{"&lt;script&gt;", "&lt;img src=x onerror=alert(3)&gt;"} {
		if !strings.Contains(all, escaped) {
			t.Errorf("no note of conversation %s shows %q: the planted text did not arrive escaped:\n%s", conv, escaped, all)
		}
	}
	return len(edits)
}
