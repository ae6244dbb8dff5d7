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

-- drain deletes the buffer and returns its actions in event-time order, without those older than
-- the window before max(newest buffered, linkt), and how many it left out for age.
local function drain(bufkey, linkt, window)
  local m = redis.call('ZRANGE', bufkey, 0, -1, 'WITHSCORES')
  if #m == 0 then return {}, 0 end
  redis.call('DEL', bufkey)
  local ref = tonumber(m[#m])
  if linkt > ref then ref = linkt end
  local keep, old = {}, 0
  for n = 1, #m, 2 do
    if tonumber(m[n + 1]) >= ref - window then keep[#keep + 1] = m[n] else old = old + 1 end
  end
  return keep, old
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
// A session's decisions are one hash. Redis stores a small hash as a list that each lookup scans
// from end to end (up to hash-max-listpack-entries, 512 by default, fields), which would make a
// long session's every action dearer; once it holds more than 128 decisions the script adds a
// field with a value longer than hash-max-listpack-value (64 bytes by default), which turns it
// into a hash table for good.
//
// KEYS, per session: links, buf, acts, ids.
// ARGV: window_ms, cap, buf_ttl_ms, session_ttl_ms, grace_ms, policy, nsess, then per session:
// ncand, (conv, entry)*, nids, (identity key)*, nact, (action id, event_ms, kind, action json or empty)*.
// Returns one reply per session: {buffered, dropped_window, dropped_cap, flushed, forwarded,
// {unregistered conv}*, {decision}* (one per action)}, or {-1}.
const luaRoute = luaPrelude + `
local window, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local bufttl, ttl, grace, policy = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local tablemark = string.rep('~', 256)

local function route(klinks, kbuf, kacts, kids, cands, ids, acts, actids)
  local nact = #acts
  -- Decide, in memory.
  local dec = {}
  local first = nil
  local prev = redis.call('HMGET', kacts, unpack(actids))
  local seen = {}
  for n = 1, nact do
    local id = actids[n]
    if prev[n] then
      dec[n] = prev[n]
    elseif seen[id] then
      dec[n] = ''
    else
      seen[id] = true
      dec[n] = false
      if first == nil then first = n end
    end
  end

  local links, order = {}, {}
  local raw = redis.call('HGETALL', klinks)
  for n = 1, #raw, 2 do
    links[raw[n]] = cjson.decode(raw[n + 1])
    order[#order + 1] = raw[n]
  end

  local changed = {}
  if first ~= nil then
    for _, cd in ipairs(cands) do
      local c = cd[1]
      local e = cjson.decode(cd[2])
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
  table.sort(order)

  local flushto = {}
  if #changed > 0 then flushto = targets(links, order, acts[first][1], grace, policy) end
  -- Targets depend on event time only through closed conversations' grace.
  local timeless = true
  for _, c in ipairs(order) do
    if links[c].st == 'closed' then timeless = false end
  end
  local tgs = {}
  local fixed = nil
  if #order == 0 then fixed = {} elseif timeless then fixed = targets(links, order, 0, grace, policy) end
  for n = 1, nact do
    if dec[n] == false and acts[n][2] ~= 'i' then
      local tg = fixed
      if tg == nil then tg = targets(links, order, acts[n][1], grace, policy) end
      if #tg == 0 and acts[n][3] == '' then return {-1} end
      tgs[n] = tg
    end
  end

  -- Write.
  for _, c in ipairs(changed) do redis.call('HSET', klinks, c, cjson.encode(links[c])) end

  local dropw, dropc, flushed, forwarded, buffered = 0, 0, 0, 0, 0
  local pre = ''
  if #flushto > 0 then
    local keep, old = drain(kbuf, acts[first][1], window)
    dropw = dropw + old
    if #keep > 0 then
      local segs = {}
      for _, c in ipairs(flushto) do segs[#segs + 1] = batchjson(c, links[c].ws, keep) end
      pre = '"p":[' .. table.concat(segs, ',') .. ']'
      flushed = #keep * #flushto
    end
  end

  local fcache = {}
  local hargs = {}
  for n = 1, nact do
    if dec[n] == false then
      local a = acts[n]
      local tg = tgs[n]
      local body = ''
      local d
      if tg == nil then
        d = 'i'
      elseif #tg == 0 then
        redis.call('ZADD', kbuf, a[1], a[3])
        buffered = buffered + 1
        d = 'b'
      else
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
      hargs[#hargs + 1] = actids[n]
      hargs[#hargs + 1] = d
    end
  end

  if #hargs > 0 then
    redis.call('HSET', kacts, unpack(hargs))
    -- A small hash is a list that every lookup scans; a long value makes it a hash table.
    if redis.call('HLEN', kacts) > 128 then redis.call('HSETNX', kacts, '~', tablemark) end
    redis.call('PEXPIRE', kacts, ttl)
  end

  if #order > 0 then redis.call('PEXPIRE', klinks, ttl) end
  if buffered > 0 then
    local top = redis.call('ZRANGE', kbuf, -1, -1, 'WITHSCORES')
    local ref = tonumber(top[2])
    dropw = dropw + redis.call('ZREMRANGEBYSCORE', kbuf, '-inf', string.format('(%.0f', ref - window))
    -- Everything below the newest cap (nothing while the buffer holds at most cap).
    dropc = redis.call('ZREMRANGEBYRANK', kbuf, 0, -cap - 1)
    redis.call('PEXPIRE', kbuf, bufttl)
  end
  if #ids > 0 then
    redis.call('SADD', kids, unpack(ids))
    redis.call('PEXPIRE', kids, ttl)
  end

  local unreg = {}
  for _, c in ipairs(order) do
    if not links[c].r then unreg[#unreg + 1] = c end
  end
  return {buffered, dropw, dropc, flushed, forwarded, unreg, dec}
end

local out = {}
local i, k = 8, 1
for s = 1, tonumber(ARGV[7]) do
  local klinks, kbuf, kacts, kids = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  k = k + 4
  local cands, ids, acts, actids = {}, {}, {}, {}
  local ncand = tonumber(ARGV[i]); i = i + 1
  for n = 1, ncand do cands[n] = {ARGV[i], ARGV[i + 1]}; i = i + 2 end
  local nids = tonumber(ARGV[i]); i = i + 1
  for n = 1, nids do ids[n] = ARGV[i]; i = i + 1 end
  local nact = tonumber(ARGV[i]); i = i + 1
  for n = 1, nact do
    actids[n] = ARGV[i]
    acts[n] = {tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]}
    i = i + 4
  end
  out[s] = route(klinks, kbuf, kacts, kids, cands, ids, acts, actids)
end
return out
`

// luaLink is the "link and flush" step for one session and one conversation (Apply), and the
// registration confirmation after RouteBatch linked a session itself.
//
// KEYS: links, buf, ids, flush result of one session (the flush key names the event and conversation).
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
    keep, old = drain(KEYS[2], linkt, window)
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

// run executes calls in one pipeline (EVALSHA), loads the scripts a server does not know yet
// (after a restart or on a new cluster node) and runs those calls again, then returns the first
// error, wrapped with op. Calls that failed with NOSCRIPT never ran, so running them again is safe.
func (s *Store) run(ctx context.Context, op string, calls []*scriptCall) error {
	if len(calls) == 0 {
		return nil
	}
	s.execPipelined(ctx, calls)
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
		s.execPipelined(ctx, retry)
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

func (s *Store) execPipelined(ctx context.Context, calls []*scriptCall) {
	if len(calls) == 1 {
		c := calls[0]
		c.cmd = c.script.EvalSha(ctx, s.rdb, c.keys, c.args...)
		return
	}
	pipe := s.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	// Errors are read from each command.
	_, _ = pipe.Exec(ctx)
}

// redisFailed counts a failed round trip and forgets the hints: Redis may have lost its data.
func (s *Store) redisFailed(op string) {
	s.metrics.redisErrors.WithLabelValues(op).Inc()
	s.hints.reset()
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || strings.HasPrefix(err.Error(), "NOSCRIPT"))
}
