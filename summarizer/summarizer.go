package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/summary"
)

// ErrBadThreshold is returned when the summary threshold is below 1.
var ErrBadThreshold = errors.New("summarizer: threshold must be at least 1")

// Errors returned by Validate.
var (
	ErrBadIdleAfter      = errors.New("summarizer: idle-after must be 0 (off) or at least 1s")
	ErrBadIdleMinActions = errors.New("summarizer: idle-min-actions must be at least 1")
)

// Config configures when summaries are made.
type Config struct {
	Threshold      int           // raw actions since the last summary that trigger a new one
	IdleAfter      time.Duration // a conversation whose notes stopped this long ago is summarized (0: off)
	IdleMinActions int           // the fewest unsummarized actions an idle conversation needs for a summary
	StateTTL       time.Duration // how long a conversation's summary state lives without activity
}

// RegisterFlags registers the summarizer's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Threshold, "summary.threshold", 20, "raw actions written since the last summary that trigger a new summary")
	fs.DurationVar(&c.IdleAfter, "summary.idle-after", 3*time.Minute, "summarize a conversation whose session went quiet this long ago (0 turns the idle trigger off)")
	fs.IntVar(&c.IdleMinActions, "summary.idle-min-actions", 5, "the fewest unsummarized actions an idle conversation needs for a summary")
	fs.DurationVar(&c.StateTTL, "summary.state-ttl", 7*24*time.Hour, "lifetime of a conversation's summary state after its last note")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Threshold < 1 {
		errs = append(errs, ErrBadThreshold)
	}
	if c.IdleAfter != 0 && c.IdleAfter < time.Second {
		errs = append(errs, ErrBadIdleAfter)
	}
	if c.IdleMinActions < 1 {
		errs = append(errs, ErrBadIdleMinActions)
	}
	return errors.Join(errs...)
}

// Producer is the part of a Kafka client the summarizer needs.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Summarizer counts the raw actions written into each conversation and, at the threshold, asks
// the notewriter to post one summary of the whole session so far and redact the notes it replaces.
//
// State per conversation lives in Redis under one hash tag: the lines not yet summarized (by line
// number, with the part that holds them), and the last summary (text, covered range, part id).
// A line at or below the covered range is ignored, so replaying notes.written makes no second
// summary; a summary id is its conversation and last covered line, so a repeat after a crash
// carries the same id and the notewriter executes it once. The same holds for a rebuild after Redis
// lost this state: replaying notes.written from the start makes every summary again, in the same
// order and under the same id, and the notewriter's delivery record (restored from notes.written
// before it executes anything) has those ids done.
//
// The idle trigger summarizes a conversation whose notes stopped arriving IdleAfter ago, below the
// threshold. Its timing is the wall clock's, so a replay would not repeat it on its own: instead the
// summary note it produced, when it comes by on notes.written, moves the covered range forward
// (adopt), and the replay goes on from the same place as the original run.
type Summarizer struct {
	cfg    Config
	rdb    redis.UniversalClient
	engine summary.Engine
	out    Producer
	topic  string
	log    *zap.Logger
	now    func() time.Time

	summaries prometheus.Counter
	ignored   prometheus.Counter
}

// NewSummarizer builds the summarizer.
func NewSummarizer(cfg Config, rdb redis.UniversalClient, engine summary.Engine, out Producer, summariesTopic string, log *zap.Logger, reg prometheus.Registerer) *Summarizer {
	s := &Summarizer{
		cfg: cfg, rdb: rdb, engine: engine, out: out, topic: summariesTopic, log: log, now: time.Now,
		summaries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "summarizer", Name: "summaries_total",
			Help: "Summaries requested from the notewriter.",
		}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "summarizer", Name: "replayed_lines_total",
			Help: "Note lines ignored because a summary already covers them (replays).",
		}),
	}
	reg.MustRegister(s.summaries, s.ignored)
	return s
}

type storedLine struct {
	Part   string          `json:"part"`
	Action messages.Action `json:"action"`
}

func linesKey(conv string) string   { return "tl:sum:{c:" + conv + "}:lines" }
func coveredKey(conv string) string { return "tl:sum:{c:" + conv + "}:covered" }

// maxCoveredActions bounds the actions kept to re-tell the session in the next summary.
const maxCoveredActions = 1000

func stateKey(conv string) string { return "tl:sum:{c:" + conv + "}:state" }

// idleKey orders conversations with unsummarized lines by when their last note arrived (Unix ms).
const idleKey = "tl:sum:idle"

// summaryID names the summary of a conversation's lines up to and including line to.
func summaryID(conv string, to int) string { return fmt.Sprintf("sum_%s_%d", conv, to) }

// summaryTo reads the last covered line back out of a summary id of conv.
func summaryTo(conv, id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "sum_"+conv+"_")
	if !ok {
		return 0, false
	}
	to, err := strconv.Atoi(rest)
	return to, err == nil && to > 0
}

// Handle processes notes.written records of one partition.
func (s *Summarizer) Handle(ctx context.Context, rec *kgo.Record) error {
	var n messages.NoteWritten
	if err := messages.Decode(rec.Value, &n); err != nil {
		return kafka.Permanent("decode", err)
	}
	if n.ConversationID == "" {
		return kafka.Permanent("invalid", errors.New("notes.written without conversation id"))
	}
	log := s.log.With(zap.String("conversation", n.ConversationID))
	switch n.Kind {
	case messages.NoteSummary:
		return s.rememberSummaryPart(ctx, n)
	case messages.NoteActions:
	default:
		return kafka.Permanent("invalid", fmt.Errorf("unknown note kind %q", n.Kind))
	}
	covered, err := s.coveredTo(ctx, n.ConversationID)
	if err != nil {
		return err
	}
	fields := make([]any, 0, 2*len(n.Lines))
	for _, l := range n.Lines {
		if l.Seq <= covered {
			s.ignored.Inc()
			continue
		}
		b, err := json.Marshal(storedLine{Part: n.PartID, Action: l.Action})
		if err != nil {
			return kafka.Permanent("invalid", err)
		}
		fields = append(fields, strconv.Itoa(l.Seq), b)
	}
	if len(fields) == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, linesKey(n.ConversationID), fields...)
	pipe.Expire(ctx, linesKey(n.ConversationID), s.cfg.StateTTL)
	pipe.HSet(ctx, stateKey(n.ConversationID), "workspace", n.WorkspaceID)
	pipe.Expire(ctx, stateKey(n.ConversationID), s.cfg.StateTTL)
	pending := pipe.HLen(ctx, linesKey(n.ConversationID))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("summarizer: store lines: %w", err)
	}
	if int(pending.Val()) < s.cfg.Threshold {
		if s.cfg.IdleAfter > 0 {
			if err := s.rdb.ZAdd(ctx, idleKey, redis.Z{Score: float64(s.now().UnixMilli()), Member: n.ConversationID}).Err(); err != nil {
				return fmt.Errorf("summarizer: mark activity: %w", err)
			}
		}
		return nil
	}
	return s.summarize(ctx, n.ConversationID, n.WorkspaceID, log)
}

// Run is the idle trigger: every so often it claims the conversations whose notes stopped
// IdleAfter ago and summarizes those with at least IdleMinActions unsummarized actions. A claim is
// the removal from the idle set, so one replica summarizes each quiet conversation.
func (s *Summarizer) Run(ctx context.Context) error {
	if s.cfg.IdleAfter <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(max(s.cfg.IdleAfter/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := s.SummarizeIdle(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("idle summaries", zap.Error(err))
		}
	}
}

// SummarizeIdle summarizes the conversations that went quiet; it is what Run does on each tick.
func (s *Summarizer) SummarizeIdle(ctx context.Context) error {
	quietSince := s.now().Add(-s.cfg.IdleAfter).UnixMilli()
	convs, err := s.rdb.ZRangeByScore(ctx, idleKey, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(quietSince, 10), Count: 100}).Result()
	if err != nil {
		return fmt.Errorf("summarizer: idle conversations: %w", err)
	}
	for _, conv := range convs {
		claimed, err := s.rdb.ZRem(ctx, idleKey, conv).Result()
		if err != nil {
			return fmt.Errorf("summarizer: claim idle conversation: %w", err)
		}
		if claimed == 0 {
			continue // another replica has it
		}
		pending, err := s.rdb.HLen(ctx, linesKey(conv)).Result()
		if err != nil {
			return fmt.Errorf("summarizer: idle lines: %w", err)
		}
		if int(pending) < s.cfg.IdleMinActions {
			continue
		}
		workspace, err := s.rdb.HGet(ctx, stateKey(conv), "workspace").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("summarizer: idle state: %w", err)
		}
		if err := s.summarize(ctx, conv, workspace, s.log.With(zap.String("conversation", conv), zap.String("trigger", "idle"))); err != nil {
			// Put it back so the next tick tries again.
			_ = s.rdb.ZAdd(ctx, idleKey, redis.Z{Score: float64(quietSince), Member: conv}).Err()
			return err
		}
	}
	return nil
}

func (s *Summarizer) coveredTo(ctx context.Context, conv string) (int, error) {
	v, err := s.rdb.HGet(ctx, stateKey(conv), "covered_to").Int()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("summarizer: read state: %w", err)
	}
	return v, nil
}

func (s *Summarizer) coveredActions(ctx context.Context, conv string) ([]messages.Action, error) {
	raw, err := s.rdb.LRange(ctx, coveredKey(conv), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("summarizer: read covered actions: %w", err)
	}
	out := make([]messages.Action, 0, len(raw))
	for _, r := range raw {
		var a messages.Action
		if err := json.Unmarshal([]byte(r), &a); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// rememberSummaryPart records the part that holds a posted summary, so the next summary replaces
// it, and adopts the summary's range when the state has not reached it yet (a replay of a summary
// the idle trigger made).
func (s *Summarizer) rememberSummaryPart(ctx context.Context, n messages.NoteWritten) error {
	conv := n.ConversationID
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, stateKey(conv), "summary_part:"+n.SummaryID, n.PartID)
	pipe.Expire(ctx, stateKey(conv), s.cfg.StateTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("summarizer: remember summary part: %w", err)
	}
	to, ok := summaryTo(conv, n.SummaryID)
	if !ok {
		return nil
	}
	covered, err := s.coveredTo(ctx, conv)
	if err != nil || covered >= to {
		return err
	}
	lines, err := s.pendingLines(ctx, conv)
	if err != nil {
		return err
	}
	var adopted []pendingLine
	for _, l := range lines {
		if l.seq <= to {
			adopted = append(adopted, l)
		}
	}
	state, err := s.rdb.HGetAll(ctx, stateKey(conv)).Result()
	if err != nil {
		return fmt.Errorf("summarizer: read state: %w", err)
	}
	count, _ := strconv.Atoi(state["action_count"])
	return s.advance(ctx, conv, adopted, to, fromSeq(state, adopted), "", n.SummaryID, count+len(adopted))
}

// pendingLine is an unsummarized note line.
type pendingLine struct {
	seq int
	storedLine
}

// pendingLines reads a conversation's unsummarized lines in line order.
func (s *Summarizer) pendingLines(ctx context.Context, conv string) ([]pendingLine, error) {
	raw, err := s.rdb.HGetAll(ctx, linesKey(conv)).Result()
	if err != nil {
		return nil, fmt.Errorf("summarizer: read lines: %w", err)
	}
	lines := make([]pendingLine, 0, len(raw))
	for k, v := range raw {
		seq, err := strconv.Atoi(k)
		if err != nil {
			continue
		}
		var sl storedLine
		if err := json.Unmarshal([]byte(v), &sl); err != nil {
			return nil, kafka.Permanent("invalid", fmt.Errorf("stored line %d: %w", seq, err))
		}
		lines = append(lines, pendingLine{seq, sl})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].seq < lines[j].seq })
	return lines, nil
}

// fromSeq is the first line the conversation's summaries cover.
func fromSeq(state map[string]string, lines []pendingLine) int {
	if v, err := strconv.Atoi(state["from_seq"]); err == nil && v > 0 {
		return v
	}
	if len(lines) > 0 {
		return lines[0].seq
	}
	return 1
}

// advance moves a conversation's state past the lines a summary covers: they leave the pending
// lines for the covered actions, which the next summary tells again.
func (s *Summarizer) advance(ctx context.Context, conv string, lines []pendingLine, to, from int, text, id string, count int) error {
	seqs := make([]string, len(lines))
	for i, l := range lines {
		seqs[i] = strconv.Itoa(l.seq)
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, stateKey(conv), "covered_to", to, "from_seq", from, "text", text, "summary_id", id, "action_count", count)
	pipe.Expire(ctx, stateKey(conv), s.cfg.StateTTL)
	if len(seqs) > 0 {
		pipe.HDel(ctx, linesKey(conv), seqs...)
	}
	for _, l := range lines {
		b, _ := json.Marshal(l.Action)
		pipe.RPush(ctx, coveredKey(conv), b)
	}
	pipe.LTrim(ctx, coveredKey(conv), -maxCoveredActions, -1)
	pipe.Expire(ctx, coveredKey(conv), s.cfg.StateTTL)
	pipe.ZRem(ctx, idleKey, conv)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("summarizer: advance state: %w", err)
	}
	return nil
}

func (s *Summarizer) summarize(ctx context.Context, conv, workspace string, log *zap.Logger) error {
	lines, err := s.pendingLines(ctx, conv)
	if err != nil || len(lines) == 0 {
		return err
	}
	state, err := s.rdb.HGetAll(ctx, stateKey(conv)).Result()
	if err != nil {
		return fmt.Errorf("summarizer: read state: %w", err)
	}
	actions := make([]messages.Action, len(lines))
	parts := map[string]bool{}
	for i, l := range lines {
		actions[i] = l.Action
		parts[l.Part] = true
	}
	replaces := make([]string, 0, len(parts)+1)
	for p := range parts {
		replaces = append(replaces, p)
	}
	// The previous summary is folded into this one, so its note is replaced too.
	if prevID := state["summary_id"]; prevID != "" {
		if p := state["summary_part:"+prevID]; p != "" {
			replaces = append(replaces, p)
		}
	}
	sort.Strings(replaces)

	covered, err := s.coveredActions(ctx, conv)
	if err != nil {
		return err
	}
	res, err := s.engine.Summarize(ctx, summary.Input{ConversationID: conv, Previous: state["text"], PreviousActions: covered, Actions: actions})
	if err != nil {
		return fmt.Errorf("summarizer: summarize: %w", err)
	}
	from, to := fromSeq(state, lines), lines[len(lines)-1].seq
	prevCount, _ := strconv.Atoi(state["action_count"])
	msg := messages.ConversationSummary{
		Version:        messages.Version,
		SummaryID:      summaryID(conv, to),
		ConversationID: conv,
		WorkspaceID:    workspace,
		Text:           res.Text,
		FromSeq:        from,
		ToSeq:          to,
		ActionCount:    prevCount + len(lines),
		ReplacesParts:  replaces,
		Engine:         res.Engine,
		CreatedAt:      s.now().UTC(),
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("summarizer: encode: %w", err)
	}
	if err := s.out.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(conv), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("summarizer: produce summary: %w", err)
	}
	// Only after the summary is on its topic does the state move past the lines it covers.
	if err := s.advance(ctx, conv, lines, to, from, res.Text, msg.SummaryID, msg.ActionCount); err != nil {
		return err
	}
	s.summaries.Inc()
	log.Info("summary requested", zap.String("summary_id", msg.SummaryID), zap.Int("from_seq", from),
		zap.Int("to_seq", to), zap.Int("replaces_parts", len(replaces)), zap.String("engine", res.Engine))
	return nil
}
