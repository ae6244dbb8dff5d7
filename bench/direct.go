package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/fakeintercom"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
)

// DirectRow is the notewriter alone under one setting: actions produced straight to
// conversation.actions, one per record, each to a conversation picked at random.
type DirectRow struct {
	Coalescing    Coalescing
	Conversations int
	Rate          float64 // configured actions/s
	Duration      time.Duration
	Produced      int // actions produced
	Notes         int
	Lines         int
	NotewriterActivity
	Latencies []time.Duration // conversation.actions record → note stored, per line after the warm-up
	// Warmup is the start of the load whose lines Latencies leaves out: every conversation starts
	// at once, so their first notes fall due together and queue for the budget, which real
	// traffic, spread over time, does not do. StartLatencies are the lines of the warm-up.
	Warmup         time.Duration
	StartLatencies []time.Duration
	NotewriterCPU  time.Duration
	LoadAvg        string
	// Budget is the notewriter's call budget in calls per second (notes.rate-per-minute / 60).
	Budget float64
}

// CallsPerAction is the notewriter's Intercom calls per action line written.
func (r DirectRow) CallsPerAction() float64 {
	if r.Lines == 0 {
		return 0
	}
	return float64(r.NoteCalls) / float64(r.Lines)
}

// CallsPerSecond is the notewriter's calls per second from the start of the load to its last call.
func (r DirectRow) CallsPerSecond() float64 {
	d := r.Active
	if d <= 0 {
		d = r.Duration
	}
	return float64(r.NoteCalls) / d.Seconds()
}

// Percentile returns the p-th percentile (0..100, nearest rank) of the latencies.
func (r DirectRow) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// Bound is what coalescing and the budget allow at the row's load: a conversation receiving
// λ = Rate/Conversations actions/s whose note is written within W needs at least about
// 1/(1+λW) calls per action, and Conversations conversations each written within W need up to
// Conversations/W calls/s, which the budget caps. It returns the least calls per action at the
// setting's max-wait, and the shortest wait the budget allows for every conversation.
func (r DirectRow) Bound() (callsPerAction float64, minWait time.Duration) {
	return CoalescingBound(r.Rate/float64(r.Conversations), r.Coalescing.MaxWait, r.Conversations, r.Budget)
}

// CoalescingBound returns, for conversations each receiving lambda actions/s and written within
// wait, the least calls per action 1/(1+λW), and the shortest wait N/budget at which N
// conversations each get a note without exceeding budget calls/s.
func CoalescingBound(lambda float64, wait time.Duration, conversations int, budget float64) (callsPerAction float64, minWait time.Duration) {
	callsPerAction = 1 / (1 + lambda*wait.Seconds())
	if budget > 0 {
		minWait = time.Duration(math.Round(float64(conversations) / budget * float64(time.Second)))
	}
	return callsPerAction, minWait
}

// directRecordsPerTick paces the direct load in ticks of this length.
const directTick = 10 * time.Millisecond

// runDirect runs one direct row. The other services must be stopped.
func (s *system) runDirect(ctx context.Context, co Coalescing) (DirectRow, error) {
	row := DirectRow{Coalescing: co, Conversations: s.cfg.DirectConversations, Rate: s.cfg.DirectRate, Duration: s.cfg.DirectDuration}
	if co.Count > 0 {
		row.Conversations, row.Rate = co.Count, co.Rate
	}
	d := notes.DefaultConfig()
	if co.Debounce == 0 && co.MaxWait == 0 {
		row.Coalescing.Debounce, row.Coalescing.MaxWait = d.Debounce, d.MaxWait
	}
	row.Budget = float64(d.RatePerMinute) / 60
	if err := s.configureNotewriter(ctx, co); err != nil {
		return row, err
	}
	convs := make([]string, row.Conversations)
	for i := range convs {
		c := s.fake.CreateConversation(fakeintercom.ContactSpec{
			ExternalID: fmt.Sprintf("direct-%d-%d", time.Now().UnixNano(), i), Name: "Direct load", Role: "user",
		}, "<p>Help with my plan, please.</p>", "https://app.example.com/billing", nil)
		convs[i] = c.ID
	}
	notes0, activity := s.notes.len(), s.watchNotewriter(ctx)
	cpu0 := s.cpu()["notewriter"]
	s.progress("direct row %q: %d conversations at %.0f actions/s for %s, the notewriter alone", co.Name, row.Conversations, row.Rate, row.Duration)

	loadStart := time.Now()
	produced, err := s.produceDirect(ctx, convs, row.Rate, row.Duration)
	if err != nil {
		return row, err
	}
	row.Produced = produced
	row.NotewriterCPU = s.cpu()["notewriter"] - cpu0
	row.LoadAvg = loadAverage()
	if row.NotewriterActivity, err = activity(loadStart); err != nil {
		return row, err
	}

	ours := map[string]bool{}
	stored := map[string]time.Time{}
	for _, id := range convs {
		ours[id] = true
		for _, p := range s.fake.Notes(id) {
			stored[p.ID] = p.CreatedAt
		}
	}
	_, minWait := row.Bound()
	row.Warmup = min(row.Coalescing.MaxWait+minWait, row.Duration/2)
	steady := loadStart.Add(row.Warmup)
	for _, n := range s.notes.since(notes0) {
		if !ours[n.ConversationID] || n.Kind != messages.NoteActions {
			continue
		}
		row.Notes++
		row.Lines += len(n.Lines)
		at, ok := stored[n.PartID]
		if !ok {
			continue
		}
		for _, l := range n.Lines {
			if l.Action.EventTime.Before(steady) {
				row.StartLatencies = append(row.StartLatencies, at.Sub(l.Action.EventTime))
				continue
			}
			row.Latencies = append(row.Latencies, at.Sub(l.Action.EventTime))
		}
	}
	if row.Lines != row.Produced {
		return row, fmt.Errorf("bench: direct row %q: %d actions produced, %d lines written", co.Name, row.Produced, row.Lines)
	}
	s.progress("direct row %q: %d lines in %d notes, %d calls (%.3f per action), after %s: p50 %s p95 %s p99 %s; before: p99 %s",
		co.Name, row.Lines, row.Notes, row.NoteCalls, row.CallsPerAction(), row.Warmup,
		row.Percentile(50).Round(time.Millisecond), row.Percentile(95).Round(time.Millisecond), row.Percentile(99).Round(time.Millisecond),
		Percentile(row.StartLatencies, 99).Round(time.Millisecond))
	return row, nil
}

// produceDirect produces rate actions/s for d, one per conversation.actions record, each to a
// conversation of convs picked at random, with the event time set to when it is produced.
func (s *system) produceDirect(ctx context.Context, convs []string, rate float64, d time.Duration) (int, error) {
	start := time.Now()
	tick := time.NewTicker(directTick)
	defer tick.Stop()
	produced, failed := 0, 0
	results := make(chan error, 1024)
	inFlight := 0
	for {
		elapsed := time.Since(start)
		if elapsed >= d {
			break
		}
		due := int(rate * elapsed.Seconds())
		for ; produced < due; produced++ {
			conv := convs[rand.IntN(len(convs))]
			now := time.Now().UTC()
			msg := messages.ConversationActions{
				Version: messages.Version, ConversationID: conv, SessionID: "direct-" + conv,
				Actions: []messages.Action{{
					ActionID:  "direct-" + strconv.Itoa(produced) + "-" + strconv.FormatInt(start.UnixNano(), 36),
					SessionID: "direct-" + conv, EventTime: now, Event: "$autocapture", Kind: messages.KindClick,
					Page: "billing", Path: "/billing", Target: "Change plan button",
					Text: "User clicked Change plan button on the billing page",
				}},
			}
			b, err := json.Marshal(msg)
			if err != nil {
				return produced, fmt.Errorf("bench: direct load: %w", err)
			}
			inFlight++
			s.producer.Produce(ctx, &kgo.Record{Topic: s.topics.ConversationActions, Key: []byte(conv), Value: b, Timestamp: now},
				func(_ *kgo.Record, err error) { results <- err })
			for inFlight > cap(results)/2 {
				if err := <-results; err != nil {
					failed++
				}
				inFlight--
			}
		}
		select {
		case <-ctx.Done():
			return produced, ctx.Err()
		case <-tick.C:
		}
		for drained := false; !drained; {
			select {
			case err := <-results:
				inFlight--
				if err != nil {
					failed++
				}
			default:
				drained = true
			}
		}
	}
	for ; inFlight > 0; inFlight-- {
		if err := <-results; err != nil {
			failed++
		}
	}
	if failed > 0 {
		return produced, fmt.Errorf("bench: direct load: %d of %d records not produced", failed, produced)
	}
	return produced, nil
}
