package triggers

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/redact"
)

// Keys shared by all sessions and users. They carry no hash tag: each is one key on one node.
const (
	// dueKey is the schedule of pending dwell rules: member ["session","pageview","rule"], score
	// the due time in event-time ms.
	dueKey = "tl:trg:due"
	// unconfirmedKey lists emitted events not yet confirmed: member the marker key, score the
	// lease's end in wall-clock ms.
	unconfirmedKey = "tl:trg:unconfirmed"
	// pagesKey is, on a single server, the set of sessions with page state, so that one call
	// tells which sessions of a batch need reading. A cluster has none.
	pagesKey = "tl:trg:pages"
)

// pageTTLMargin keeps a session's page state this long past its longest dwell and grace.
const pageTTLMargin = time.Hour

// sessionKey is where a session's page state is kept (a string: see scripts.go). luaEvaluate
// builds it from the session for the sessions it asks about, and takes the session back from it:
// the key's fixed prefix and suffix are 10 and 6 bytes long.
func sessionKey(session string) string { return "tl:trg:{s:" + session + "}:page" }

// endKey is where the end of a pageview that started dwell waits is kept (a string: the event
// time, in ms, of the session's first page event after it), for Tick to decide its waits; it
// expires with the page TTL. luaEvaluate, which learns the pageview from the page state, builds
// it from the session's key (sessionKey less "page").
func endKey(session, pageview string) string { return "tl:trg:{s:" + session + "}:e:" + pageview }

// waitKey is where the event of a pending dwell wait is kept until Tick decides it.
func waitKey(session, rule, pageview string) string {
	return "tl:trg:{s:" + session + "}:w:" + rule + ":" + pageview
}

// markerKey is where the decision about a (rule, action) is kept (a string: see scripts.go).
func markerKey(user, rule, actionID string) string {
	return "tl:trg:{u:" + user + "}:d:" + rule + ":" + actionID
}

// limiterKey is where the event time of a rule's last emission for a user is kept (every).
func limiterKey(user, rule string) string { return "tl:trg:{u:" + user + "}:t:" + rule }

// contactKey is where the contact of a user known by an email hash is remembered
// (RememberContact); only keys of "e:" users are ever written.
func contactKey(user string) string { return "tl:trg:{u:" + user + "}:ct" }

// User is who did an action, as Intercom knows them: what the linker learnt from the
// conversation it linked, or from the action's identity. All identifiers empty means anonymous:
// the engine skips (and counts) such users and never guesses one.
type User struct {
	UserID         string // the product's user id, which is the Intercom contact's external_id
	IntercomUserID string // the Intercom contact id (required by Intercom for leads)
	EmailHash      string // "h:" + hex sha256 of the email: alone, resolved to a remembered contact (RememberContact)
	WorkspaceID    string // the Intercom workspace, when Threadline serves several
}

// UserFromIdentity takes the identifiers an action itself carries. Ids that hold an '@' are
// left out: they would be personal data, and ingest hashes them.
func UserFromIdentity(id messages.Identity) User {
	return User{UserID: cleanID(id.UserID), IntercomUserID: cleanID(id.IntercomUserID), EmailHash: id.EmailHash}
}

// Anonymous reports whether the user has no identifier Intercom could know them by.
func (u User) Anonymous() bool { return u.key() == "" }

func (u User) key() string { return userKey(cleanID(u.UserID), cleanID(u.IntercomUserID), u.EmailHash) }

// emailUserPrefix starts the user key of a user known by an email hash only.
const emailUserPrefix = "e:"

// userKey names a user in Redis keys by their strongest identifier.
func userKey(userID, contactID, emailHash string) string {
	switch {
	case userID != "":
		return "x:" + userID
	case contactID != "":
		return "c:" + contactID
	case emailHash != "":
		return emailUserPrefix + emailHash
	}
	return ""
}

func eventUserKey(ev *messages.IntercomEvent) string {
	return userKey(ev.UserID, ev.IntercomUserID, ev.EmailHash)
}

// EventKey is the record key of an event on intercom.events: the identifier it names, user_id
// first, then intercom_user_id, then email_hash.
func EventKey(ev *messages.IntercomEvent) string {
	switch {
	case ev.UserID != "":
		return ev.UserID
	case ev.IntercomUserID != "":
		return ev.IntercomUserID
	}
	return ev.EmailHash
}

func cleanID(id string) string {
	if strings.Contains(id, "@") {
		return ""
	}
	return id
}

// Input is one action to evaluate and who did it.
type Input struct {
	Action *messages.ProductAction // the engine reads it, never changes it
	// User is who did the action; zero, the engine takes the identifiers the action carries
	// (UserFromIdentity), and only for an action a rule matches.
	User User
	// RawProperties, when Action.Properties is nil, are the action's properties as a JSON object
	// of strings (as ingest writes them on product.actions). The engine decodes them, at most
	// once, only when the action meets every other condition of a rule that reads properties
	// (property conditions or metadata). Undecodable, the action is evaluated as having none,
	// and counted.
	RawProperties []byte
}

// Engine evaluates trigger rules on product actions and follows pages for dwell rules, with
// its state in Redis so that any number of replicas share it. It is safe for concurrent use.
//
// Delivery: Evaluate, EvaluateBatch, Evaluation.Finish and Tick return each event once; the
// caller produces it and then calls Confirm or ConfirmLater. An event not confirmed within the
// claim lease (the produce failed, or the process died) is returned again by a later Tick, on any
// replica.
type Engine struct {
	rules      []compiledRule
	candidates map[string]*ruleIndex // PostHog event name → rules that may match it
	anyEvent   *ruleIndex            // rules with no event condition
	byName     map[string]int
	hasDwell   bool
	pageTTL    time.Duration
	cluster    bool // Redis Cluster: each script call keeps to one hash tag

	cfg     Config
	rdb     redis.UniversalClient
	log     *zap.Logger
	clock   func() time.Time
	metrics *metrics
	scripts scripts

	newest atomic.Int64 // newest action event time seen, Unix ms
	pages  *pageIndex   // the sessions known to have no page state

	deferredMu sync.Mutex
	deferred   deferred // writes for the engine's next round trip
}

type compiledRule struct {
	Rule
	everyMs         int64
	everySpec       string // everyMs in decimal, as luaEvaluate takes it
	readsProperties bool   // property conditions or metadata
	counters        ruleCounters
}

// Option adjusts an Engine.
type Option func(*Engine)

// WithConfig sets the engine's timings and limits (its zero fields take the defaults; File is
// not read).
func WithConfig(cfg Config) Option { return func(e *Engine) { e.cfg = cfg.withDefaults() } }

// WithClock sets the wall clock that times claim leases (time.Now by default).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.clock = now } }

// NewEngine builds an engine for rules on Redis. Metrics go to reg (nil: none).
func NewEngine(rules *Rules, rdb redis.UniversalClient, log *zap.Logger, reg prometheus.Registerer, opts ...Option) *Engine {
	if log == nil {
		log = zap.NewNop()
	}
	if rules == nil {
		rules = &Rules{}
	}
	e := &Engine{
		candidates: map[string]*ruleIndex{},
		byName:     map[string]int{},
		cfg:        DefaultConfig(),
		rdb:        rdb,
		log:        log,
		clock:      time.Now,
		metrics:    newMetrics(reg, log),
		scripts:    newScripts(),
		pages:      newPageIndex(),
	}
	for _, opt := range opts {
		opt(e)
	}
	_, e.cluster = rdb.(*redis.ClusterClient)
	var maxDwell time.Duration
	var anyEvent []int
	for i, r := range rules.Triggers {
		e.rules = append(e.rules, compiledRule{Rule: r, everyMs: r.Every.Milliseconds(),
			everySpec:       strconv.FormatInt(r.Every.Milliseconds(), 10),
			readsProperties: len(r.When.Properties) > 0 || len(r.Metadata) > 0,
			counters:        e.metrics.forRule(r.Name)})
		e.byName[r.Name] = i
		if len(r.When.Events) == 0 {
			anyEvent = append(anyEvent, i)
		}
		maxDwell = max(maxDwell, r.Dwell)
	}
	e.anyEvent = newRuleIndex(rules.Triggers, anyEvent)
	// Each event name gets its own rules merged, in file order, with those of any event.
	for _, r := range rules.Triggers {
		for _, ev := range r.When.Events {
			if _, done := e.candidates[ev]; done {
				continue
			}
			var list []int
			for j, other := range rules.Triggers {
				if len(other.When.Events) == 0 || slices.Contains(other.When.Events, ev) {
					list = append(list, j)
				}
			}
			e.candidates[ev] = newRuleIndex(rules.Triggers, list)
		}
	}
	e.hasDwell = maxDwell > 0
	e.pageTTL = maxDwell + e.cfg.DwellGrace + pageTTLMargin
	return e
}

// NewestEventTime is the newest event time of the actions evaluated so far (zero before any):
// a clock for Tick that follows the stream, for replays and catching up.
func (e *Engine) NewestEventTime() time.Time {
	ms := e.newest.Load()
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Evaluate evaluates one product action of a user; see EvaluateBatch.
func (e *Engine) Evaluate(ctx context.Context, pa messages.ProductAction, user User) ([]messages.IntercomEvent, error) {
	return e.EvaluateBatch(ctx, []Input{{Action: &pa, User: user}})
}

// EvaluateBatch evaluates actions (in the order of their partition) and returns the data events
// to emit, in input order. A rule emits at most once per action ever (a replay or a retry emits
// nothing again); with every, at most once per user in that period of event time, across
// replicas. Dwell rules emit nothing here: their pageview starts a wait that Tick decides.
// Anonymous users emit nothing and are counted; so does a user known by an email hash only
// unless RememberContact gave the hash a contact, whose ids the event then carries (resolved in
// the same script call that claims it). The Redis work of the batch is one round trip: none when
// Begin finds no Redis work, two on a cluster when the batch claims or starts anything. It is
// Begin and Finish: a caller with a round trip of its own to send uses those, and
// Evaluation.Queue, instead.
//
// On error nothing is lost: events already claimed are returned again by Tick after the lease.
func (e *Engine) EvaluateBatch(ctx context.Context, inputs []Input) ([]messages.IntercomEvent, error) {
	ev, err := e.Begin(ctx, inputs)
	if err != nil {
		return nil, err
	}
	return ev.Finish(ctx)
}

// match matches the actions against the rules in memory and returns the Redis work they need.
func (e *Engine) match(inputs []Input) batch {
	e.metrics.actions.Add(float64(len(inputs)))
	var b batch
	if e.hasDwell {
		b.pages = make([]pageEvent, 0, len(inputs)/2) // more than the share of page events in product traffic
	}
	var starts []pageStart
	var newest int64
	var decoded messages.ProductAction // the action whose raw properties were decoded
	for i := range inputs {
		pa := inputs[i].Action
		if ms := pa.Action.EventTime.UnixMilli(); ms > 0 {
			newest = max(newest, ms)
		}
		candidates := e.candidatesFor(pa.Action.Event, pa.Action.Kind)
		page := e.hasDwell && isPageEvent(pa.Action.Kind) && pa.Action.SessionID != ""
		if len(candidates) == 0 && !page {
			continue // most actions: nothing more to look at
		}
		ms, valid := eventMillis(pa)
		starts = starts[:0]
		undecoded := pa.Properties == nil && len(inputs[i].RawProperties) > 0
		for _, ri := range candidates {
			r := &e.rules[ri]
			if !r.When.matchesAction(pa) {
				continue
			}
			if undecoded && r.readsProperties {
				decoded = *pa
				decoded.Properties = e.decodeProperties(&inputs[i])
				pa, undecoded = &decoded, false
			}
			if !r.When.matchesProperties(pa.Properties) {
				continue
			}
			r.counters.matched.Inc()
			user := inputs[i].User
			if user == (User{}) {
				user = UserFromIdentity(pa.Identity)
			}
			if !valid || (r.Dwell > 0 && pa.Action.SessionID == "") {
				r.counters.skipped[skipInvalid].Inc()
				continue
			}
			if user.Anonymous() {
				r.counters.skipped[skipAnonymous].Inc()
				continue
			}
			ev := e.event(r, pa, user)
			if r.Dwell > 0 {
				starts = append(starts, pageStart{rule: r.Name, due: ms + r.Dwell.Milliseconds(), event: ev})
				continue
			}
			b.claims = append(b.claims, newClaim(r, ev, ms, i))
		}
		if page && valid {
			b.pages = append(b.pages, pageEvent{session: pa.Action.SessionID, id: pa.Action.ActionID, ms: ms, starts: slices.Clone(starts)})
		}
	}
	e.sawEventTime(newest)
	return b
}

// decodeProperties decodes an input's raw properties: nil, counted and logged, when they are not
// a JSON object of strings.
func (e *Engine) decodeProperties(in *Input) map[string]string {
	var props map[string]string
	if err := messages.Unmarshal(in.RawProperties, &props); err != nil {
		e.metrics.invalidProperties.Inc()
		e.log.Debug("triggers: action properties undecodable; evaluated as having none",
			zap.String("action_id", in.Action.Action.ActionID), zap.Error(err))
		return nil
	}
	return props
}

// sawEventTime raises the newest event time seen to ms.
func (e *Engine) sawEventTime(ms int64) {
	for {
		cur := e.newest.Load()
		if ms <= cur || e.newest.CompareAndSwap(cur, ms) {
			return
		}
	}
}

// Tick decides the dwell rules whose threshold passed by now, less the dwell grace: each fires
// when the user was still on the page at its threshold (no later pageview or pageleave seen, or
// the first one came after it), in event time. It then emits again the events left unconfirmed
// past their lease. Pass the wall clock when the consumer is caught up, so a dwell fires within
// the grace of its threshold while the user is still there; pass NewestEventTime (or the
// consumer's own event-time watermark) while it replays or catches up, so a page whose end is
// still in the backlog is not taken for one the user never left. Call it every second or so, on
// any number of replicas: each event is returned by one of them. Its first round trip carries
// the writes deferred to the engine's next one (ConfirmLater's among them).
//
// On error nothing is lost: what was claimed is returned again after the lease.
func (e *Engine) Tick(ctx context.Context, now time.Time) ([]messages.IntercomEvent, error) {
	wall := e.clock()
	cutoff := now.Add(-e.cfg.DwellGrace).UnixMilli()
	rt := e.newRoundTrip()
	e.carryDeferred(ctx, rt) // ahead of the read: a confirmed event is never emitted again
	var due *redis.ZSliceCmd
	if e.hasDwell {
		due = rt.pipe.ZRangeByScoreWithScores(ctx, dueKey, &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(cutoff, 10), Count: int64(e.cfg.TickBatch),
		})
	}
	unconfirmed := rt.pipe.ZRangeByScore(ctx, unconfirmedKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(wall.UnixMilli(), 10), Count: int64(e.cfg.TickBatch),
	})
	if err := e.exec(ctx, rt, "due"); err != nil {
		return nil, err
	}
	var out []messages.IntercomEvent
	if due != nil && len(due.Val()) > 0 {
		fired, err := e.tickDwell(ctx, cutoff, due.Val())
		if err != nil {
			return nil, err
		}
		out = fired
	}
	if len(unconfirmed.Val()) > 0 {
		again, err := e.redeliver(ctx, wall, unconfirmed.Val())
		if err != nil {
			return nil, err
		}
		out = append(out, again...)
	}
	return out, nil
}

// candidatesFor returns the rules that may match an action of this PostHog event and kind, in
// file order.
func (e *Engine) candidatesFor(event, kind string) []int {
	ix, ok := e.candidates[event]
	if !ok {
		ix = e.anyEvent
	}
	if k := kindID(kind); k >= 0 {
		return ix.byKind[k]
	}
	return ix.anyKind
}

// kinds are the action kinds (messages.Kind*) a rule may name, each indexed by kindID.
var kinds = [...]string{
	messages.KindPageview, messages.KindPageleave, messages.KindClick, messages.KindSubmit,
	messages.KindChange, messages.KindRageClick, messages.KindDeadClick, messages.KindError,
	messages.KindException, messages.KindIdentify, messages.KindCustom,
}

// kindID is the index of kind in kinds, -1 for another.
func kindID(kind string) int {
	switch kind {
	case messages.KindPageview:
		return 0
	case messages.KindPageleave:
		return 1
	case messages.KindClick:
		return 2
	case messages.KindSubmit:
		return 3
	case messages.KindChange:
		return 4
	case messages.KindRageClick:
		return 5
	case messages.KindDeadClick:
		return 6
	case messages.KindError:
		return 7
	case messages.KindException:
		return 8
	case messages.KindIdentify:
		return 9
	case messages.KindCustom:
		return 10
	}
	return -1
}

// ruleIndex splits the rules of one event by the action kinds they may match, so that an action
// is tried only against rules of its event and kind.
type ruleIndex struct {
	byKind  [len(kinds)][]int // by kindID: the rules for that kind, in file order
	anyKind []int             // the rules with no kind condition, for any other kind
}

func newRuleIndex(rules []Rule, list []int) *ruleIndex {
	ix := &ruleIndex{}
	for _, i := range list {
		if len(rules[i].When.Kinds) == 0 {
			ix.anyKind = append(ix.anyKind, i)
		}
	}
	for k, kind := range kinds {
		for _, i := range list {
			if len(rules[i].When.Kinds) == 0 || slices.Contains(rules[i].When.Kinds, kind) {
				ix.byKind[k] = append(ix.byKind[k], i)
			}
		}
	}
	return ix
}

// eventMillis is the action's event time in Unix ms, and whether the action can trigger at all:
// it needs an id, an event time Intercom accepts, and ids without control characters (the
// page state's encoding separates fields with them).
func eventMillis(pa *messages.ProductAction) (int64, bool) {
	t := pa.Action.EventTime
	if pa.Action.ActionID == "" || t.IsZero() || t.Unix() < 0 ||
		hasControl(pa.Action.ActionID) || hasControl(pa.Action.SessionID) {
		return 0, false
	}
	return t.UnixMilli(), true
}

// hasControl reports whether s holds an ASCII control character (no byte of a longer UTF-8
// sequence is one).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func isPageEvent(kind string) bool {
	return kind == messages.KindPageview || kind == messages.KindPageleave
}

// event builds the data event a rule emits for an action.
func (e *Engine) event(r *compiledRule, pa *messages.ProductAction, u User) messages.IntercomEvent {
	return messages.IntercomEvent{
		Version:        messages.Version,
		EventName:      r.Name,
		CreatedAt:      pa.Action.EventTime.Unix(),
		UserID:         cleanID(u.UserID),
		IntercomUserID: cleanID(u.IntercomUserID),
		EmailHash:      u.EmailHash,
		WorkspaceID:    u.WorkspaceID,
		Metadata:       e.metadata(r, pa),
		Rule:           r.Name,
		ActionID:       pa.Action.ActionID,
	}
}

// metadata copies the rule's properties from the action: string values cut to
// MaxMetadataValue characters, any value holding personal data left out (properties are
// redacted in ingest; this is the second line). nil when nothing is left.
func (e *Engine) metadata(r *compiledRule, pa *messages.ProductAction) map[string]any {
	var md map[string]any
	for _, f := range r.Metadata {
		v, ok := pa.Properties[f.Property]
		if !ok {
			r.counters.missingKey.Inc()
			continue
		}
		if found := redact.Find(v); len(found) > 0 {
			r.counters.personalData.Inc()
			e.log.Warn("triggers: metadata value holds personal data; left out",
				zap.String("rule", r.Name), zap.String("key", f.Key), zap.String("kind", found[0].Kind),
				zap.String("action_id", pa.Action.ActionID))
			continue
		}
		if md == nil {
			md = make(map[string]any, len(r.Metadata))
		}
		md[f.Key] = cutRunes(v, MaxMetadataValue)
	}
	return md
}

// cutRunes keeps the first n characters of s.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
