package triggers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Marker states (field "st" of a marker hash).
const (
	stateUnconfirmed = "u" // emitted, not yet confirmed: Tick emits it again after its lease
	stateConfirmed   = "c" // emitted and confirmed
	stateLimited     = "s" // suppressed by the rule's every
	stateGaveUp      = "x" // never confirmed after MaxRedeliveries
)

// The scripts take the work of many users or sessions in one call: on a single server one call
// serves a whole batch; on a cluster each call carries the keys of one hash tag only.

// luaEvaluate does the Redis work of an evaluation in one call: it decides claims and follows
// sessions' pages (either part may be empty). On a cluster each call keeps to one hash tag: a
// user's claims, or one session.
//
// Claims: for each (rule, action), whether it emits: not when decided before (any marker), not
// when the user is known by an email hash only and no contact was remembered for it (the claim
// is not decided, so a later evaluation may emit once the contact is known), not when the rule's
// every holds (the limiter's last emission is closer than every in event time, either way);
// otherwise it records the emission in the limiter and stores the event in an unconfirmed marker
// with a lease, with the contact's ids when it resolved one. A marker, its limiter and the
// contact share the user's tag. On a single server the call also lists each emission in the
// unconfirmed set; on a cluster the caller listed every claim there beforehand.
//
// KEYS: per claim, marker, limiter and contact; then per session its page hash; then, on a single
// server, the unconfirmed set and the due set.
// ARGV: n_claims, n_sessions, lease_until_ms, marker_ttl_ms, page_ttl_ms, "1" when the last two
// keys are the sets; then per claim: action id, event ms, every ms, "1" to resolve the user's
// contact, event JSON; then per session its page events (see the pages part below).
// Returns per claim: "fire" (resolved: "fire", US, external id, US, contact id), "limited",
// "unknown" or "dup:<state>".
//
// Pages: a session hash holds the current page ("cur": its pageview's action id, empty after a
// pageleave; "cur_t": the newest page event's ms; "cur_p": 1 when the current page has pending
// dwell rules), each pending dwell rule ("p|<rule>|<pageview>": due ms, "e|<rule>|<pageview>":
// the event JSON) and when a page with pending rules ended ("end|<pageview>": the earliest page
// event after it). A page event newer than cur_t ends the current page and, if a pageview, opens
// its own; an older one, or a repeat of the current pageview, changes nothing. Only a pageview
// that starts dwell rules creates a hash, and a hash with nothing pending is deleted, so most
// sessions have none: the sessions of a call that start nothing cost one EXISTS of them all. On a
// single server the call also schedules each start in the due set; on a cluster the caller
// scheduled them beforehand. A session's page events are one string: "1" when some event starts
// a dwell rule, else "0", then its page events in event-time order, each ended by RS (\x1e), with
// fields ended by US (\x1f): action id, event ms, "v" (pageview) or "l" (pageleave), then per rule
// it starts: rule, due ms, due-set member, event JSON. (Ids with control characters never get
// here; JSON escapes them.)
const luaEvaluate = `
local nc, ns = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, ttl, pttl = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local uk, dk = nil, nil
if ARGV[6] == '1' then uk, dk = KEYS[#KEYS - 1], KEYS[#KEYS] end
local out = {}
for i = 1, nc do
  local mk, lk, ck = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local a = 6 + (i - 1) * 5
  local aid, t, every, resolve, ev = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 4] == '1', ARGV[a + 5]
  local st = redis.call('HGET', mk, 'st')
  if st then
    out[i] = 'dup:' .. st
  else
    local x, c = '', ''
    if resolve then
      local ct = redis.call('HMGET', ck, 'x', 'c')
      x, c = ct[1] or '', ct[2] or ''
    end
    if resolve and x == '' and c == '' then
      out[i] = 'unknown'
    else
      local limited = false
      if every > 0 then
        local last = tonumber(redis.call('HGET', lk, 't'))
        if last and math.abs(t - last) < every then
          limited = true
        else
          if last == nil or t > last then redis.call('HSET', lk, 't', t, 'a', aid) end
          redis.call('PEXPIRE', lk, 2 * every + 60000)
        end
      end
      if limited then
        redis.call('HSET', mk, 'st', 's')
        out[i] = 'limited'
      else
        if resolve then
          redis.call('HSET', mk, 'st', 'u', 'lease', lease, 'n', 0, 'ev', ev, 'x', x, 'c', c)
          out[i] = 'fire\31' .. x .. '\31' .. c
        else
          redis.call('HSET', mk, 'st', 'u', 'lease', lease, 'n', 0, 'ev', ev)
          out[i] = 'fire'
        end
        if uk then redis.call('ZADD', uk, lease, mk) end
      end
      redis.call('PEXPIRE', mk, ttl)
    end
  end
end
if ns == 0 then return out end

local k0, a0 = 3 * nc, 6 + 5 * nc
local todo, others = {}, {}
for s = 1, ns do
  if string.byte(ARGV[a0 + s], 1) == 49 then todo[#todo + 1] = s else others[#others + 1] = KEYS[k0 + s] end
end
-- Sessions that start nothing matter only if they have page state, and usually none has.
if #others > 0 and redis.call('EXISTS', unpack(others)) > 0 then
  todo = {}
  for s = 1, ns do todo[s] = s end
end
for _, s in ipairs(todo) do
  local key, events = KEYS[k0 + s], ARGV[a0 + s]
  local cur = redis.call('HMGET', key, 'cur', 'cur_t', 'cur_p')
  local curid, curt, curp = cur[1] or '', tonumber(cur[2]), cur[3] == '1'
  if curt ~= nil or string.byte(events, 1) == 49 then
    local wrote = false
    for ev in string.gmatch(string.sub(events, 2), '([^\30]*)\30') do
      local f = {}
      for part in string.gmatch(ev, '([^\31]*)\31') do f[#f + 1] = part end
      local id, t, kind = f[1], tonumber(f[2]), f[3]
      if (curt ~= nil or #f > 3) and id ~= curid and (curt == nil or t >= curt) then
        if curid ~= '' and curp then
          local ek = 'end|' .. curid
          local e = tonumber(redis.call('HGET', key, ek))
          if e == nil or t < e then redis.call('HSET', key, ek, t) end
        end
        curp = false
        if kind == 'v' then curid = id else curid = '' end
        curt = t
        if kind == 'v' and #f > 3 then
          for j = 4, #f, 4 do
            redis.call('HSET', key, 'p|' .. f[j] .. '|' .. id, f[j + 1], 'e|' .. f[j] .. '|' .. id, f[j + 3])
            if dk then redis.call('ZADD', dk, 'NX', f[j + 1], f[j + 2]) end
          end
          curp = true
        end
        wrote = true
      end
    end
    if wrote then
      redis.call('HSET', key, 'cur', curid, 'cur_t', curt, 'cur_p', curp and '1' or '0')
      if not curp and redis.call('HLEN', key) <= 3 then
        redis.call('DEL', key) -- nothing pending: nothing to follow
      else
        redis.call('PEXPIRE', key, pttl)
      end
    end
  end
end
return out
`

// luaConfirm marks unconfirmed markers confirmed and drops their stored events, and, on a single
// server, removes them from the unconfirmed set (the last key).
//
// KEYS: markers, then on a single server the unconfirmed set. ARGV: "1" when the last key is the
// set. Returns how many it confirmed.
const luaConfirm = `
local nk = #KEYS
local uk = nil
if ARGV[1] == '1' then uk = KEYS[nk]; nk = nk - 1 end
local n = 0
for i = 1, nk do
  local mk = KEYS[i]
  if redis.call('HGET', mk, 'st') == 'u' then
    redis.call('HSET', mk, 'st', 'c')
    redis.call('HDEL', mk, 'ev', 'lease', 'n')
    n = n + 1
  end
  if uk then redis.call('ZREM', uk, mk) end
end
return n
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
  if redis.call('HGET', mk, 'st') ~= 'u' then
    out[i] = {'done'}
  else
    local lease = tonumber(redis.call('HGET', mk, 'lease')) or 0
    if lease > now then
      out[i] = {'leased', tostring(lease)}
    else
      local ev = redis.call('HGET', mk, 'ev') or ''
      if redis.call('HINCRBY', mk, 'n', 1) > maxn then
        redis.call('HSET', mk, 'st', 'x')
        redis.call('HDEL', mk, 'ev', 'lease')
        out[i] = {'gaveup', ev}
      else
        redis.call('HSET', mk, 'lease', newlease)
        local ids = redis.call('HMGET', mk, 'x', 'c')
        out[i] = {'again', ev, ids[1] or '', ids[2] or ''}
      end
    end
  end
end
return out
`

// luaDecide gives the verdict on due dwell rules: "fire" when the page lasted past the rule's
// due time (it ended at or after it, or it is still the session's current page and the due time
// is before the cutoff), "left" when the page ended before, "wait" when it is neither yet,
// "gone" when the rule is no longer pending. It changes nothing.
//
// KEYS: session hashes. ARGV: cutoff_ms, then per session: n and n pairs of rule and pageview.
// Returns per pair, in order, {verdict, event JSON or ""}.
const luaDecide = `
local cutoff = tonumber(ARGV[1])
local a = 2
local out = {}
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local cur = redis.call('HGET', key, 'cur') or ''
  for i = 1, n do
    local rule, pv = ARGV[a], ARGV[a + 1]
    a = a + 2
    local due = tonumber(redis.call('HGET', key, 'p|' .. rule .. '|' .. pv))
    local verdict = 'gone'
    if due ~= nil then
      local e = tonumber(redis.call('HGET', key, 'end|' .. pv))
      if e ~= nil then
        if e >= due then verdict = 'fire' else verdict = 'left' end
      elseif due > cutoff then
        verdict = 'wait'
      elseif cur == pv then
        verdict = 'fire'
      else
        verdict = 'left'
      end
    end
    local ev = ''
    if verdict == 'fire' then ev = redis.call('HGET', key, 'e|' .. rule .. '|' .. pv) or '' end
    out[#out + 1] = {verdict, ev}
  end
end
return out
`

// luaSettle removes decided dwell rules from sessions, the end time of pages with none pending
// left, and a session's hash once nothing is pending in it.
//
// KEYS: session hashes. ARGV: per session: n and n pairs of rule and pageview.
const luaSettle = `
local a = 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local pages = {}
  for i = 1, n do
    local rule, pv = ARGV[a], ARGV[a + 1]
    a = a + 2
    redis.call('HDEL', key, 'p|' .. rule .. '|' .. pv, 'e|' .. rule .. '|' .. pv)
    pages[pv] = true
  end
  local fields = redis.call('HKEYS', key)
  local cur = redis.call('HGET', key, 'cur')
  for pv in pairs(pages) do
    local left = false
    local suffix = '|' .. pv
    for _, f in ipairs(fields) do
      if string.sub(f, 1, 2) == 'p|' and string.sub(f, -#suffix) == suffix then
        left = true
        break
      end
    end
    if not left then
      redis.call('HDEL', key, 'end|' .. pv)
      if pv == cur then redis.call('HSET', key, 'cur_p', '0') end
    end
  end
  if redis.call('HGET', key, 'cur_p') ~= '1' and redis.call('HLEN', key) <= 3 then
    redis.call('DEL', key)
  end
end
return 0
`

// scripts holds the compiled scripts of an Engine.
type scripts struct {
	evaluate, confirm, recover, decide, settle *redis.Script
}

func newScripts() scripts {
	return scripts{
		evaluate: redis.NewScript(luaEvaluate),
		confirm:  redis.NewScript(luaConfirm),
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

// roundTrip collects the commands and script calls of one pipelined round trip.
type roundTrip struct {
	pipe  redis.Pipeliner
	calls []*scriptCall
}

func (e *Engine) newRoundTrip() *roundTrip { return &roundTrip{pipe: e.rdb.Pipeline()} }

// eval queues a script call (EVALSHA).
func (rt *roundTrip) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) *scriptCall {
	c := &scriptCall{script: s, keys: keys, args: args}
	c.cmd = s.EvalSha(ctx, rt.pipe, keys, args...)
	rt.calls = append(rt.calls, c)
	return c
}

// exec sends the round trip, loads the scripts a server does not know yet (after a restart or
// on a new cluster node) and runs those calls again, then returns the first error other than
// redis.Nil, wrapped with op. Calls that failed with NOSCRIPT never ran, so running them again
// is safe.
func (e *Engine) exec(ctx context.Context, rt *roundTrip, op string) error {
	if rt.pipe.Len() == 0 {
		return nil
	}
	cmds, _ := rt.pipe.Exec(ctx) // errors are read from each command
	var retry []*scriptCall
	for _, c := range rt.calls {
		if isNoScript(c.cmd.Err()) {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		loaded := map[*redis.Script]bool{}
		for _, c := range retry {
			if loaded[c.script] {
				continue
			}
			loaded[c.script] = true
			if err := c.script.Load(ctx, e.rdb).Err(); err != nil {
				e.metrics.redisErrors.WithLabelValues(op).Inc()
				return fmt.Errorf("triggers: %s: load script: %w", op, err)
			}
		}
		again := e.rdb.Pipeline()
		for _, c := range retry {
			c.cmd = c.script.EvalSha(ctx, again, c.keys, c.args...)
		}
		_, _ = again.Exec(ctx)
	}
	for _, c := range rt.calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			e.metrics.redisErrors.WithLabelValues(op).Inc()
			return fmt.Errorf("triggers: %s: %w", op, err)
		}
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			e.metrics.redisErrors.WithLabelValues(op).Inc()
			return fmt.Errorf("triggers: %s: %w", op, err)
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || strings.HasPrefix(err.Error(), "NOSCRIPT"))
}
