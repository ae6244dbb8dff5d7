package phrasing

import "sync"

// memoLimit bounds each memo: past it, the memo starts afresh. Pages, labels, sessions and users
// repeat from event to event, and so do property names; record ids do not and are never memoised.
const memoLimit = 4096

// memo remembers the results of a pure function of a string (a page name, a redacted label, an id's
// pseudonym), so that the events of one session, which repeat them, pay for them once. It is safe
// for concurrent use.
type memo[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// get returns f(k), from memory when it was asked for before.
func (c *memo[V]) get(k string, f func(string) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = f(k)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= memoLimit {
		c.m = make(map[string]V, 64)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

// getBytes is get for a key held as bytes: it allocates nothing when k was asked for before.
func (c *memo[V]) getBytes(k []byte, f func(string) V) V {
	c.mu.RLock()
	v, ok := c.m[string(k)]
	c.mu.RUnlock()
	if ok {
		return v
	}
	return c.get(string(k), f)
}
