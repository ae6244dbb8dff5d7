// Package loadgen owns synthetic product traffic for load tests and benchmarks: many users, each
// playing the shared journey of pkg/demo with fresh ids at a configured total rate, produced to
// the raw PostHog topic as PostHog's capture would (capture output, keyed token:distinct_id), a
// share of whom open an Intercom conversation (a signed webhook to ingest) right after they
// identify.
package loadgen

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/demo"
)

// Producer is what the generator needs of a Kafka client (*kgo.Client is one).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Flush(ctx context.Context) error
}

// User is the person behind one session, as a conversation opener needs them.
type User struct {
	SessionID string
	AnonID    string
	UserID    string
	Email     string
	// URL is the page the user is on when they open the Messenger.
	URL string
}

// ConversationOpener opens a conversation for a user and delivers its webhook to ingest.
type ConversationOpener interface {
	OpenConversation(ctx context.Context, u User) (conversationID string, err error)
}

// Conversation is one conversation the generator opened.
type Conversation struct {
	ID        string
	SessionID string
	UserID    string
	OpenedAt  time.Time
}

// Stats is what a run did.
type Stats struct {
	Started, Finished time.Time
	// FirstEvent and LastEvent are the event times of the first and last event produced.
	FirstEvent, LastEvent time.Time
	Events                int // produced and acknowledged
	Bytes                 int64
	ProduceErrors         int
	Passes                int // journeys started
	Conversations         []Conversation
	OpenErrors            int
}

// EventsPerSecond is the produced rate over the run's wall time.
func (s Stats) EventsPerSecond() float64 {
	d := s.Finished.Sub(s.Started).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(s.Events) / d
}

// ErrProduce is returned by Run when records could not be produced.
var ErrProduce = errors.New("loadgen: produce failed")

// Generator plays the load of one Config.
type Generator struct {
	cfg      Config
	topic    string
	producer Producer
	opener   ConversationOpener
	log      *zap.Logger
	now      func() time.Time
	shape    journeyShape
	journey  *journeyTemplate
}

// journeyShape is what the generator knows of the recorded journey: its length, span, and whose
// distinct id each event carries (keys follow it, as PostHog's capture keys token:distinct_id).
type journeyShape struct {
	events      int
	span        time.Duration
	token       string
	identified  []bool // event i carries the identified user's id, not the anonymous one
	identifyURL string // the page the user is on when they identify
}

// New returns a generator producing to topic. opener may be nil when cfg.ConversationShare is 0.
func New(cfg Config, topic string, producer Producer, opener ConversationOpener, log *zap.Logger) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, errors.New("loadgen: no topic")
	}
	if opener == nil && cfg.ConversationShare > 0 {
		return nil, errors.New("loadgen: a conversation share needs a conversation opener")
	}
	if log == nil {
		log = zap.NewNop()
	}
	shape, err := readShape()
	if err != nil {
		return nil, err
	}
	tmpl, err := newJourneyTemplate()
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, topic: topic, producer: producer, opener: opener, log: log, now: time.Now, shape: shape, journey: tmpl}, nil
}

func readShape() (journeyShape, error) {
	rec, err := demo.Recorded()
	if err != nil {
		return journeyShape{}, fmt.Errorf("loadgen: %w", err)
	}
	n := len(rec.Events)
	if n < 2 || demo.IdentifyIndex >= n {
		return journeyShape{}, fmt.Errorf("loadgen: the recorded journey has %d events", n)
	}
	s := journeyShape{events: n, span: rec.Events[n-1].Time.Sub(rec.Events[0].Time), identified: make([]bool, n)}
	for i, ev := range rec.Events {
		var head struct {
			DistinctID string `json:"distinct_id"`
			Token      string `json:"token"`
			Data       string `json:"data"`
		}
		if err := json.Unmarshal(ev.Value, &head); err != nil {
			return journeyShape{}, fmt.Errorf("loadgen: journey event %d: %w", i, err)
		}
		s.token = head.Token
		switch head.DistinctID {
		case rec.UserID:
			s.identified[i] = true
		case rec.AnonID:
		default:
			return journeyShape{}, fmt.Errorf("loadgen: journey event %d has distinct id %q, neither the anonymous nor the user id", i, head.DistinctID)
		}
		if i == demo.IdentifyIndex {
			var data struct {
				Properties struct {
					URL string `json:"$current_url"`
				} `json:"properties"`
			}
			if err := json.Unmarshal([]byte(head.Data), &data); err == nil {
				s.identifyURL = data.Properties.URL
			}
		}
	}
	return s, nil
}

// Cycle is how long one pass of a session lasts, with the gap before the next pass, at the
// configured rate: every session produces EventsPerSecond/Sessions events a second.
func (g *Generator) Cycle() time.Duration {
	perSession := g.cfg.EventsPerSecond / float64(g.cfg.Sessions)
	return time.Duration(float64(g.shape.events) / perSession * float64(time.Second))
}

// speed is how much faster than recorded a pass is played so that it fits its cycle.
func (g *Generator) speed() float64 {
	recordedCycle := g.shape.span + g.shape.span/time.Duration(g.shape.events-1)
	return float64(recordedCycle) / float64(g.Cycle())
}

// session is one user's cursor through the schedule.
type session struct {
	index     int
	opens     bool
	pass      int
	passStart time.Time
	user      demo.Journey  // the ids (no events), made by the first pass
	journey   *demo.Journey // the current pass; nil until it is due
	next      int           // the next event of journey
}

func (s *session) due() time.Time {
	if s.journey == nil {
		return s.passStart
	}
	return s.journey.Events[s.next].Time
}

type schedule []*session

func (h schedule) Len() int           { return len(h) }
func (h schedule) Less(i, j int) bool { return h[i].due().Before(h[j].due()) }
func (h schedule) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *schedule) Push(x any)        { *h = append(*h, x.(*session)) }
func (h *schedule) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// Run plays the load until the schedule ends or ctx does, waits for every record and every
// conversation, and reports what it did. It fails when a record could not be produced; a
// conversation that could not be opened is counted and logged.
func (g *Generator) Run(ctx context.Context) (Stats, error) {
	start := g.now()
	stats := Stats{Started: start}
	var (
		produced, produceErrs atomic.Int64
		bytes                 atomic.Int64
		firstErr              atomic.Value
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			if produceErrs.Add(1) == 1 {
				firstErr.Store(err)
			}
			return
		}
		produced.Add(1)
		bytes.Add(int64(len(r.Value)))
	}

	opens := make(chan User, g.cfg.Sessions)
	var (
		mu            sync.Mutex
		conversations []Conversation
		openErrs      int
		workers       sync.WaitGroup
	)
	if g.opener != nil {
		for range g.cfg.OpenConcurrency {
			workers.Go(func() {
				for u := range opens {
					id, err := g.opener.OpenConversation(ctx, u)
					mu.Lock()
					if err != nil {
						openErrs++
						mu.Unlock()
						g.log.Warn("open conversation", zap.String("session", u.SessionID), zap.Error(err))
						continue
					}
					conversations = append(conversations, Conversation{ID: id, SessionID: u.SessionID, UserID: u.UserID, OpenedAt: g.now()})
					mu.Unlock()
				}
			})
		}
	}

	runErr := g.play(ctx, start, promise, opens, &stats)
	close(opens)
	workers.Wait()
	flushErr := g.producer.Flush(context.WithoutCancel(ctx))

	stats.Finished = g.now()
	stats.Events = int(produced.Load())
	stats.Bytes = bytes.Load()
	stats.ProduceErrors = int(produceErrs.Load())
	stats.Conversations = conversations
	stats.OpenErrors = openErrs
	if runErr != nil {
		return stats, runErr
	}
	if flushErr != nil {
		return stats, fmt.Errorf("loadgen: flush: %w", flushErr)
	}
	if stats.ProduceErrors > 0 {
		err, _ := firstErr.Load().(error)
		return stats, fmt.Errorf("%w: %d records, first: %w", ErrProduce, stats.ProduceErrors, err)
	}
	return stats, nil
}

// play walks the schedule in event-time order, producing each event (at its time unless
// unpaced) and asking for a conversation after an opening user identifies.
func (g *Generator) play(ctx context.Context, start time.Time, promise func(*kgo.Record, error), opens chan<- User, stats *Stats) error {
	cycle := g.Cycle()
	speed := g.speed()
	end := time.Time{}
	if g.cfg.Duration > 0 {
		end = start.Add(g.cfg.Duration)
	}
	h := make(schedule, 0, g.cfg.Sessions)
	for i := range g.cfg.Sessions {
		h = append(h, &session{
			index:     i,
			opens:     g.cfg.Opens(i),
			passStart: start.Add(time.Duration(int64(cycle) * int64(i) / int64(g.cfg.Sessions))),
		})
	}
	heap.Init(&h)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for h.Len() > 0 {
		s := h[0]
		at := s.due()
		if !end.IsZero() && !at.Before(end) {
			break // the heap is in time order: nothing later is due either
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !g.cfg.Unpaced {
			if wait := at.Sub(g.now()); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
			}
		}
		if s.journey == nil {
			j := g.pass(s, speed)
			s.journey, s.next = &j, 0
			stats.Passes++
		}
		ev := &s.journey.Events[s.next]
		key := s.journey.AnonID
		if g.shape.identified[s.next] {
			key = s.journey.UserID
		}
		g.producer.Produce(ctx, &kgo.Record{Topic: g.topic, Key: []byte(g.shape.token + ":" + key), Value: ev.Value}, promise)
		ev.Value = nil // the client owns the record now; the journey no longer needs it
		if stats.FirstEvent.IsZero() {
			stats.FirstEvent = ev.Time
		}
		stats.LastEvent = ev.Time
		if s.opens && s.pass == 0 && s.next == demo.IdentifyIndex {
			opens <- User{SessionID: s.journey.SessionID, AnonID: s.journey.AnonID, UserID: s.journey.UserID, Email: s.journey.Email, URL: g.shape.identifyURL}
		}
		s.next++
		if s.next < len(s.journey.Events) {
			heap.Fix(&h, 0)
			continue
		}
		// The pass is over: the next one starts a cycle after this one, if any is left.
		s.pass++
		if g.cfg.Passes > 0 && s.pass >= g.cfg.Passes {
			heap.Pop(&h)
			continue
		}
		s.passStart = s.passStart.Add(cycle)
		s.journey = nil
		heap.Fix(&h, 0)
	}
	return nil
}

// pass builds session s's next journey: a fresh user and session for its first, the same
// user and session with new event ids after.
func (g *Generator) pass(s *session, speed float64) demo.Journey {
	if s.pass == 0 {
		s.user = freshUser(s.passStart)
	}
	return g.journey.render(s.user, s.passStart, speed)
}
