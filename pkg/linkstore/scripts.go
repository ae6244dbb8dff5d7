package linkstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaPrelude holds the helpers every session script shares. A link entry is the JSON
// {"v":version,"st":"open|closed|deleted|detached","cl":closed_ms,"act":activity_ms,"ws":workspace}
// plus, in a session's links hash, "r":1 once the session is registered on the conversation, and,
// in an identity's conversations hash, "pu":pending_until_ms while nobody claimed it and "upd".
const luaPrelude = `
local function jstr(s)
  if type(s) ~= 'string' then s = '' end
  return cjson.encode(s)
end

local function eligible(e, t, grace)
  if e.st == 'open' then return true end
  if e.st == 'closed' then return t <= (tonumber(e.cl) or 0) + grace end
  return false
end

-- targets lists the conversations that receive an action at event time t: the eligible one with
-- the latest activity (ties: smallest id), or every eligible one under all-open.
local function targets(links, order, t, grace, policy)
  local out = {}
  local best, bestact = nil, 0
  for _, c in ipairs(order) do
    local e = links[c]
    if eligible(e, t, grace) then
      if policy == 'all-open' then
        out[#out + 1] = c
      else
        local a = tonumber(e.act) or 0
        if best == nil or a > bestact then best, bestact = c, a end
      end
    end
  end
  if best ~= nil then out[1] = best end
  return out
end

-- store writes decisions, a flat list of (action id, decision), to the decisions hash kacts.
-- A small hash is a list that every lookup scans; once the hash holds more than 128 decisions a
-- field with a long value makes it a hash table for good.
local function store(kacts, hargs, ttl)
  if #hargs == 0 then return end
  for n = 1, #hargs, 1000 do
    redis.call('HSET', kacts, unpack(hargs, n, math.min(n + 999, #hargs)))
  end
  if redis.call('HLEN', kacts) > 128 then redis.call('HSETNX', kacts, '~', string.rep('~', 256)) end
  redis.call('PEXPIRE', kacts, ttl)
end

-- actionid is the action id of a buffered action's JSON, which starts with it.
local function actionid(j)
  return string.match(j, '^{"action_id":"([^"\\]*)"') or cjson.decode(j).action_id
end

-- drain deletes the buffer and returns its actions in event-time order, without those older than
-- the window before max(newest buffered, linkt), and how many it left out for age. Buffering
-- stores no decision, so drain stores 'b' (decided, output by this flush or dropped) under every
-- drained action's id in the decisions hash kacts, and returns the set of those ids.
local function drain(bufkey, kacts, ttl, linkt, window)
  local m = redis.call('ZRANGE', bufkey, 0, -1, 'WITHSCORES')
  if #m == 0 then return {}, 0, {} end
  redis.call('DEL', bufkey)
  local ref = tonumber(m[#m])
  if linkt > ref then ref = linkt end
  local keep, old, ids, hargs = {}, 0, {}, {}
  for n = 1, #m, 2 do
    if tonumber(m[n + 1]) >= ref - window then keep[#keep + 1] = m[n] else old = old + 1 end
    local id = actionid(m[n])
    if id then
      ids[id] = true
      hargs[#hargs + 1] = id
      hargs[#hargs + 1] = 'b'
    end
  end
  store(kacts, hargs, ttl)
  return keep, old, ids
end

local function batchjson(c, ws, keep)
  return '{"c":' .. jstr(c) .. ',"w":' .. jstr(ws) .. ',"a":[' .. table.concat(keep, ',') .. ']}'
end
`

// luaRoute is the "buffer or forward" decision for runs of sessions' actions of a poll batch,
// one session after the other: on Redis Cluster a call holds one session (its keys share the
// session's hash tag), on a single server it may hold many. For each session it decides
// everything before it writes anything: when an action must be buffered and its JSON was not
// sent (the caller expected the session to be linked), that session's reply is {-1} and nothing
// of it is written, and the caller sends it again with the JSON.
//
// Buffering is the path most actions of a backlog take, so it costs a few commands per session
// and call whatever the number of actions: one ZADD NX of them all, one trim by window and one
// by cap, one PEXPIRE. It stores no decision: a buffered action is its own record, the buffer
// member (the action's JSON, which starts with its id) that ZADD NX does not add twice, and the
// flush that drains it stores its decision. A session whose links hash is empty has never been
// flushed (a flush needs a link), so it has no decision worth reading either. The window is
// applied against the newest action of the call (and again, exactly, at the flush).
//
// KEYS, per session: links, buf, acts, ids.
// ARGV: window_ms, cap, buf_ttl_ms, session_ttl_ms, grace_ms, policy, nsess, then per session:
// ncand, (conv, entry)*, nids, (identity key)*, nact, (action id, event_ms, kind, action json or empty)*.
// Returns one reply per session: {buffered, dropped_window, dropped_cap, flushed, forwarded,
// {unregistered conv}*, {decision}* (one per action)}; {buffered, dropped_window, dropped_cap}
// when no action outputs anything and no link is unregistered; or {-1}.
const luaRoute = luaPrelude + `
local window, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local bufttl, ttl, grace, policy = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local empty = {}
local belowcap = tostring(-cap - 1)

-- route decides a session's actions: its conversation candidates are ARGV[c0 .. c0+2*ncand-1],
-- its identities ARGV[i0 .. i0+nids-1], its actions ARGV[a0 .. a0+4*nact-1].
local function route(klinks, kbuf, kacts, kids, c0, ncand, i0, nids, a0, nact)
  -- Decide, in memory.
  local links, order = {}, {}
  local raw = redis.call('HGETALL', klinks)
  for n = 1, #raw, 2 do
    links[raw[n]] = cjson.decode(raw[n + 1])
    order[#order + 1] = raw[n]
  end

  local dec = {}
  local first = nil
  local prev = empty
  if #order > 0 then
    local actids = {}
    for n = 1, nact do actids[n] = ARGV[a0 + 4 * n - 4] end
    prev = redis.call('HMGET', kacts, unpack(actids))
  end
  local seen = nil
  if nact > 1 then seen = {} end
  local decided = false
  for n = 1, nact do
    local id = ARGV[a0 + 4 * n - 4]
    if prev[n] then
      dec[n] = prev[n]
      decided = true
    elseif seen and seen[id] then
      dec[n] = ''
    else
      if seen then seen[id] = true end
      dec[n] = false
      if first == nil then first = n end
    end
  end

  local changed = empty
  if first ~= nil and ncand > 0 then
    changed = {}
    for m = 0, ncand - 1 do
      local c = ARGV[c0 + 2 * m]
      local e = cjson.decode(ARGV[c0 + 2 * m + 1])
      local old = links[c]
      if old == nil or tonumber(e.v) > tonumber(old.v) then
        e.pu = nil
        e.upd = nil
        if old == nil then order[#order + 1] = c else e.r = old.r end
        links[c] = e
        changed[#changed + 1] = c
      end
    end
  end
  if #order > 1 then table.sort(order) end

  local flushto = empty
  if #changed > 0 then flushto = targets(links, order, tonumber(ARGV[a0 + 4 * first - 3]), grace, policy) end
  -- Targets depend on event time only through closed conversations' grace.
  local timeless = true
  for _, c in ipairs(order) do
    if links[c].st == 'closed' then timeless = false end
  end
  local tgs = {}
  local fixed = nil
  if #order == 0 then fixed = empty elseif timeless then fixed = targets(links, order, 0, grace, policy) end
  for n = 1, nact do
    local a = a0 + 4 * n - 4
    if dec[n] == false and ARGV[a + 2] ~= 'i' then
      local tg = fixed
      if tg == nil then tg = targets(links, order, tonumber(ARGV[a + 1]), grace, policy) end
      if #tg == 0 and ARGV[a + 3] == '' then return {-1} end
      tgs[n] = tg
    end
  end

  -- Write.
  for _, c in ipairs(changed) do redis.call('HSET', klinks, c, cjson.encode(links[c])) end

  local dropw, dropc, flushed, forwarded, buffered = 0, 0, 0, 0, 0
  local pre = ''
  if #flushto > 0 then
    local keep, old, drained = drain(kbuf, kacts, ttl, tonumber(ARGV[a0 + 4 * first - 3]), window)
    dropw = dropw + old
    if #keep > 0 then
      local segs = {}
      for _, c in ipairs(flushto) do segs[#segs + 1] = batchjson(c, links[c].ws, keep) end
      pre = '"p":[' .. table.concat(segs, ',') .. ']'
      flushed = #keep * #flushto
    end
    -- A repeat of an action the flush drained was buffered before: it is output by the flush only.
    for n = 1, nact do
      if dec[n] == false and drained[ARGV[a0 + 4 * n - 4]] then tgs[n] = false end
    end
  end

  local fcache = nil
  local hargs = empty
  local zargs = nil
  local newest = nil
  for n = 1, nact do
    if dec[n] == false then
      local a = a0 + 4 * n - 4
      local tg = tgs[n]
      local body = ''
      local d
      if tg == false then
        d = 'b'
      elseif tg == nil then
        d = 'i'
      elseif #tg == 0 then
        local t = tonumber(ARGV[a + 1])
        if zargs == nil then zargs = {} end
        -- Strings, not numbers: Redis would format a number only to parse it again.
        zargs[#zargs + 1] = ARGV[a + 1]
        zargs[#zargs + 1] = ARGV[a + 3]
        if newest == nil or t > newest then newest = t end
        d = 'b'
      else
        if fcache == nil then fcache = {} end
        body = fcache[tg]
        if body == nil then
          local segs = {}
          for _, c in ipairs(tg) do segs[#segs + 1] = '[' .. jstr(c) .. ',' .. jstr(links[c].ws) .. ']' end
          body = '"f":[' .. table.concat(segs, ',') .. ']'
          fcache[tg] = body
          fcache[body] = '{' .. body .. '}'
        end
        forwarded = forwarded + #tg
        d = fcache[body]
      end
      if n == first and pre ~= '' then
        if body == '' then d = '{' .. pre .. '}' else d = '{' .. pre .. ',' .. body .. '}' end
      end
      dec[n] = d
      -- A buffered action's record is its buffer member (or the flush's record), an identify
      -- action outputs nothing whatever is decided: only decisions that output are stored.
      if d ~= 'b' and d ~= 'i' then
        if hargs == empty then hargs = {} end
        hargs[#hargs + 1] = ARGV[a]
        hargs[#hargs + 1] = d
      end
    end
  end

  store(kacts, hargs, ttl)
  if #order > 0 then redis.call('PEXPIRE', klinks, ttl) end
  if zargs ~= nil then
    for n = 1, #zargs, 1000 do
      buffered = buffered + redis.call('ZADD', kbuf, 'NX', unpack(zargs, n, math.min(n + 999, #zargs)))
    end
    dropw = dropw + redis.call('ZREMRANGEBYSCORE', kbuf, '-inf', string.format('(%.0f', newest - window))
    -- Everything below the newest cap (nothing while the buffer holds at most cap).
    dropc = redis.call('ZREMRANGEBYRANK', kbuf, '0', belowcap)
    redis.call('PEXPIRE', kbuf, bufttl)
  end
  if nids > 0 then
    redis.call('SADD', kids, unpack(ARGV, i0, i0 + nids - 1))
    redis.call('PEXPIRE', kids, ttl)
  end

  local unreg = {}
  for _, c in ipairs(order) do
    if not links[c].r then unreg[#unreg + 1] = c end
  end
  if not decided and flushed == 0 and forwarded == 0 and #unreg == 0 and hargs == empty then
    -- No action outputs anything: the short reply.
    return {buffered, dropw, dropc}
  end
  return {buffered, dropw, dropc, flushed, forwarded, unreg, dec}
end

local out = {}
local i, k = 8, 1
for s = 1, tonumber(ARGV[7]) do
  local ncand = tonumber(ARGV[i])
  local c0 = i + 1
  i = c0 + 2 * ncand
  local nids = tonumber(ARGV[i])
  local i0 = i + 1
  i = i0 + nids
  local nact = tonumber(ARGV[i])
  local a0 = i + 1
  i = a0 + 4 * nact
  out[s] = route(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], c0, ncand, i0, nids, a0, nact)
  k = k + 4
end
return out
`

// luaLink is the "link and flush" step for one session and one conversation (Apply), and the
// registration confirmation after RouteBatch linked a session itself.
//
// KEYS: links, buf, ids, flush result (the flush key names the event and conversation), acts of one session.
// ARGV: conv, entry (empty keeps the stored one), flush ('1' or '0'), link_ms, window_ms, session_ttl_ms, grace_ms.
// Returns {flushed batch json or empty, {identity key}*, dropped_window, flushed, new_link}.
const luaLink = luaPrelude + `
local c, ej, flush = ARGV[1], ARGV[2], ARGV[3] == '1'
local linkt, window, ttl, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
if flush then
  local done = redis.call('GET', KEYS[4])
  if done then return {done, redis.call('SMEMBERS', KEYS[3]), 0, 0, 0} end
end
local curj = redis.call('HGET', KEYS[1], c)
local cur = nil
if curj then cur = cjson.decode(curj) end
local e = cur
if ej ~= '' then
  local ne = cjson.decode(ej)
  if cur == nil or tonumber(ne.v) > tonumber(cur.v) then e = ne end
end
local isnew = 0
if e ~= nil then
  if cur == nil then isnew = 1 end
  if e ~= cur or not cur.r then
    e.pu = nil
    e.upd = nil
    e.r = 1
    redis.call('HSET', KEYS[1], c, cjson.encode(e))
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local out, old, n = '', 0, 0
if flush then
  if e ~= nil and eligible(e, linkt, grace) then
    local keep
    keep, old = drain(KEYS[2], KEYS[5], ttl, linkt, window)
    n = #keep
    if n > 0 then out = batchjson(c, e.ws, keep) end
  end
  redis.call('SET', KEYS[4], out, 'PX', ttl)
end
return {out, redis.call('SMEMBERS', KEYS[3]), old, n, isnew}
`

// luaIdentitySeen records that identities acted in sessions and returns each identity's open
// conversations (claiming pending ones), for RouteBatch. Like route, a call holds one identity
// on Redis Cluster and may hold many on a single server.
//
// KEYS, per identity: session, conversations. ARGV: now_ms, session_ttl_ms, then per identity:
// session id, event_ms.
// Returns, per identity, a flat list of (conv, entry).
const luaIdentitySeen = `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local function seen(ks, kc, sid, ts)
  local t = tonumber(ts)
  local cur = redis.call('HGET', ks, 't')
  if not cur or t >= tonumber(cur) then
    redis.call('HSET', ks, 's', sid, 't', ts)
  end
  redis.call('PEXPIRE', ks, ttl)
  local raw = redis.call('HGETALL', kc)
  local out = {}
  for n = 1, #raw, 2 do
    local c, e = raw[n], cjson.decode(raw[n + 1])
    local stale
    if e.pu then stale = tonumber(e.pu) < now
    elseif e.st == 'open' then stale = (tonumber(e.act) or 0) + ttl < now
    else stale = (tonumber(e.upd) or 0) + ttl < now end
    if stale then
      redis.call('HDEL', kc, c)
    elseif e.st == 'open' then
      local j = raw[n + 1]
      if e.pu then
        e.pu = nil
        j = cjson.encode(e)
        redis.call('HSET', kc, c, j)
      end
      out[#out + 1] = c
      out[#out + 1] = j
    end
  end
  return out
end
local out = {}
for n = 1, #KEYS / 2 do
  out[n] = seen(KEYS[2 * n - 1], KEYS[2 * n], ARGV[2 * n + 1], ARGV[2 * n + 2])
end
return out
`

// luaIdentityRegister registers a conversation's state with an identity and returns the identity's
// active session, for Apply. An open conversation with no active session becomes pending.
//
// KEYS: session, conversations of one identity. ARGV: conv, entry, now_ms, pending_ttl_ms, session_ttl_ms.
// Returns {active session or empty, 1 if the conversation became pending}.
const luaIdentityRegister = `
local c, now = ARGV[1], tonumber(ARGV[3])
local e = cjson.decode(ARGV[2])
local active = redis.call('HGET', KEYS[1], 's')
if not active then active = '' end
local curj = redis.call('HGET', KEYS[2], c)
local old = nil
if curj then old = cjson.decode(curj) end
local pending = 0
if old ~= nil and tonumber(old.v) >= tonumber(e.v) then
  if old.st == 'open' and old.pu and active ~= '' then
    old.pu = nil
    redis.call('HSET', KEYS[2], c, cjson.encode(old))
  end
else
  e.upd = now
  e.r = nil
  if e.st == 'open' then
    if active ~= '' then
      e.pu = nil
    elseif old == nil or old.pu or old.st ~= 'open' then
      e.pu = now + tonumber(ARGV[4])
      pending = 1
    end
  end
  redis.call('HSET', KEYS[2], c, cjson.encode(e))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {active, pending}
`

// luaConvSnapshot is shared by the conversation scripts: the conversation's link entry.
const luaConvSnapshot = `
local function snapshot(v, st, cl, act, ws)
  return cjson.encode({v = v, st = st, cl = cl, act = act, ws = ws})
end
`

// luaConvApply applies a conversation event to the conversation record once per event id.
//
// KEYS: record, sessions, identities, event of one conversation.
// ARGV: type, workspace, occurred_ms, now_ms, session_ttl_ms, nids, (identity key)*.
// Returns {entry, stored plan or empty, {session, contact}*, {identity key}*, 1 if already applied}.
const luaConvApply = luaConvSnapshot + `
local snap = redis.call('HGET', KEYS[4], 'snap')
if snap then
  return {snap, redis.call('HGET', KEYS[4], 'plan') or '', redis.call('HGETALL', KEYS[2]),
    redis.call('SMEMBERS', KEYS[3]), 1}
end
local typ, at, now, ttl = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local f = redis.call('HMGET', KEYS[1], 'v', 'st', 'cl', 'act', 'ws')
local v, st, cl, act, ws = tonumber(f[1]) or 0, f[2] or '', tonumber(f[3]) or 0, tonumber(f[4]) or 0, f[5] or ''
local nids = tonumber(ARGV[6])
local ids = {}
for n = 1, nids do ids[n] = ARGV[6 + n] end
if st ~= 'deleted' then
  if typ == 'created' or typ == 'replied' or typ == 'opened' then
    st = 'open'
    if at > act then act = at end
  elseif typ == 'closed' then
    st = 'closed'
    cl = at
  elseif typ == 'deleted' then
    st = 'deleted'
  elseif st == '' then
    st = 'open'
    if at > act then act = at end
  end
  if ARGV[2] ~= '' then ws = ARGV[2] end
  v = v + 1
  if now > v then v = now end
  redis.call('HSET', KEYS[1], 'v', v, 'st', st, 'cl', cl, 'act', act, 'ws', ws)
  if nids > 0 then
    if typ == 'contact_detached' then
      redis.call('SREM', KEYS[3], unpack(ids))
    else
      redis.call('SADD', KEYS[3], unpack(ids))
    end
  end
end
for n = 1, 3 do
  if redis.call('EXISTS', KEYS[n]) == 1 then redis.call('PEXPIRE', KEYS[n], ttl) end
end
snap = snapshot(v, st, cl, act, ws)
redis.call('HSET', KEYS[4], 'snap', snap)
redis.call('PEXPIRE', KEYS[4], ttl)
return {snap, '', redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3]), 0}
`

// luaConvPlan stores an event's plan unless one is stored, and returns the stored one.
//
// KEYS: event of one conversation. ARGV: plan json, session_ttl_ms.
const luaConvPlan = `
redis.call('HSETNX', KEYS[1], 'plan', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'plan')
`

// luaConvSessions records which sessions are linked to a conversation (and the identities that
// follow it) and returns the conversation's current entry.
//
// KEYS: record, sessions, identities of one conversation.
// ARGV: mode ('apply' overwrites, 'route' keeps), session_ttl_ms, nset, (session, contact)*,
// ndel, (session)*, nids, (identity key)*.
// Returns the entry, or empty when the conversation is unknown.
const luaConvSessions = luaConvSnapshot + `
local mode, ttl = ARGV[1], ARGV[2]
local i = 3
local nset = tonumber(ARGV[i]); i = i + 1
for n = 1, nset do
  if mode == 'apply' then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
local ndel = tonumber(ARGV[i]); i = i + 1
for n = 1, ndel do redis.call('HDEL', KEYS[2], ARGV[i]); i = i + 1 end
local nids = tonumber(ARGV[i]); i = i + 1
for n = 1, nids do redis.call('SADD', KEYS[3], ARGV[i]); i = i + 1 end
for n = 2, 3 do
  if redis.call('EXISTS', KEYS[n]) == 1 then redis.call('PEXPIRE', KEYS[n], ttl) end
end
local f = redis.call('HMGET', KEYS[1], 'v', 'st', 'cl', 'act', 'ws')
if not f[1] then return '' end
return snapshot(tonumber(f[1]), f[2], tonumber(f[3]) or 0, tonumber(f[4]) or 0, f[5] or '')
`

// luaSetOnce stores a value unless one is stored and returns the stored one.
//
// KEYS: one key. ARGV: value, ttl_ms.
const luaSetOnce = `
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`

// scripts holds the compiled scripts of a Store.
type scripts struct {
	route, link, identitySeen, identityRegister, convApply, convPlan, convSessions, setOnce *redis.Script
}

func newScripts() scripts {
	return scripts{
		route:            redis.NewScript(luaRoute),
		link:             redis.NewScript(luaLink),
		identitySeen:     redis.NewScript(luaIdentitySeen),
		identityRegister: redis.NewScript(luaIdentityRegister),
		convApply:        redis.NewScript(luaConvApply),
		convPlan:         redis.NewScript(luaConvPlan),
		convSessions:     redis.NewScript(luaConvSessions),
		setOnce:          redis.NewScript(luaSetOnce),
	}
}

// scriptCall is one script invocation of a pipelined round trip.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// Rider is Redis work of another component that goes in the pipeline of a RouteBatch round
// trip, which saves it a round trip of its own (on this machine a round trip costs the caller
// about as much CPU as routing a hundred actions). Queue is called just before the pipeline is
// sent, and again with a new pipeline if the store sends its round trip again; each call
// replaces what the previous one queued. The rider reads its own commands' replies after
// RouteBatch returns; the store reads only its own and never sees a rider's errors, except that
// a failed Queue fails the round trip before anything is sent.
type Rider interface {
	Queue(ctx context.Context, pipe redis.Pipeliner) error
}

// run executes calls, and the riders' commands, in one pipeline (EVALSHA), loads the scripts a
// server does not know yet (after a restart or on a new cluster node) and runs those calls
// again, then returns the first error of calls, wrapped with op. Calls that failed with NOSCRIPT
// never ran, so running them again is safe.
func (s *Store) run(ctx context.Context, op string, calls []*scriptCall, riders ...Rider) error {
	if len(calls) == 0 {
		return nil
	}
	if err := s.execPipelined(ctx, calls, riders); err != nil {
		return fmt.Errorf("linkstore: %s: %w", op, err)
	}
	var retry []*scriptCall
	for _, c := range calls {
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
			if err := c.script.Load(ctx, s.rdb).Err(); err != nil {
				s.redisFailed(op)
				return fmt.Errorf("linkstore: %s: load script: %w", op, err)
			}
		}
		_ = s.execPipelined(ctx, retry, nil) // without riders, nothing fails before sending
		for _, c := range retry {
			if isNoScript(c.cmd.Err()) {
				c.cmd = c.script.Run(ctx, s.rdb, c.keys, c.args...)
			}
		}
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			s.redisFailed(op)
			return fmt.Errorf("linkstore: %s: %w", op, err)
		}
	}
	return nil
}

// execPipelined sends calls and the riders' commands in one round trip. Errors of the calls are
// read from each; only a rider's failed Queue is returned.
func (s *Store) execPipelined(ctx context.Context, calls []*scriptCall, riders []Rider) error {
	if len(calls) == 1 && len(riders) == 0 {
		c := calls[0]
		c.cmd = c.script.EvalSha(ctx, s.rdb, c.keys, c.args...)
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	for _, r := range riders {
		if err := r.Queue(ctx, pipe); err != nil {
			return fmt.Errorf("rider: %w", err)
		}
	}
	_, _ = pipe.Exec(ctx)
	return nil
}

// redisFailed counts a failed round trip and forgets the hints: Redis may have lost its data.
func (s *Store) redisFailed(op string) {
	s.metrics.redisErrors.WithLabelValues(op).Inc()
	s.hints.reset()
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || strings.HasPrefix(err.Error(), "NOSCRIPT"))
}
