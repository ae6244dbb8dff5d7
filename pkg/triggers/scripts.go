package triggers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Marker states: the first byte of a marker's value.
const (
	stateUnconfirmed = "u" // emitted, not yet confirmed: Tick emits it again after its lease
	stateConfirmed   = "c" // emitted and confirmed
	stateLimited     = "s" // suppressed by the rule's every
	stateGaveUp      = "x" // never confirmed after MaxRedeliveries
)

// The scripts take the work of many users or sessions in one call: on a single server one call
// serves a whole batch; on a cluster each call carries the keys of one hash tag only. They are
// written to make few Redis calls, and to move little data through Lua: Redis's Lua hashes every
// byte of each string it makes, so events are built and stored outside it where they can be.
//
// A marker is a string: "c", "s" or "x", or, while unconfirmed, "u" and, each ended by US (\x1f),
// the lease's end (wall ms), the redeliveries so far, the external id and the contact id the
// claim resolved ("" when none), then the event JSON.
//
// A session has page state only while its current page is a pageview that started dwell rules
// still pending: a string, the pageview's action id, US, its event ms, then, each started by US,
// the pending rules. The session's first newer page event ends the page: the end (that event's
// ms) goes to a key of the pageview's own (endKey), which Tick reads, and the state is deleted,
// or replaced when that event is a pageview that starts rules itself. Each pending rule's event
// is a key of its own (waitKey), so that the state stays small.

// luaEvaluate does the Redis work of an evaluation in one call: it decides claims and follows
// sessions' pages (either part may be empty). On a cluster each call keeps to one hash tag: a
// user's claims, or one session.
//
// Claims: for each (rule, action), whether it emits: not when decided before (any marker), not
// when the user is known by an email hash only and no contact was remembered for it (the claim
// is not decided, so a later evaluation may emit once the contact is known), not when the rule's
// every holds (the limiter's last emission is closer than every in event time, either way);
// otherwise it records the emission in the limiter and stores the event in an unconfirmed marker
// with a lease, with the contact's ids when it resolved one. The marker is written with SET NX
// GET PX, which decides, records and expires in one call: a claim without every costs one call,
// one with every three (GET and SET PX of the limiter), a limited one two. A marker, its limiter
// and the contact share the user's tag. On a single server the call also lists the emissions in
// the unconfirmed set (one ZADD for all); on a cluster the caller listed every claim there
// beforehand.
//
// Pages: the caller sends every session with page events and stores the event of each dwell
// rule a pageview starts (waitKey) with plain commands ahead of the call. A session followed is
// read (one GET of its page state) and, when an event changed it, written (one SET PX, or a DEL),
// however many events it has. A page event at or after the pending page's time (not a repeat of
// it) ends the page: one SET PX of its end (endKey, which the script names: it learns the
// pageview from the state; the key has the session's hash tag). A pageview that starts dwell
// rules then opens a pending page of its own; other events change nothing, so a session without
// page state costs nothing more than being asked about, and the caller sends, for a session that
// starts no wait, only its earliest page event (the one that would end a pending page). An event
// older than the pending page, or a repeat of its pageview, changes nothing; out-of-order events
// are not looked for further (events of a session arrive in order, those of a batch sorted). Tick
// deletes the state once none of its rules is pending. On a single server the caller sends the
// sessions that start a wait to be followed, and asks about the others: one SMISMEMBER of the
// set of sessions with page state tells which of them have some, and only those are followed
// (their keys named by the script, from the session: a single server has no slots to keep to;
// the others cost the script nothing but their share of that call); the call keeps the set (SADD
// of the sessions whose state it created, SREM of those it deleted or found expired, one PEXPIRE
// when it wrote a state) and schedules the starts in the due set (one ZADD for all). On a
// cluster, where there is no set, each session is a call of its own that follows it, and the
// caller scheduled the starts beforehand.
//
// KEYS: per claim its marker, then its limiter when the rule has every, then its contact when it
// resolves one; then the page state of each session followed; then, on a single server, the
// unconfirmed set, the due set and the set of sessions with page state.
// ARGV: n_claims, n_followed, n_asked, lease_until_ms, marker_ttl_ms, page_ttl_ms, "1" when the
// last three keys are the sets; then per claim: every ms ("r" before it to resolve the user's
// contact), event ms, and the value of its unconfirmed marker (built by the caller, so that no
// event passes through Lua strings), or for a claim that resolves a contact the event JSON; then
// the page events of each session followed; then each session asked about, then the earliest
// page event of each, in the same order.
// A session's page events are "1" when one starts a dwell rule, else "0", the number of events,
// then per event in event-time order: action id, event ms, the number of dwell rules it starts,
// and per rule: rule, due ms, due-set member; an asked session's earliest event is the same with
// one event that starts nothing (five arguments). Separate arguments, not packed strings: Lua
// would spend several microseconds per session splitting them.
// Returns per claim: "fire" (resolved: "fire", US, external id, US, contact id), "limited",
// "unknown" or "dup:<state>"; then the page status: per session followed, then per session asked
// about, "1" when it has page state after the call, else "0" (the engine's pageIndex).
const luaEvaluate = `
local nc, nr, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, ttl, pttl = ARGV[4], ARGV[5], ARGV[6]
local uk, dk, pk = nil, nil, nil
if ARGV[7] == '1' then uk, dk, pk = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS] end
local out = {}
local listed = {}
local k, a = 1, 7
for i = 1, nc do
  local spec, t, ev = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 3
  local resolve = string.byte(spec, 1) == 114
  local every = tonumber(resolve and string.sub(spec, 2) or spec)
  local mk, lk, ck = KEYS[k], nil, nil
  k = k + 1
  if every > 0 then lk = KEYS[k]; k = k + 1 end
  if resolve then ck = KEYS[k]; k = k + 1 end
  local x, c = '', ''
  if resolve then
    local ct = redis.call('HMGET', ck, 'x', 'c')
    x, c = ct[1] or '', ct[2] or ''
  end
  if resolve and x == '' and c == '' then
    local old = redis.call('GET', mk)
    if old then out[i] = 'dup:' .. string.sub(old, 1, 1) else out[i] = 'unknown' end
  else
    local last = nil
    if lk then last = tonumber(redis.call('GET', lk)) end
    local limited = last ~= nil and math.abs(t - last) < every
    local val = 's'
    if not limited then
      val = ev
      if resolve then val = 'u\31' .. lease .. '\31' .. '0\31' .. x .. '\31' .. c .. '\31' .. ev end
    end
    local old = redis.call('SET', mk, val, 'NX', 'GET', 'PX', ttl)
    if old then
      out[i] = 'dup:' .. string.sub(old, 1, 1)
    elseif limited then
      out[i] = 'limited'
    else
      if lk and (last == nil or t > last) then redis.call('SET', lk, t, 'PX', 2 * every + 60000) end
      if resolve then out[i] = 'fire\31' .. x .. '\31' .. c else out[i] = 'fire' end
      listed[#listed + 1] = lease
      listed[#listed + 1] = mk
    end
  end
end
if uk and #listed > 0 then redis.call('ZADD', uk, unpack(listed)) end
if nr + na == 0 then
  out[nc + 1] = ''
  return out
end

local due, added, gone = {}, {}, {}
local wrote = false -- a state was written: the set's TTL is renewed
-- follow applies a session's page events, from ARGV[p] on, to its page state; named: the set of
-- sessions with page state named it. It returns whether the session has page state after, and
-- the index of the next session's events.
local function follow(key, p, named)
  local starts, n = ARGV[p] == '1', tonumber(ARGV[p + 1])
  p = p + 2
  local st = redis.call('GET', key)
  local cur, newest, rules = nil, nil, ''
  if st then
    local u1 = string.find(st, '\31', 1, true)
    local u2 = string.find(st, '\31', u1 + 1, true) or (#st + 1)
    cur, newest, rules = string.sub(st, 1, u1 - 1), tonumber(string.sub(st, u1 + 1, u2 - 1)), string.sub(st, u2)
  elseif named then
    gone[#gone + 1] = string.sub(key, 11, -7) -- its state expired
  end
  if not st and not starts then
    for i = 1, n do p = p + 3 + 3 * tonumber(ARGV[p + 2]) end
    return false, p
  end
  local opened = false
  for i = 1, n do
    local id, t, ns = ARGV[p], tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
    if id ~= cur and (newest == nil or t >= newest) then
      if cur then
        -- The pending page ends: its end is kept for Tick, its state goes.
        redis.call('SET', string.sub(key, 1, -5) .. 'e:' .. cur, t, 'PX', pttl)
        cur = nil
      end
      newest = t
      if ns > 0 then
        cur, rules, opened = id, '', true
        for j = p + 3, p + 3 * ns, 3 do
          rules = rules .. '\31' .. ARGV[j]
          if dk then
            due[#due + 1] = ARGV[j + 1]
            due[#due + 1] = ARGV[j + 2]
          end
        end
      end
    end
    p = p + 3 + 3 * ns
  end
  if cur and opened then
    redis.call('SET', key, cur .. '\31' .. newest .. rules, 'PX', pttl)
    wrote = true
    if pk and not st then added[#added + 1] = string.sub(key, 11, -7) end
  elseif st and not cur then
    redis.call('DEL', key)
    if pk then gone[#gone + 1] = string.sub(key, 11, -7) end
  end
  return cur ~= nil, p
end
-- status: per session, followed then asked, '1' when it has page state after the call
local status = {}
local p = a + 1
for s = 1, nr do
  local has
  has, p = follow(KEYS[k + s - 1], p, false)
  status[s] = has and '1' or '0'
end
if na > 0 then
  local named = redis.call('SMISMEMBER', pk, unpack(ARGV, p, p + na - 1))
  local q = p + na -- each asked session's earliest page event: five arguments
  for i = 1, na do
    status[nr + i] = '0'
    if named[i] == 1 and follow('tl:trg:{s:' .. ARGV[p + i - 1] .. '}:page', q, true) then
      status[nr + i] = '1'
    end
    q = q + 5
  end
end
out[nc + 1] = table.concat(status)
if pk then
  if #gone > 0 then redis.call('SREM', pk, unpack(gone)) end
  if #added > 0 then redis.call('SADD', pk, unpack(added)) end
  if wrote then redis.call('PEXPIRE', pk, pttl) end
end
if dk then
  for i = 1, #due, 1000 do redis.call('ZADD', dk, 'NX', unpack(due, i, math.min(i + 999, #due))) end
end
return out
`

// luaRecover handles entries of the unconfirmed set: a marker still unconfirmed after its lease
// is leased again and its event returned, unless it was emitted too often already.
//
// KEYS: markers. ARGV: now_ms, new_lease_ms, max_redeliveries.
// Returns per marker {"again", event, external id, contact id} (the ids of the contact the claim
// resolved, "" when none), {"leased", lease_ms}, {"gaveup", event} or {"done"}.
const luaRecover = `
local now, newlease, maxn = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local out = {}
for i, mk in ipairs(KEYS) do
  local v = redis.call('GET', mk)
  if not v or string.sub(v, 1, 1) ~= 'u' then
    out[i] = {'done'}
  else
    local f, pos = {}, 3
    for j = 1, 4 do
      local e = string.find(v, '\31', pos, true)
      if not e then break end
      f[j] = string.sub(v, pos, e - 1)
      pos = e + 1
    end
    local ev = string.sub(v, pos)
    local lease, n = tonumber(f[1]) or 0, (tonumber(f[2]) or 0) + 1
    if #f < 4 then
      redis.call('SET', mk, 'x', 'KEEPTTL')
      out[i] = {'gaveup', ''}
    elseif lease > now then
      out[i] = {'leased', f[1]}
    elseif n > maxn then
      redis.call('SET', mk, 'x', 'KEEPTTL')
      out[i] = {'gaveup', ev}
    else
      redis.call('SET', mk, 'u\31' .. newlease .. '\31' .. n .. '\31' .. f[3] .. '\31' .. f[4] .. '\31' .. ev, 'KEEPTTL')
      out[i] = {'again', ev, f[3], f[4]}
    end
  end
end
return out
`

// luaDecide gives the verdict on due dwell rules: "fire" when the page lasted past the rule's
// due time (it ended at or after it, or it is still the session's current page and the due time
// is at or before the cutoff), "left" when the page ended before, "wait" when it is neither yet,
// "gone" when the rule is no longer pending (its event is gone: decided already, or expired) or
// its page neither ended nor is current (its state expired, or its start was never applied). It
// changes nothing. A call costs one MGET of all its keys.
//
// KEYS: per session its page state, then per triple the end of its pageview (endKey) and the
// wait's event. ARGV: cutoff_ms, then per session: n and n triples of rule, pageview and due ms.
// Returns per triple, in order, {verdict, event JSON or ""}, and a third element "1" when its
// pageview is the session's current page.
const luaDecide = `
local cutoff = tonumber(ARGV[1])
local vals = {}
for i = 1, #KEYS, 1000 do
  local part = redis.call('MGET', unpack(KEYS, i, math.min(i + 999, #KEYS)))
  for j = 1, #part do vals[i + j - 1] = part[j] end
end
local a, k = 2, 1
local out = {}
while k <= #KEYS do
  local st = vals[k]
  k = k + 1
  local n = tonumber(ARGV[a])
  a = a + 1
  local cur = nil
  if st then cur = string.sub(st, 1, string.find(st, '\31', 1, true) - 1) end
  for i = 1, n do
    local pv, due = ARGV[a + 1], tonumber(ARGV[a + 2])
    a = a + 3
    local e, ev = vals[k], vals[k + 1]
    k = k + 2
    local verdict = 'gone'
    if not ev then
      verdict = 'gone'
    elseif e then
      if tonumber(e) >= due then verdict = 'fire' else verdict = 'left' end
    elseif due > cutoff then
      verdict = 'wait'
    elseif cur == pv then
      verdict = 'fire'
    end
    local r = {verdict, ''}
    if verdict == 'fire' then r[2] = ev end
    if cur == pv then r[3] = '1' end
    out[#out + 1] = r
  end
end
return out
`

// luaSettle takes decided dwell rules out of the page state of sessions whose current page is
// still their pageview, and deletes the state once none of its rules is pending (on a single
// server also from the set of sessions with page state). A session costs a GET and a SET KEEPTTL
// (or DEL). The events of the decided waits are deleted by the caller (UNLINK).
//
// KEYS: per session its page state; then, on a single server, the set of sessions with page
// state. ARGV: "1" when the last key is the set, then per session: n and n pairs of rule and
// pageview.
const luaSettle = `
local nk, pk = #KEYS, nil
if ARGV[1] == '1' then pk = KEYS[nk]; nk = nk - 1 end
local a = 2
local gone = {}
for k = 1, nk do
  local key = KEYS[k]
  local n = tonumber(ARGV[a])
  a = a + 1
  local st = redis.call('GET', key)
  local cur, rules = nil, nil
  if st then
    local u1 = string.find(st, '\31', 1, true)
    local u2 = string.find(st, '\31', u1 + 1, true) or (#st + 1)
    cur, rules = string.sub(st, 1, u1 - 1), string.sub(st, u2) .. '\31'
  end
  local changed = false
  for i = 1, n do
    if ARGV[a + 1] == cur then
      local mark = '\31' .. ARGV[a] .. '\31'
      local p = string.find(rules, mark, 1, true)
      if p then
        rules = string.sub(rules, 1, p) .. string.sub(rules, p + #mark)
        changed = true
      end
    end
    a = a + 2
  end
  if changed then
    if rules == '\31' then
      redis.call('DEL', key)
      if pk then gone[#gone + 1] = string.sub(key, 11, -7) end
    else
      local u1 = string.find(st, '\31', 1, true)
      local u2 = string.find(st, '\31', u1 + 1, true)
      redis.call('SET', key, string.sub(st, 1, u2 - 1) .. string.sub(rules, 1, -2), 'KEEPTTL')
    end
  end
end
if #gone > 0 then redis.call('SREM', pk, unpack(gone)) end
return 0
`

// scripts holds the compiled scripts of an Engine.
type scripts struct {
	evaluate, recover, decide, settle *redis.Script
}

func newScripts() scripts {
	return scripts{
		evaluate: redis.NewScript(luaEvaluate),
		recover:  redis.NewScript(luaRecover),
		decide:   redis.NewScript(luaDecide),
		settle:   redis.NewScript(luaSettle),
	}
}

// scriptCall is one script invocation of a round trip.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// roundTrip collects the commands and script calls of one pipelined round trip: a pipeline of
// the engine's own, or a caller's that also carries the caller's commands (Evaluation.Queue).
type roundTrip struct {
	pipe     redis.Pipeliner
	from     int           // how many commands the pipeline held before this round trip's
	cmds     []redis.Cmder // this round trip's commands, once queued (see sent)
	calls    []*scriptCall
	deferred deferred // the engine's deferred writes it carries, kept again when it fails
}

func (e *Engine) newRoundTrip() *roundTrip { return &roundTrip{pipe: e.rdb.Pipeline()} }

// roundTripOn starts a round trip in a caller's pipeline, after the commands it holds.
func roundTripOn(pipe redis.Pipeliner) *roundTrip {
	return &roundTrip{pipe: pipe, from: pipe.Len()}
}

// eval queues a script call (EVALSHA).
func (rt *roundTrip) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) *scriptCall {
	c := &scriptCall{script: s, keys: keys, args: args}
	rt.run(ctx, c)
	return c
}

// run queues a prepared script call (EVALSHA), replacing the command of an earlier queueing.
func (rt *roundTrip) run(ctx context.Context, c *scriptCall) {
	c.cmd = c.script.EvalSha(ctx, rt.pipe, c.keys, c.args...)
	rt.calls = append(rt.calls, c)
}

// sent records the commands queued since the round trip started, the ones complete checks;
// call it once everything is queued, before the pipeline is executed.
func (rt *roundTrip) sent() {
	rt.cmds = slices.Clone(rt.pipe.Cmds()[rt.from:])
}

// exec sends a round trip of the engine's own and completes it (see complete).
func (e *Engine) exec(ctx context.Context, rt *roundTrip, op string) error {
	if rt.pipe.Len() == 0 {
		return nil
	}
	rt.sent()
	_, _ = rt.pipe.Exec(ctx) // errors are read from each command
	return e.complete(ctx, rt, op)
}

// complete finishes a round trip once its pipeline was executed: it loads the scripts a server
// does not know yet (after a restart, a SCRIPT FLUSH or on a new cluster node) and runs those
// calls again in a round trip of its own, then returns the first error other than redis.Nil of
// the round trip's own commands (never of a caller's), wrapped with op. Calls that failed with
// NOSCRIPT never ran, so running them again is safe. On error the deferred writes the round trip
// carried are kept for the next one.
func (e *Engine) complete(ctx context.Context, rt *roundTrip, op string) error {
	err := e.rerunUnknownScripts(ctx, rt)
	if err == nil {
		err = firstError(rt)
	}
	if err != nil {
		e.metrics.redisErrors.WithLabelValues(op).Inc()
		e.keepDeferred(rt.deferred)
		return fmt.Errorf("triggers: %s: %w", op, err)
	}
	return nil
}

// rerunUnknownScripts loads the scripts of the calls that failed with NOSCRIPT and runs those
// calls again, in one round trip.
func (e *Engine) rerunUnknownScripts(ctx context.Context, rt *roundTrip) error {
	var retry []*scriptCall
	for _, c := range rt.calls {
		if isNoScript(c.cmd.Err()) {
			retry = append(retry, c)
		}
	}
	if len(retry) == 0 {
		return nil
	}
	loaded := map[*redis.Script]bool{}
	for _, c := range retry {
		if loaded[c.script] {
			continue
		}
		loaded[c.script] = true
		if err := c.script.Load(ctx, e.rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	again := e.rdb.Pipeline()
	for _, c := range retry {
		c.cmd = c.script.EvalSha(ctx, again, c.keys, c.args...)
	}
	_, _ = again.Exec(ctx)
	return nil
}

// firstError is the first error other than redis.Nil of the round trip's script calls, then of
// its other commands (the NOSCRIPT of a call run again aside).
func firstError(rt *roundTrip) error {
	for _, c := range rt.calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	for _, c := range rt.cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			return err
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || strings.HasPrefix(err.Error(), "NOSCRIPT"))
}
