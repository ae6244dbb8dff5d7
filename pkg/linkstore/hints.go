package linkstore

import (
	"sync"
	"time"
)

// hintCapacity bounds each hint map; a full map is emptied and fills again.
const hintCapacity = 1 << 16

// identityRefresh is how long RouteBatch trusts that it recorded an identity's active session
// before it records it again. Within it, a session misses conversations registered with that
// identity for another session (it joins them at the next refresh, its actions buffered
// meanwhile); pending conversations are always met, as Apply finds the active session recorded.
const identityRefresh = 10 * time.Second

// hints are a Store's in-process guesses that spare Redis work. They hold nothing that matters:
// a wrong or lost hint costs one more round trip or a delayed follow, never an action.
type hints struct {
	mu sync.Mutex
	// linked holds sessions whose last actions were forwarded: their actions are sent without
	// JSON first, as the route script only needs it to buffer.
	linked map[string]bool
	// recorded holds, per identity and session, when RouteBatch last recorded the session as
	// the identity's active one.
	recorded map[string]time.Time
}

func newHints() *hints {
	return &hints{linked: make(map[string]bool), recorded: make(map[string]time.Time)}
}

func (h *hints) isLinked(session string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.linked[session]
}

func (h *hints) setLinked(session string, linked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !linked {
		delete(h.linked, session)
		return
	}
	if len(h.linked) >= hintCapacity {
		clear(h.linked)
	}
	h.linked[session] = true
}

func recordedKey(identity, session string) string { return identity + "\x00" + session }

// recordedSince reports whether identity was recorded for session after since.
func (h *hints) recordedSince(identity, session string, since time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.recorded[recordedKey(identity, session)]
	return ok && at.After(since)
}

func (h *hints) setRecorded(identity, session string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recorded) >= hintCapacity {
		clear(h.recorded)
	}
	h.recorded[recordedKey(identity, session)] = at
}

// reset forgets every hint, after Redis failed (it may have lost its data).
func (h *hints) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.linked)
	clear(h.recorded)
}
