package chaos

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
)

// ledger is what the pipeline put on its output topics, read from the start of every partition by
// a client outside any group, through broker restarts.
type ledger struct {
	mu        sync.Mutex
	notes     []messages.NoteWritten
	summaries []messages.ConversationSummary
	actions   map[string]map[string]bool // session id → action ids on product.actions
	actionIDs map[string]bool            // every action id on product.actions
	convActs  map[string]map[string]int  // conversation id → action id → times on conversation.actions
	dlq       []deadLetter
	undecoded []string
	records   int
}

// deadLetter is one record of the dead-letter topic: its headers and value.
type deadLetter struct {
	SourceTopic string
	Reason      string
	Service     string
	Error       string
	Value       messages.DeadLetter
}

// tapTopics starts reading topics into a ledger until ctx ends.
func tapTopics(ctx context.Context, cl *kgo.Client, topics kafka.Topics) *ledger {
	l := &ledger{actions: map[string]map[string]bool{}, actionIDs: map[string]bool{}, convActs: map[string]map[string]int{}}
	go func() {
		for ctx.Err() == nil {
			pollCtx, cancel := context.WithTimeout(ctx, time.Second)
			fetches := cl.PollFetches(pollCtx)
			cancel()
			fetches.EachRecord(func(r *kgo.Record) { l.add(topics, r) })
		}
	}()
	return l
}

func (l *ledger) add(topics kafka.Topics, r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	bad := func(err error) {
		l.undecoded = append(l.undecoded, fmt.Sprintf("%s@%d/%d: %v", r.Topic, r.Partition, r.Offset, err))
	}
	switch r.Topic {
	case topics.NotesWritten:
		var n messages.NoteWritten
		if err := messages.Decode(r.Value, &n); err != nil {
			bad(err)
			return
		}
		l.notes = append(l.notes, n)
	case topics.ConversationSummaries:
		var s messages.ConversationSummary
		if err := messages.Decode(r.Value, &s); err != nil {
			bad(err)
			return
		}
		l.summaries = append(l.summaries, s)
	case topics.ProductActions:
		var pa messages.ProductAction
		if err := messages.Decode(r.Value, &pa); err != nil {
			bad(err)
			return
		}
		ids := l.actions[pa.Action.SessionID]
		if ids == nil {
			ids = map[string]bool{}
			l.actions[pa.Action.SessionID] = ids
		}
		ids[pa.Action.ActionID] = true
		l.actionIDs[pa.Action.ActionID] = true
	case topics.ConversationActions:
		var ca messages.ConversationActions
		if err := messages.Decode(r.Value, &ca); err != nil {
			bad(err)
			return
		}
		ids := l.convActs[ca.ConversationID]
		if ids == nil {
			ids = map[string]int{}
			l.convActs[ca.ConversationID] = ids
		}
		for _, a := range ca.Actions {
			ids[a.ActionID]++
		}
	case topics.DLQ:
		d := deadLetter{}
		for _, h := range r.Headers {
			switch h.Key {
			case kafka.HeaderSourceTopic:
				d.SourceTopic = string(h.Value)
			case kafka.HeaderReason:
				d.Reason = string(h.Value)
			case kafka.HeaderService:
				d.Service = string(h.Value)
			case kafka.HeaderError:
				d.Error = string(h.Value)
			}
		}
		if err := messages.Decode(r.Value, &d.Value); err != nil {
			bad(err)
		}
		l.dlq = append(l.dlq, d)
	}
}

// snapshot returns copies of what the ledger holds.
func (l *ledger) snapshot() (notes []messages.NoteWritten, summaries []messages.ConversationSummary) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.notes), slices.Clone(l.summaries)
}

// deadLetters returns the dead letters read so far.
func (l *ledger) deadLetters() []deadLetter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.dlq)
}

// hasAction reports whether product.actions carried the action id.
func (l *ledger) hasAction(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.actionIDs[id]
}

// routed returns how often conversation.actions carried each action to the conversation.
func (l *ledger) routed(conversationID string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.convActs[conversationID]))
	for id, n := range l.convActs[conversationID] {
		out[id] = n
	}
	return out
}

// sessionActions returns the distinct action ids product.actions carried for session.
func (l *ledger) sessionActions(session string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.actions[session])
}

// conversationFacts is what one linked conversation should hold and what the fake Intercom holds.
type conversationFacts struct {
	ID       string
	Expected []string            // action ids that must reach the conversation
	Parts    []fakeintercom.Part // its notes in the fake Intercom, in order
	// ReplyCalls counts the reply calls to the conversation that took effect in the fake (answered
	// 200, or failed by an injected fault after taking effect); -1 when unknown.
	ReplyCalls int
	// Routed counts how often conversation.actions carried each action to the conversation: where
	// a lost action was lost (before or after the linker).
	Routed map[string]int
}

// deliveryReport holds the figures of a delivery check and every problem found.
type deliveryReport struct {
	Conversations   int
	ActionsExpected int
	Delivered       int // expected actions in exactly one note
	Summarised      int // of those, covered by a posted summary
	Duplicates      int // extra copies: an action in a second note, a note or summary posted twice, a note nobody accounts for
	Lost            int // expected actions in no note, or only in a redacted note no summary covers
	Notes           int // notes in the fake Intercom
	SummaryNotes    int
	Redacted        int
	Problems        []string
}

func (r *deliveryReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Summary is the one-line statement of the figures.
func (r deliveryReport) Summary() string {
	return fmt.Sprintf("conversations %d, actions expected %d, delivered %d (summarised %d), duplicates %d, lost %d, notes %d (summaries %d, redacted %d)",
		r.Conversations, r.ActionsExpected, r.Delivered, r.Summarised, r.Duplicates, r.Lost, r.Notes, r.SummaryNotes, r.Redacted)
}

// noteLineRE reads one "[n] hh:mm:ss text" line of a note body.
var noteLineRE = regexp.MustCompile(`^\[(\d+)\] (?:\d{1,2} [A-Z][a-z]{2} )?\d\d:\d\d:\d\d (.*)$`)

// bodyLines reads the numbered lines of an actions note body: line number → text (unescaped).
func bodyLines(body string) map[int]string {
	out := map[int]string{}
	for _, chunk := range regexp.MustCompile(`<br>|</p><p>|<p>|</p>`).Split(body, -1) {
		m := noteLineRE.FindStringSubmatch(html.UnescapeString(strings.TrimSpace(chunk)))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		out[n] = m[2]
	}
	return out
}

// checkDelivery checks, for every linked conversation, that each expected action appears exactly
// once in a note or is covered by a summary, that no note was posted twice, that every summary was
// posted before the notes it replaces were redacted, and that nothing was redacted without a
// summary in its place. written and summaries are everything notes.written and
// conversation.summaries carried (repeats included).
func checkDelivery(convs []conversationFacts, written []messages.NoteWritten, summaries []messages.ConversationSummary) deliveryReport {
	var rep deliveryReport
	notesOf := map[string][]messages.NoteWritten{}
	for _, n := range written {
		notesOf[n.ConversationID] = append(notesOf[n.ConversationID], n)
	}
	summariesOf := map[string][]messages.ConversationSummary{}
	for _, s := range summaries {
		summariesOf[s.ConversationID] = append(summariesOf[s.ConversationID], s)
	}
	known := map[string]bool{}
	for _, c := range convs {
		known[c.ID] = true
		checkConversation(&rep, c, notesOf[c.ID], summariesOf[c.ID])
	}
	var foreign []string
	for id := range notesOf {
		if !known[id] {
			foreign = append(foreign, id)
		}
	}
	sort.Strings(foreign)
	for _, id := range foreign {
		rep.problem("notes.written names conversation %s, which no journey opened", id)
	}
	return rep
}

func checkConversation(rep *deliveryReport, c conversationFacts, written []messages.NoteWritten, summaries []messages.ConversationSummary) {
	rep.Conversations++
	rep.ActionsExpected += len(c.Expected)
	parts := map[string]fakeintercom.Part{}
	for _, p := range c.Parts {
		parts[p.ID] = p
		rep.Notes++
		if p.Redacted {
			rep.Redacted++
		}
	}
	if c.ReplyCalls >= 0 && c.ReplyCalls != len(c.Parts) {
		rep.problem("conversation %s: %d reply calls took effect but it holds %d notes", c.ID, c.ReplyCalls, len(c.Parts))
	}

	// One notes.written account per part; repeats of it must agree.
	byPart := map[string]messages.NoteWritten{}
	var partOrder []string
	for _, n := range written {
		prev, seen := byPart[n.PartID]
		if !seen {
			byPart[n.PartID] = n
			partOrder = append(partOrder, n.PartID)
			continue
		}
		if prev.Kind != n.Kind || prev.SummaryID != n.SummaryID || !slices.Equal(prev.ActionIDs(), n.ActionIDs()) {
			rep.problem("conversation %s: part %s is reported twice on notes.written with different contents", c.ID, n.PartID)
		}
	}
	for _, id := range partOrder {
		if _, ok := parts[id]; !ok {
			rep.problem("conversation %s: notes.written names part %s, which Intercom does not hold", c.ID, id)
		}
	}
	for _, p := range c.Parts {
		if _, ok := byPart[p.ID]; !ok {
			rep.Duplicates++
			rep.problem("conversation %s: note %s is in Intercom but on no notes.written record (posted twice, or its record lost): %.200s", c.ID, p.ID, p.Body)
		}
	}

	// Summaries: the requests (deduplicated by id) and the notes that posted them.
	requests := map[string]messages.ConversationSummary{}
	for _, s := range summaries {
		requests[s.SummaryID] = s
	}
	summaryParts := map[string][]string{} // summary id → distinct parts
	for _, id := range partOrder {
		n := byPart[id]
		if n.Kind == messages.NoteSummary {
			summaryParts[n.SummaryID] = append(summaryParts[n.SummaryID], id)
			rep.SummaryNotes++
		}
	}
	replacedBy := map[string]string{} // part id → summary id that replaces it
	type span struct{ from, to int }
	var covered []span
	summaryIDs := make([]string, 0, len(requests))
	for id := range requests {
		summaryIDs = append(summaryIDs, id)
	}
	sort.Strings(summaryIDs)
	for _, sid := range summaryIDs {
		s := requests[sid]
		ps := summaryParts[sid]
		if len(ps) > 1 {
			rep.Duplicates += len(ps) - 1
			rep.problem("conversation %s: summary %s was posted %d times (parts %v)", c.ID, sid, len(ps), ps)
		}
		if len(ps) == 0 {
			rep.problem("conversation %s: summary %s (lines %d–%d) was never posted", c.ID, sid, s.FromSeq, s.ToSeq)
			continue
		}
		sp := parts[ps[0]]
		if sp.Redacted {
			rep.problem("conversation %s: summary note %s was redacted", c.ID, sp.ID)
		}
		covered = append(covered, span{s.FromSeq, s.ToSeq})
		for _, pid := range s.ReplacesParts {
			replacedBy[pid] = sid
			p, ok := parts[pid]
			switch {
			case !ok:
				rep.problem("conversation %s: summary %s replaces part %s, which Intercom does not hold", c.ID, sid, pid)
			case !p.Redacted:
				rep.problem("conversation %s: part %s is replaced by summary %s but not redacted", c.ID, pid, sid)
			case p.UpdatedAt.Before(sp.CreatedAt):
				rep.problem("conversation %s: part %s was redacted at %s, before summary %s was posted at %s",
					c.ID, pid, p.UpdatedAt.Format(time.RFC3339Nano), sid, sp.CreatedAt.Format(time.RFC3339Nano))
			}
			if n, ok := byPart[pid]; ok {
				for _, l := range n.Lines {
					if l.Seq < s.FromSeq || l.Seq > s.ToSeq {
						rep.problem("conversation %s: summary %s (lines %d–%d) replaces part %s, whose line %d it does not cover",
							c.ID, sid, s.FromSeq, s.ToSeq, pid, l.Seq)
					}
				}
			}
		}
	}
	for _, p := range c.Parts {
		if p.Redacted && replacedBy[p.ID] == "" {
			rep.problem("conversation %s: part %s was redacted, but no summary replaces it", c.ID, p.ID)
		}
	}
	isCovered := func(seq int) bool {
		for _, s := range covered {
			if seq >= s.from && seq <= s.to {
				return true
			}
		}
		return false
	}

	// Actions: in which distinct notes, under which numbers.
	where := map[string][]string{}    // action id → parts
	seqOf := map[string]int{}         // action id → line number
	lineOwners := map[int][]string{}  // line number → action ids
	redactedOnly := map[string]bool{} // action id → its note is redacted
	for _, id := range partOrder {
		n := byPart[id]
		if n.Kind != messages.NoteActions {
			continue
		}
		p, inIntercom := parts[id]
		var shown map[int]string
		if inIntercom && !p.Redacted {
			shown = bodyLines(p.Body)
		}
		for _, l := range n.Lines {
			a := l.Action.ActionID
			where[a] = append(where[a], id)
			seqOf[a] = l.Seq
			lineOwners[l.Seq] = append(lineOwners[l.Seq], a)
			redactedOnly[a] = inIntercom && p.Redacted
			if shown != nil {
				if text, ok := shown[l.Seq]; !ok {
					rep.problem("conversation %s: note %s lacks line %d that notes.written lists", c.ID, id, l.Seq)
				} else if want := strings.TrimSpace(l.Action.Text); want != "" && text != want {
					rep.problem("conversation %s: note %s line %d reads %q, notes.written says %q", c.ID, id, l.Seq, text, want)
				}
			}
		}
		if shown != nil && len(shown) != len(n.Lines) {
			rep.problem("conversation %s: note %s shows %d lines, notes.written lists %d", c.ID, id, len(shown), len(n.Lines))
		}
	}
	expected := map[string]bool{}
	for _, a := range c.Expected {
		expected[a] = true
		switch ps := where[a]; {
		case len(ps) == 0:
			rep.Lost++
			rep.problem("conversation %s: action %s is in no note (conversation.actions carried it here %d times)", c.ID, a, c.Routed[a])
		case redactedOnly[a] && !isCovered(seqOf[a]):
			rep.Lost++
			rep.problem("conversation %s: action %s (line %d) is only in a redacted note no summary covers", c.ID, a, seqOf[a])
		default:
			rep.Delivered++
			if isCovered(seqOf[a]) {
				rep.Summarised++
			}
		}
	}
	var ids []string
	for a := range where {
		ids = append(ids, a)
	}
	sort.Strings(ids)
	for _, a := range ids {
		if ps := where[a]; len(ps) > 1 {
			rep.Duplicates += len(ps) - 1
			rep.problem("conversation %s: action %s is in %d notes %v", c.ID, a, len(ps), ps)
		}
		if !expected[a] {
			rep.problem("conversation %s: action %s does not belong to it", c.ID, a)
		}
	}
	// Lines are numbered once each, from 1 on, without gaps.
	for seq := 1; seq <= len(lineOwners); seq++ {
		if owners := lineOwners[seq]; len(owners) != 1 {
			rep.problem("conversation %s: line %d is held by %d actions %v", c.ID, seq, len(owners), owners)
		}
	}
}
