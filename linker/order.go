package main

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/threadline/threadline/pkg/messages"
)

// orderStripes is how many locks sessions are spread over. A poll batch holds the stripes of
// its sessions (a few hundred), so with this many a link step rarely waits for a batch that
// does not carry its session.
const orderStripes = 4096

// sessionOrder keeps, within one process, a session's pre-conversation batch ahead of its live
// actions: routing a poll batch and producing its output holds the batch's sessions shared, and
// a link step and producing what it flushed holds its sessions exclusively. Sessions are
// spread over a fixed set of locks by hash; locks are always taken in ascending order, so
// holders of several never deadlock.
type sessionOrder struct {
	seed    maphash.Seed
	stripes [orderStripes]sync.RWMutex
}

func newSessionOrder() *sessionOrder {
	return &sessionOrder{seed: maphash.MakeSeed()}
}

// stripesOf returns the sorted, distinct stripes of sessions.
func (o *sessionOrder) stripesOf(n int, session func(i int) string) []int {
	idx := make([]int, n)
	for i := range n {
		idx[i] = int(maphash.String(o.seed, session(i)) % orderStripes)
	}
	slices.Sort(idx)
	return slices.Compact(idx)
}

// routing holds the sessions of actions shared and returns the function that releases them.
func (o *sessionOrder) routing(actions []messages.ProductAction) (release func()) {
	idx := o.stripesOf(len(actions), func(i int) string { return actions[i].Action.SessionID })
	for _, i := range idx {
		o.stripes[i].RLock()
	}
	return func() {
		for _, i := range idx {
			o.stripes[i].RUnlock()
		}
	}
}

// linkHold holds, exclusively, the sessions of the link steps of one conversation event, until
// release. A contact merge may link the sessions of several conversations one after the other;
// it holds every stripe at once, since adding stripes to those already held could break the
// ascending order.
type linkHold struct {
	o    *sessionOrder
	all  bool
	held []int
}

func (o *sessionOrder) linking(ev messages.ConversationEvent) *linkHold {
	return &linkHold{o: o, all: ev.Type == messages.ConvContactMerged}
}

// hold takes the stripes of sessions; see linkstore.Store.ApplyHeld.
func (h *linkHold) hold(sessions []string) {
	var want []int
	if h.all {
		if len(h.held) > 0 {
			return
		}
		want = make([]int, orderStripes)
		for i := range want {
			want[i] = i
		}
	} else {
		want = h.o.stripesOf(len(sessions), func(i int) string { return sessions[i] })
	}
	for _, i := range want {
		if _, found := slices.BinarySearch(h.held, i); found {
			continue
		}
		h.o.stripes[i].Lock()
		h.held = append(h.held, i)
	}
	slices.Sort(h.held)
}

func (h *linkHold) release() {
	for _, i := range h.held {
		h.o.stripes[i].Unlock()
	}
	h.held = nil
}
