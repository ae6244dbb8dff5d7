package notes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
)

// Redis layout. Every key of a conversation, and the due set that schedules it, share one hash tag,
// {tlnNN}, where NN is the conversation's shard: multi-key scripts stay atomic and Redis Cluster safe,
// and the flusher scans shardCount due sets. shardCount is part of the stored layout: changing it
// orphans scheduled conversations.
const (
	keyPrefix  = "threadline:notes:"
	shardCount = 16
)

// convKeys names the Redis keys of one conversation.
type convKeys struct {
	id       string
	shard    int
	due      string // sorted set of the shard: conversation id → when its next note is due (unix ms)
	accepted string // set of action ids ever accepted for the conversation (pending or delivered)
	pending  string // list of pendingItem JSON, oldest first
	meta     string // hash: seq (last line number written), first/last (arrival unix ms of the
	//                 oldest/newest pending action), retry_at, fails
	inflight string // inflight JSON: the note being posted
	lease    string // token of the replica flushing the conversation
	gone     string // set when Intercom said the conversation no longer exists
}

func shardOf(conversationID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(conversationID))
	return int(h.Sum32() % shardCount)
}

func shardTag(shard int) string { return fmt.Sprintf("{tln%02d}", shard) }

func dueKey(shard int) string { return keyPrefix + shardTag(shard) + ":due" }

func keysFor(conversationID string) convKeys {
	s := shardOf(conversationID)
	base := keyPrefix + shardTag(s) + ":c:" + conversationID + ":"
	return convKeys{
		id:       conversationID,
		shard:    s,
		due:      dueKey(s),
		accepted: base + "accepted",
		pending:  base + "pending",
		meta:     base + "meta",
		inflight: base + "inflight",
		lease:    base + "lease",
		gone:     base + "gone",
	}
}

func (k convKeys) summaryJob(summaryID string) string {
	return keyPrefix + shardTag(k.shard) + ":c:" + k.id + ":summary:" + summaryID
}

func (k convKeys) summaryLock(summaryID string) string { return k.summaryJob(summaryID) + ":lock" }

// Global keys: the shared rate budget (redis_rate adds its own "rate:" prefix) and the pause every
// replica honours after Intercom said to slow down.
const (
	rateKey  = keyPrefix + "intercom"
	pauseKey = keyPrefix + "intercom:pause"
)

// pendingItem is one action waiting for its note.
type pendingItem struct {
	PreConversation bool            `json:"pre,omitempty"`
	WorkspaceID     string          `json:"ws,omitempty"`
	Action          messages.Action `json:"a"`
}

// Phases of an in-flight note.
const (
	phasePosting = "posting" // about to be posted, or posted with no answer yet
	phasePosted  = "posted"  // Intercom stored it and the bookkeeping is done; notes.written is next
)

// inflight is the note a conversation is writing, persisted before the POST so a crash or a lease
// takeover can finish it: look for Ref in the conversation before posting again.
type inflight struct {
	Ref             string              `json:"ref"`
	Phase           string              `json:"phase"`
	MaybePosted     bool                `json:"maybe_posted"` // a POST may have reached Intercom
	WorkspaceID     string              `json:"ws,omitempty"`
	PreConversation bool                `json:"pre,omitempty"`
	Lines           []messages.NoteLine `json:"lines"`
	HTML            string              `json:"html"`
	PartID          string              `json:"part_id,omitempty"`
	WrittenAt       time.Time           `json:"written_at,omitzero"`

	raw string // the JSON as stored, for compare-and-set
}

func (f *inflight) toSeq() int { return f.Lines[len(f.Lines)-1].Seq }

func (f *inflight) encode() (string, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("encode in-flight note: %w", err)
	}
	return string(b), nil
}

// convState is what the flusher reads of a conversation it holds the lease on.
type convState struct {
	inflight *inflight
	pending  []pendingItem // the head of the pending list
	seq      int
	first    int64 // unix ms; 0 when nothing is pending
	last     int64
	retryAt  int64
}

// dueAt is when the pending actions should be written: the debounce after the last arrival, but no
// later than MaxWait after the first, and not before a backoff.
func (s convState) dueAt(cfg Config) time.Time {
	at := min(s.first+cfg.MaxWait.Milliseconds(), s.last+cfg.Debounce.Milliseconds())
	at = max(at, s.retryAt)
	return time.UnixMilli(at)
}

// loadState checks and extends the lease and reads the conversation in one round trip.
func loadState(ctx context.Context, rdb redis.UniversalClient, k convKeys, token string, leaseTTL time.Duration, head int) (convState, error) {
	var st convState
	res, err := loadScript.Run(ctx, rdb, []string{k.lease, k.inflight, k.meta, k.pending},
		token, leaseTTL.Milliseconds(), head).Result()
	if err != nil {
		return st, fmt.Errorf("load conversation %s: %w", k.id, err)
	}
	parts, ok := res.([]any)
	if !ok || len(parts) != 3 {
		return st, notSent(fmt.Errorf("load conversation %s: %w", k.id, errLeaseLost))
	}
	if raw, _ := parts[0].(string); raw != "" {
		var f inflight
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			return st, fmt.Errorf("decode in-flight note of conversation %s: %w", k.id, err)
		}
		if len(f.Lines) == 0 {
			return st, fmt.Errorf("in-flight note of conversation %s has no lines", k.id)
		}
		f.raw = raw
		st.inflight = &f
	}
	meta := map[string]string{}
	flat, _ := parts[1].([]any)
	for i := 0; i+1 < len(flat); i += 2 {
		key, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		meta[key] = val
	}
	st.seq, _ = strconv.Atoi(meta["seq"])
	st.first, _ = strconv.ParseInt(meta["first"], 10, 64)
	st.last, _ = strconv.ParseInt(meta["last"], 10, 64)
	st.retryAt, _ = strconv.ParseInt(meta["retry_at"], 10, 64)
	raws, _ := parts[2].([]any)
	items := make([]pendingItem, len(raws))
	for i, r := range raws {
		raw, _ := r.(string)
		if err := json.Unmarshal([]byte(raw), &items[i]); err != nil {
			return st, fmt.Errorf("conversation %s: decode pending action: %w", k.id, err)
		}
	}
	st.pending = items
	return st, nil
}

func decodeItems(raws []string) ([]pendingItem, error) {
	items := make([]pendingItem, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal([]byte(raw), &items[i]); err != nil {
			return nil, fmt.Errorf("decode pending action: %w", err)
		}
	}
	return items, nil
}

// newToken returns a random hex string of n bytes.
func newToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// newRef returns a fresh reference token for a note: prefix "tln" for action notes, "tls" for summaries.
func newRef(prefix string) string { return prefix + "-" + newToken(6) }

// scheduleLua computes a conversation's due time from its meta hash (and a lease still held) and
// writes it to the due set. Shared by the enqueue and release scripts.
const scheduleLua = `
local function schedule(meta, due, lease, member, now, debounce, maxwait)
  local first = tonumber(redis.call('HGET', meta, 'first')) or now
  local last = tonumber(redis.call('HGET', meta, 'last')) or now
  local at = math.min(first + maxwait, last + debounce)
  local ra = tonumber(redis.call('HGET', meta, 'retry_at')) or 0
  if ra > at then at = ra end
  local pttl = redis.call('PTTL', lease)
  if pttl > 0 and now + pttl > at then at = now + pttl end
  redis.call('ZADD', due, at, member)
  return at
end
`

// enqueueScript appends the actions the conversation has not accepted before and schedules it.
// KEYS: accepted, pending, meta, due, lease, gone, restore marker of the shard.
// ARGV: member, now ms, debounce ms, max wait ms, ttl s, max pending, then action id / item pairs.
// Returns {added, duplicates}, or {-1, 0} when the conversation is gone, {-2, 0} when it is full,
// {-3, 0} when the shard lost its delivery record (no restore marker).
var enqueueScript = redis.NewScript(scheduleLua + `
if redis.call('EXISTS', KEYS[7]) == 0 then return {-3, 0} end
if redis.call('EXISTS', KEYS[6]) == 1 then return {-1, 0} end
local now = tonumber(ARGV[2])
local fresh = {}
local local_seen = {}
local total = 0
for i = 7, #ARGV, 2 do
  total = total + 1
  local id = ARGV[i]
  if not local_seen[id] and redis.call('SISMEMBER', KEYS[1], id) == 0 then
    local_seen[id] = true
    table.insert(fresh, i)
  end
end
if #fresh > 0 and redis.call('LLEN', KEYS[2]) + #fresh > tonumber(ARGV[6]) then return {-2, 0} end
for _, i in ipairs(fresh) do
  redis.call('SADD', KEYS[1], ARGV[i])
  redis.call('RPUSH', KEYS[2], ARGV[i + 1])
end
if #fresh > 0 then
  if redis.call('HEXISTS', KEYS[3], 'first') == 0 then redis.call('HSET', KEYS[3], 'first', now) end
  redis.call('HSET', KEYS[3], 'last', now)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
if redis.call('LLEN', KEYS[2]) > 0 then
  schedule(KEYS[3], KEYS[4], KEYS[5], ARGV[1], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
end
return {#fresh, total - #fresh}
`)

// claimScript takes the lease of a conversation that is due and moves it out of the way of other
// pollers for the lease time. KEYS: due, lease. ARGV: member, now ms, token, lease ms. Returns 1 if claimed.
var claimScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) > tonumber(ARGV[2]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[2]) + tonumber(ARGV[4]), ARGV[1])
  return 1
end
return 0
`)

// loadScript checks and extends the caller's lease and reads what the flusher needs of the
// conversation. KEYS: lease, inflight, meta, pending. ARGV: token, lease ms, head length.
// Returns {inflight or "", meta as a flat list, the first head pending items}, or -1 when the
// lease is lost.
var loadScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local inf = redis.call('GET', KEYS[2]) or ''
return {inf, redis.call('HGETALL', KEYS[3]), redis.call('LRANGE', KEYS[4], 0, tonumber(ARGV[3]) - 1)}
`)

// renewScript extends a lease the caller still holds. KEYS: lease. ARGV: token, lease ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// unlockScript deletes a lease the caller holds. KEYS: lease. ARGV: token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// putInflightScript writes the in-flight note under the lease, replacing the expected value ("" for
// none), and extends the lease. KEYS: lease, inflight. ARGV: token, expected, new, ttl s, lease ms.
// Returns 1, or -1 lease lost, -2 changed.
var putInflightScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local cur = redis.call('GET', KEYS[2]) or ''
if cur ~= ARGV[2] then return -2 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// completeScript does the bookkeeping of a posted note in one step: drops its lines from the pending
// list, advances the line counter, clears the backoff, marks the in-flight note posted and extends
// the lease. KEYS: lease, inflight, pending, meta, accepted.
// ARGV: token, expected, posted, line count, last seq, ttl s, lease ms.
// Returns how many actions are still pending (0 or more), or -1 lease lost, -2 changed.
var completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -2 end
redis.call('LTRIM', KEYS[3], tonumber(ARGV[4]), -1)
redis.call('HSET', KEYS[4], 'seq', ARGV[5])
redis.call('HDEL', KEYS[4], 'fails', 'retry_at')
local left = redis.call('LLEN', KEYS[3])
if left == 0 then redis.call('HDEL', KEYS[4], 'first', 'last') end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[5], ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return left
`)

// clearInflightScript deletes the in-flight note once notes.written has it.
// KEYS: lease, inflight. ARGV: token, expected.
var clearInflightScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -2 end
redis.call('DEL', KEYS[2])
return 1
`)

// dropInflightScript forgets an in-flight note Intercom refused (its actions were dead-lettered)
// without using up its line numbers. KEYS: lease, inflight, pending, meta. ARGV: token, expected, line count.
var dropInflightScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return -2 end
redis.call('LTRIM', KEYS[3], tonumber(ARGV[3]), -1)
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[4], 'fails', 'retry_at')
if redis.call('LLEN', KEYS[3]) == 0 then redis.call('HDEL', KEYS[4], 'first', 'last') end
return 1
`)

// releaseScript gives the lease back and reschedules the conversation: out of the due set when it
// has nothing left to write, else at its due time or after a backoff.
// It first deletes the in-flight note when it still is the posted note ARGV[9] that notes.written
// now has (its clearing step, folded in to save a round trip).
// KEYS: due, lease, pending, meta, inflight.
// ARGV: member, token, now ms, debounce ms, max wait ms, mode (0 none, 1 fixed, 2 exponential),
// delay ms (fixed delay, or first exponential step), max delay ms, published in-flight note or "".
var releaseScript = redis.NewScript(scheduleLua + `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
if ARGV[9] ~= '' and redis.call('GET', KEYS[5]) == ARGV[9] then redis.call('DEL', KEYS[5]) end
redis.call('DEL', KEYS[2])
local now = tonumber(ARGV[3])
local mode = tonumber(ARGV[6])
if mode == 1 then
  redis.call('HSET', KEYS[4], 'retry_at', now + tonumber(ARGV[7]))
elseif mode == 2 then
  local fails = redis.call('HINCRBY', KEYS[4], 'fails', 1)
  local delay = math.min(tonumber(ARGV[7]) * math.pow(2, math.min(fails - 1, 30)), tonumber(ARGV[8]))
  redis.call('HSET', KEYS[4], 'retry_at', now + math.floor(delay))
end
if redis.call('LLEN', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
return schedule(KEYS[4], KEYS[1], KEYS[2], ARGV[1], now, tonumber(ARGV[4]), tonumber(ARGV[5]))
`)

// goneScript forgets everything waiting for a conversation Intercom no longer has, and marks it gone
// so later actions are refused. KEYS: lease, gone, pending, meta, inflight, due. ARGV: token, ttl s, member.
var goneScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
redis.call('DEL', KEYS[3], KEYS[5])
redis.call('HDEL', KEYS[4], 'first', 'last', 'retry_at', 'fails')
redis.call('ZREM', KEYS[6], ARGV[3])
return 1
`)

// pauseScript makes every replica wait at least ARGV[1] ms before its next Intercom call.
// KEYS: pause.
var pauseScript = redis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1
`)

// scriptResult maps the -1/-2 answers of the lease-checked scripts onto errors.
func scriptResult(n int64, what string) error {
	switch n {
	case -1:
		return fmt.Errorf("%s: %w", what, errLeaseLost)
	case -2:
		return fmt.Errorf("%s: the in-flight note changed underneath: %w", what, errLeaseLost)
	}
	return nil
}
