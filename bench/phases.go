package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/threadline/threadline/pkg/loadgen"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
	"github.com/threadline/threadline/pkg/stack"
)

// backlogRate sets the event times of the backlog (it is produced as fast as the broker takes
// it): fast enough that the whole backlog happened within a few seconds, well inside the
// linker's pre-conversation buffer window.
const backlogRate = 20000

// runThroughput is the backlog phase. With every service ready, ingest and the linker are
// stopped; the backlog is produced; ingest starts and drains it alone (timed); the
// conversations of the backlog's openers are opened; the linker starts and drains
// product.actions alone (timed); then the notewriter and summarizer finish.
func (s *system) runThroughput(ctx context.Context, res *Results) error {
	t := &res.Throughput
	t.Sessions = s.cfg.ThroughputSessions
	for _, name := range []string{"linker", "ingest"} {
		if err := s.stop(name); err != nil {
			return fmt.Errorf("bench: stop %s: %w", name, err)
		}
	}
	calls0, notes0 := s.calls(), s.notes.len()

	openers := &recordingOpener{}
	gen, err := loadgen.New(loadgen.Config{
		Sessions: s.cfg.ThroughputSessions, EventsPerSecond: backlogRate, Unpaced: true,
		ConversationShare: s.cfg.ThroughputShare, Passes: 1, OpenConcurrency: 1,
	}, s.topics.PosthogRaw, s.producer, openers, s.log)
	if err != nil {
		return err
	}
	s.progress("producing a backlog of %d journeys", s.cfg.ThroughputSessions)
	stats, err := gen.Run(ctx)
	if err != nil {
		return err
	}
	if stats.Events == 0 {
		return errNoLoad
	}
	t.Events, t.Bytes, t.ProduceRate = stats.Events, stats.Bytes, stats.EventsPerSecond()
	s.progress("backlog: %d events, %.1f MB, produced at %.0f events/s", t.Events, float64(t.Bytes)/1e6, t.ProduceRate)

	// ingest alone against the backlog
	if err := s.start("ingest"); err != nil {
		return err
	}
	wait := s.profileCPU(ctx, "ingest", "backlog", s.cfg.ProfileSeconds)
	t.Ingest, err = s.drain(ctx, "ingest", s.topics.PosthogRaw, t.Events)
	if err != nil {
		return err
	}
	s.progress("ingest drained %d events at %.0f events/s (%.0f per CPU-second)", t.Events, t.Ingest.Rate(), t.Ingest.PerCPUSecond())
	if err := s.collectProfiles(ctx, res, wait, "ingest", "backlog"); err != nil {
		return err
	}
	if err := s.waitReady(ctx, "ingest"); err != nil {
		return err
	}

	// the backlog's openers open their conversations: webhooks to ingest, to conversation.events
	opener := loadgen.NewFakeOpener(s.fake, s.ingest+webhookPath)
	convs, err := openAll(ctx, opener, openers.users, 8)
	if err != nil {
		return err
	}
	t.Conversations = len(convs)
	actions, err := s.endOffsets(ctx, s.topics.ProductActions)
	if err != nil {
		return err
	}
	t.Actions = int(actions)

	// the linker alone against product.actions
	if err := s.start("linker"); err != nil {
		return err
	}
	wait = s.profileCPU(ctx, "linker", "backlog", s.cfg.ProfileSeconds)
	t.Linker, err = s.drain(ctx, "linker", s.topics.ProductActions, t.Actions)
	if err != nil {
		return err
	}
	s.progress("linker drained %d actions at %.0f actions/s (%.0f per CPU-second)", t.Actions, t.Linker.Rate(), t.Linker.PerCPUSecond())
	if err := s.collectProfiles(ctx, res, wait, "linker", "backlog"); err != nil {
		return err
	}
	// Only now, so that its decoding does not share the machine with the timed drains: it reads
	// from the start and has caught up once the pipeline settles.
	if s.stages, err = watchStages(ctx, s.brokers, s.topics.ProductActions, s.topics.ConversationActions); err != nil {
		return err
	}

	t.SettleDuration, _, err = s.settle(ctx, s.quiet())
	if err != nil {
		return err
	}
	for _, n := range s.notes.since(notes0) {
		if n.Kind == messages.NoteActions && convs[n.ConversationID] {
			t.Lines += len(n.Lines)
		}
	}
	t.NoteCalls = sumCalls(diffCalls(s.calls(), calls0), notewriterEndpoints())
	s.progress("the backlog's %d conversations got %d action lines in %d notewriter calls", t.Conversations, t.Lines, t.NoteCalls)
	return nil
}

// quiet is how long the fake Intercom must see no call before the pipeline counts as settled:
// longer than the longest coalescing wait of the runs.
func (s *system) quiet() time.Duration {
	longest := notes.DefaultConfig().MaxWait
	for _, c := range append(slices.Clone(s.cfg.Coalescing), s.cfg.Direct...) {
		if co, err := ParseCoalescing(c); err == nil {
			longest = max(longest, co.MaxWait)
		}
	}
	return longest + 2*time.Second
}

// openAll opens a conversation for every user, concurrency at a time, and returns their ids.
func openAll(ctx context.Context, opener loadgen.ConversationOpener, users []loadgen.User, concurrency int) (map[string]bool, error) {
	var (
		mu    sync.Mutex
		ids   = map[string]bool{}
		first error
		wg    sync.WaitGroup
		queue = make(chan loadgen.User)
	)
	for range concurrency {
		wg.Go(func() {
			for u := range queue {
				id, err := opener.OpenConversation(ctx, u)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					ids[id] = true
				}
				mu.Unlock()
			}
		})
	}
	for _, u := range users {
		queue <- u
	}
	close(queue)
	wg.Wait()
	if first != nil {
		return ids, fmt.Errorf("bench: open conversations: %w", first)
	}
	return ids, nil
}

// runLatency plays the target load, paced, under one coalescing setting of the notewriter,
// and measures event time → note stored for every line of a live note.
func (s *system) runLatency(ctx context.Context, res *Results, co Coalescing, profile bool) (LatencyRow, error) {
	row := LatencyRow{Coalescing: co, Sessions: s.cfg.LatencySessions, Rate: s.cfg.LatencyRate, Duration: s.cfg.LatencyDuration}
	if co.Count > 0 {
		row.Sessions, row.Rate = co.Count, co.Rate
	}
	if co.Debounce == 0 && co.MaxWait == 0 {
		d := notes.DefaultConfig()
		row.Coalescing.Debounce, row.Coalescing.MaxWait = d.Debounce, d.MaxWait
	}
	if err := s.configureNotewriter(ctx, co); err != nil {
		return row, err
	}
	notes0, activity := s.notes.len(), s.watchNotewriter(ctx)

	var waits []func() (Profile, error)
	if profile {
		seconds := min(int(s.cfg.LatencyDuration/time.Second), 4*s.cfg.ProfileSeconds)
		for _, name := range []string{"notewriter", "summarizer"} {
			if w := s.profileCPU(ctx, name, "paced", seconds); w != nil {
				waits = append(waits, w)
			}
		}
	}
	gen, err := loadgen.New(loadgen.Config{
		Sessions: row.Sessions, EventsPerSecond: row.Rate,
		ConversationShare: s.cfg.LatencyShare, Duration: s.cfg.LatencyDuration, OpenConcurrency: 8,
	}, s.topics.PosthogRaw, s.producer, loadgen.NewFakeOpener(s.fake, s.ingest+webhookPath), s.log)
	if err != nil {
		return row, err
	}
	s.progress("latency row %q: %d sessions at %.0f events/s for %s", co.Name, row.Sessions, row.Rate, row.Duration)
	cpu0, loadStart := s.cpu(), time.Now()
	stats, err := gen.Run(ctx)
	if err != nil {
		return row, err
	}
	row.CPU, row.LoadAvg = map[string]time.Duration{}, loadAverage()
	for name, d := range s.cpu() {
		if before, ok := cpu0[name]; ok {
			row.CPU[name] = d - before
		}
	}
	if stats.Events == 0 {
		return row, errNoLoad
	}
	if stats.OpenErrors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("latency row %q: %d conversations could not be opened", co.Name, stats.OpenErrors))
	}
	row.Events, row.Conversations = stats.Events, len(stats.Conversations)
	for _, w := range waits {
		p, err := w()
		if err != nil {
			return row, err
		}
		res.Profiles = append(res.Profiles, p)
	}
	if profile && s.cfg.Profile {
		for _, name := range []string{"notewriter", "summarizer"} {
			p, err := s.profileAllocs(ctx, name, "paced")
			if err != nil {
				return row, err
			}
			res.Profiles = append(res.Profiles, p)
		}
	}
	if row.NotewriterActivity, err = activity(loadStart); err != nil {
		return row, err
	}

	convs := map[string]bool{}
	for _, c := range stats.Conversations {
		convs[c.ID] = true
	}
	row.Stages = map[string][]time.Duration{}
	stored := map[string]time.Time{} // part id → when the fake stored it
	for id := range convs {
		for _, p := range s.fake.Notes(id) {
			stored[p.ID] = p.CreatedAt
		}
	}
	for _, n := range s.notes.since(notes0) {
		if !convs[n.ConversationID] {
			continue
		}
		if n.Kind == messages.NoteSummary {
			row.Summaries++
			continue
		}
		row.Notes++
		row.Lines += len(n.Lines)
		at, ok := stored[n.PartID]
		if n.PreConversation || !ok {
			continue
		}
		for _, l := range n.Lines {
			row.Latencies = append(row.Latencies, at.Sub(l.Action.EventTime))
			if ingested, linked, ok := s.stages.times(l.Action.ActionID); ok {
				row.Stages[StageIngest] = append(row.Stages[StageIngest], ingested.Sub(l.Action.EventTime))
				row.Stages[StageLinker] = append(row.Stages[StageLinker], linked.Sub(ingested))
				row.Stages[StageNotewriter] = append(row.Stages[StageNotewriter], at.Sub(linked))
			}
		}
	}
	row.LiveLines = len(row.Latencies)
	s.progress("latency row %q: %d lines in %d notes, %d notewriter calls (%.3f per action), p50 %s p95 %s p99 %s",
		co.Name, row.Lines, row.Notes, row.NoteCalls, row.CallsPerAction(),
		row.Percentile(50).Round(time.Millisecond), row.Percentile(95).Round(time.Millisecond), row.Percentile(99).Round(time.Millisecond))
	for _, st := range StageOrder() {
		ds := row.Stages[st]
		s.progress("  %s: p50 %s p99 %s", st, Percentile(ds, 50).Round(time.Millisecond), Percentile(ds, 99).Round(time.Millisecond))
	}
	return row, nil
}

// configureNotewriter restarts the notewriter with the setting co, unless it runs with it.
func (s *system) configureNotewriter(ctx context.Context, co Coalescing) error {
	if slices.Equal(co.Env(), s.noteEnv) && s.running["notewriter"] {
		return nil
	}
	if s.running["notewriter"] {
		if err := s.stop("notewriter"); err != nil {
			return fmt.Errorf("bench: stop notewriter: %w", err)
		}
	}
	if err := s.start("notewriter", co.Env()...); err != nil {
		return err
	}
	if err := s.waitReady(ctx, "notewriter"); err != nil {
		return err
	}
	s.noteEnv = co.Env()
	return nil
}

// Notewriter metrics a latency row reports, as deltas over the row.
const (
	NotewriterBudgetWaits       = "threadline_notes_rate_budget_waits_total"
	NotewriterBudgetWaitSeconds = "threadline_notes_rate_budget_wait_seconds_total"
	NotewriterFlushErrors       = "threadline_notes_flush_errors_total"
	NotewriterHandleSeconds     = "threadline_consumer_handle_seconds_sum"
	NotewriterHandleCalls       = "threadline_consumer_handle_seconds_count"
)

// notewriterInternals reads the notewriter's counters a row reports (absent ones as zero).
func (s *system) notewriterInternals(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	for _, m := range []string{NotewriterBudgetWaits, NotewriterBudgetWaitSeconds, NotewriterFlushErrors, NotewriterHandleSeconds, NotewriterHandleCalls} {
		v, err := Scrape(ctx, s.admins["notewriter"], m, nil)
		if err == nil {
			out[m] = v
		}
	}
	return out
}

// collectProfiles waits for a CPU profile and takes the allocation profile of service.
func (s *system) collectProfiles(ctx context.Context, res *Results, wait func() (Profile, error), service, stage string) error {
	if wait == nil {
		return nil
	}
	p, err := wait()
	if err != nil {
		return err
	}
	res.Profiles = append(res.Profiles, p)
	a, err := s.profileAllocs(ctx, service, stage)
	if err != nil {
		return err
	}
	res.Profiles = append(res.Profiles, a)
	return nil
}

// startAll starts the four services and waits until they are ready (the topics exist then).
func (s *system) startAll(ctx context.Context) error {
	for _, name := range stack.Services {
		if err := s.start(name); err != nil {
			return err
		}
	}
	return s.waitReady(ctx, stack.Services...)
}

// watchNotewriter notes the notewriter's Intercom calls, 429s and counters now; the function it
// returns waits for the pipeline to settle and gives what the notewriter did since, with the time
// from loadStart to its last activity.
func (s *system) watchNotewriter(ctx context.Context) func(loadStart time.Time) (NotewriterActivity, error) {
	calls0, limited0, internals0 := s.calls(), s.fake.RateLimited(), s.notewriterInternals(ctx)
	return func(loadStart time.Time) (NotewriterActivity, error) {
		var a NotewriterActivity
		settle, lastActivity, err := s.settle(ctx, s.quiet())
		if err != nil {
			return a, err
		}
		a.Settle, a.Active = settle, lastActivity.Sub(loadStart)
		a.Notewriter = map[string]float64{}
		for k, v := range s.notewriterInternals(ctx) {
			a.Notewriter[k] = v - internals0[k]
		}
		a.Calls = diffCalls(s.calls(), calls0)
		a.NoteCalls = sumCalls(a.Calls, notewriterEndpoints())
		a.RateLimited = s.fake.RateLimited() - limited0
		return a, nil
	}
}
