package triggers

import "sync"

// maxStatelessSessions bounds the sessions a pageIndex remembers (about 100 bytes each); when it
// is full the index starts again empty, and the sessions are asked about again.
const maxStatelessSessions = 50_000

// pageIndex remembers the sessions this engine knows to have no page state, so that their page
// events cost no Redis work at all: most sessions never start a dwell wait, and with page state
// kept only while a pending page is current, nearly every session is one of them.
//
// What it remembers holds as long as this process consumes the session's actions without a
// break. Page state is created and ended only by the consumer of a session's actions (product
// actions are keyed by session, so one replica at a time), and Tick only removes it. A session
// this engine saw end up without state therefore stays so until this engine itself starts a wait
// for it, which it sends to Redis whatever the index says. When partitions move, another replica
// may have started a wait meanwhile: ForgetSessions empties the index, and the sessions are asked
// about again (the set of sessions with page state names those that have one).
type pageIndex struct {
	mu        sync.Mutex
	stateless map[string]struct{}
}

func newPageIndex() *pageIndex { return &pageIndex{stateless: map[string]struct{}{}} }

// known reports whether session is known to have no page state.
func (x *pageIndex) known(session string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.stateless[session]
	return ok
}

// update records what a script call reported: per session sent, in order, '0' when it has no
// page state after the call, '1' when it has.
func (x *pageIndex) update(sessions []string, status string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, s := range sessions {
		if i < len(status) && status[i] == '0' {
			if len(x.stateless) >= maxStatelessSessions {
				clear(x.stateless)
			}
			x.stateless[s] = struct{}{}
		} else {
			delete(x.stateless, s)
		}
	}
}

// forget drops a session whose state is about to change (it starts a wait).
func (x *pageIndex) forget(session string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.stateless, session)
}

func (x *pageIndex) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.stateless)
}
