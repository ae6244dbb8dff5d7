package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
)

// journey builds input records for users who each browse in one session, open one conversation
// and keep browsing, and knows what conversation.actions must then carry. User i has session
// "s<i>", conversation "c<i>" and actions "<user>-a<n>"; every id carries the journey's prefix.
type journey struct {
	prefix string
	start  time.Time // event time 0 of the journey, the wall clock when it was made
	topics kafka.Topics
	users  int
	// want is, per conversation, what a deduplicating reader must see: "pre <ids>" for the
	// pre-conversation batch, then one action id per live action, in order.
	want map[string][]string
}

func newJourney(prefix string, topics kafka.Topics, users int) *journey {
	return &journey{prefix: prefix, start: time.Now().UTC().Truncate(time.Second), topics: topics, users: users, want: map[string][]string{}}
}

func (j *journey) user(i int) string    { return fmt.Sprintf("%su%d", j.prefix, i) }
func (j *journey) session(i int) string { return fmt.Sprintf("%ss%d", j.prefix, i) }
func (j *journey) conv(i int) string    { return fmt.Sprintf("%sc%d", j.prefix, i) }

// actions returns records of actions first..first+n-1 of user i (one second apart in event time).
func (j *journey) actions(i, first, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for k := range recs {
		seq := first + k
		pa := messages.ProductAction{
			Version: messages.Version,
			Action: messages.Action{
				ActionID:  fmt.Sprintf("%s-a%d", j.user(i), seq),
				SessionID: j.session(i),
				EventTime: j.start.Add(time.Duration(seq) * time.Second),
				Event:     "$pageview",
				Kind:      messages.KindPageview,
				Page:      "pricing",
				Path:      fmt.Sprintf("/step/%d", seq),
				Text:      fmt.Sprintf("User opened step %d", seq),
			},
			Identity: messages.Identity{DistinctID: j.user(i), UserID: j.user(i)},
		}
		recs[k] = &kgo.Record{Topic: j.topics.ProductActions, Key: []byte(pa.Action.SessionID), Value: mustJSON(pa)}
	}
	return recs
}

// actionsOfAll returns actions first..first+n-1 of every user.
func (j *journey) actionsOfAll(first, n int) []*kgo.Record {
	var recs []*kgo.Record
	for i := 0; i < j.users; i++ {
		recs = append(recs, j.actions(i, first, n)...)
	}
	return recs
}

// opens returns the "created" event of user i's conversation, at event time at seconds. Even
// users' conversations name the user's external id, odd ones carry a session hint.
func (j *journey) opens(i int, at int) *kgo.Record {
	ev := messages.ConversationEvent{
		Version:        messages.Version,
		EventID:        j.conv(i) + "-created",
		Type:           messages.ConvCreated,
		ConversationID: j.conv(i),
		ContactID:      j.user(i) + "-contact",
		Role:           "user",
		OccurredAt:     j.start.Add(time.Duration(at) * time.Second),
	}
	if i%2 == 0 {
		ev.ExternalID = j.user(i)
	} else {
		ev.SessionHint = j.session(i)
	}
	return &kgo.Record{Topic: j.topics.ConversationEvents, Key: []byte(ev.ConversationID), Value: mustJSON(ev)}
}

// opensOfAll returns the created events of every user's conversation.
func (j *journey) opensOfAll(at int) []*kgo.Record {
	recs := make([]*kgo.Record, j.users)
	for i := range recs {
		recs[i] = j.opens(i, at)
	}
	return recs
}

// expectPre records that user i's conversation starts with the pre-conversation batch of
// actions first..first+n-1.
func (j *journey) expectPre(i, first, n int) {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("%s-a%d", j.user(i), first+k)
	}
	j.want[j.conv(i)] = append(j.want[j.conv(i)], "pre "+strings.Join(ids, " "))
}

// expectLive records that actions first..first+n-1 of user i follow as live actions.
func (j *journey) expectLive(i, first, n int) {
	for k := 0; k < n; k++ {
		j.want[j.conv(i)] = append(j.want[j.conv(i)], fmt.Sprintf("%s-a%d", j.user(i), first+k))
	}
}

// delivery is what a read of conversation.actions proved.
type delivery struct {
	messages int // records read
	repeats  int // records that repeat an earlier record exactly
}

// checkDelivery fails t unless conversation.actions, as recs, shows the exactly-once effect
// (see deliveryProblems).
func (j *journey) checkDelivery(t *testing.T, recs []*kgo.Record) delivery {
	t.Helper()
	d, problems := j.deliveryProblems(recs)
	for _, p := range problems {
		t.Error(p)
	}
	return d
}

// deliveryProblems checks the exactly-once effect on what conversation.actions holds: every
// record is well formed; a record that shares an action id with an earlier one repeats it
// exactly (same conversation, session, kind and action ids), so a reader that drops actions it
// has seen loses nothing; and that reader, the notewriter's rule, sees in each conversation
// exactly j.want: the pre-conversation batch before the live actions, every action once, in
// order. It returns what it counted and every problem found.
func (j *journey) deliveryProblems(recs []*kgo.Record) (delivery, []string) {
	d := delivery{messages: len(recs)}
	var problems []string
	firstSeen := map[string]string{} // action id → rendering of the first record carrying it
	seenIn := map[string]map[string]bool{}
	got := map[string][]string{}
	for _, rec := range recs {
		var ca messages.ConversationActions
		if err := json.Unmarshal(rec.Value, &ca); err != nil {
			problems = append(problems, fmt.Sprintf("record at %d/%d: %v", rec.Partition, rec.Offset, err))
			continue
		}
		if string(rec.Key) != ca.ConversationID || ca.Version != messages.Version || len(ca.Actions) == 0 ||
			(!ca.PreConversation && len(ca.Actions) != 1) {
			problems = append(problems, fmt.Sprintf("malformed record at %d/%d: key %q, %+v", rec.Partition, rec.Offset, rec.Key, ca))
			continue
		}
		ids := make([]string, len(ca.Actions))
		for k, a := range ca.Actions {
			if a.SessionID != ca.SessionID {
				problems = append(problems, fmt.Sprintf("action %s of session %s in a record of session %s", a.ActionID, a.SessionID, ca.SessionID))
			}
			ids[k] = a.ActionID
		}
		render := fmt.Sprintf("%s %s pre=%v %s", ca.ConversationID, ca.SessionID, ca.PreConversation, strings.Join(ids, " "))
		repeat := false
		for _, id := range ids {
			if first, ok := firstSeen[id]; ok {
				if first != render {
					problems = append(problems, fmt.Sprintf("action %s was output twice differently:\n  %s\n  %s", id, first, render))
				}
				repeat = true
			}
		}
		if repeat {
			d.repeats++
		}
		seen := seenIn[ca.ConversationID]
		if seen == nil {
			seen = map[string]bool{}
			seenIn[ca.ConversationID] = seen
		}
		var fresh []string
		for _, id := range ids {
			if _, ok := firstSeen[id]; !ok {
				firstSeen[id] = render
			}
			if !seen[id] {
				seen[id] = true
				fresh = append(fresh, id)
			}
		}
		switch {
		case len(fresh) == 0:
		case ca.PreConversation:
			got[ca.ConversationID] = append(got[ca.ConversationID], "pre "+strings.Join(fresh, " "))
		default:
			got[ca.ConversationID] = append(got[ca.ConversationID], fresh...)
		}
	}
	for _, conv := range slices.Sorted(maps.Keys(j.want)) {
		if want := j.want[conv]; !slices.Equal(got[conv], want) {
			problems = append(problems, fmt.Sprintf("conversation %s, deduplicated:\n got  %q\n want %q", conv, got[conv], want))
		}
	}
	for _, conv := range slices.Sorted(maps.Keys(got)) {
		if _, ok := j.want[conv]; !ok {
			problems = append(problems, fmt.Sprintf("output for unexpected conversation %s: %q", conv, got[conv]))
		}
	}
	return d, problems
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestDeliveryProblems proves the delivery check can fail: it accepts an exact repeat and flags
// a repeat that differs, a lost action, a live action ahead of the pre-conversation batch and
// output for a conversation nobody opened.
func TestDeliveryProblems(t *testing.T) {
	j := newJourney("check-", kafka.DefaultTopics(), 1)
	j.expectPre(0, 0, 2)
	j.expectLive(0, 2, 2)
	conv, session, user := j.conv(0), j.session(0), j.user(0)
	out := func(conv string, pre bool, ids ...int) *kgo.Record {
		ca := messages.ConversationActions{Version: messages.Version, ConversationID: conv, SessionID: session, PreConversation: pre}
		for _, id := range ids {
			ca.Actions = append(ca.Actions, messages.Action{ActionID: fmt.Sprintf("%s-a%d", user, id), SessionID: session})
		}
		return &kgo.Record{Key: []byte(conv), Value: mustJSON(ca)}
	}
	cases := []struct {
		name     string
		recs     []*kgo.Record
		problems int
		repeats  int
	}{
		{"exactly once", []*kgo.Record{out(conv, true, 0, 1), out(conv, false, 2), out(conv, false, 3)}, 0, 0},
		{"an exact repeat", []*kgo.Record{out(conv, true, 0, 1), out(conv, false, 2), out(conv, true, 0, 1), out(conv, false, 3)}, 0, 1},
		{"a repeat that differs", []*kgo.Record{out(conv, true, 0, 1), out(conv, false, 1), out(conv, false, 2), out(conv, false, 3)}, 1, 1},
		{"a lost action", []*kgo.Record{out(conv, true, 0, 1), out(conv, false, 3)}, 1, 0},
		{"live before the batch", []*kgo.Record{out(conv, false, 2), out(conv, true, 0, 1), out(conv, false, 3)}, 1, 0},
		{"an unexpected conversation", []*kgo.Record{out(conv, true, 0, 1), out(conv, false, 2), out(conv, false, 3), out(j.conv(9), false, 4)}, 1, 0},
	}
	for _, c := range cases {
		d, problems := j.deliveryProblems(c.recs)
		if len(problems) != c.problems || d.repeats != c.repeats || d.messages != len(c.recs) {
			t.Errorf("%s: %d problems %q, %d repeats of %d records; want %d problems, %d repeats",
				c.name, len(problems), problems, d.repeats, d.messages, c.problems, c.repeats)
		}
	}
}
