// Package linkstore owns the linker's Redis state: which product sessions are joined to which
// Intercom conversations, the pre-link buffer of sessions not yet joined, and the records that
// make every step idempotent. The linker binary feeds it product.actions (RouteBatch) and
// conversation.events (Apply) and produces what they return to conversation.actions.
//
// # Behaviour
//
// Identity. Actions record, for each of their identities, the session they happened in (the
// one with the latest event time wins; a replica records a given identity and session at most
// once per identityRefresh). Identities are "x:<id>" for the distinct id, user id,
// Intercom user id and, on $identify, the anonymous id it replaces, and "e:<hash>" for the email
// hash. An anonymous session that later identifies is therefore found by the identified id.
// Identify actions update identities and are never forwarded.
//
// Linking. A conversation event links, in order, the session named by its session hint, else the
// active session of its external id, else that of its email hash. It also registers the
// conversation with those identities; when none has an active session the conversation is
// pending there for PendingTTL, and the user's next action (any session with that identity)
// links it. Conversations stay registered with their identities while open, so a new session of
// the same person joins the open conversation by itself. A contact merge gives the conversations
// of the contact merged away the surviving contact's identities and links them the same way.
//
// Routing. A linked session sends each action to the open conversation with the most recent
// activity (created, replied, opened), or to every open one under PolicyAllOpen. A closed
// conversation still receives actions whose event time is within ClosedGrace of the close; a
// deleted conversation, or one the session's contact was detached from, receives nothing. A
// reply or an open event reopens a conversation.
//
// Buffering. A session with no conversation to send to buffers its actions, ordered by event
// time, keeping those within BufferWindow of the newest and at most BufferMax (oldest dropped
// first; counted by cause). When a link is made, or a linked conversation reopens, the buffer
// is flushed as one batch marked PreConversation, without actions older than BufferWindow before
// the link time.
//
// # Idempotency
//
// Input is delivered at least once. Each action's decision (forwarded to which conversations, and
// any batch flushed just before it) is stored under its action id; a repeat returns the stored
// decision, so the output is the same. A buffered action's record is its buffer member, which is
// never added twice, until the flush that drains it stores a decision under the ids it drained, so
// a buffered action is only ever output by the one flush that drained it (a repeat in the very
// batch whose candidates trigger that flush included). An action dropped from the buffer before any
// flush (window, cap, BufferTTL) has output nothing, and a repeat of it is decided anew. Each conversation event is applied to the
// conversation record once; the sessions it touches are fixed in a plan stored under the event
// id; each link step stores what it flushed under (event id, conversation id). A crash at any
// point followed by a repeat returns the same output. Conversation state reaches sessions and
// identities as entries carrying a version that only grows, so late or repeated writes never
// undo newer state.
//
// # Key layout
//
// Every key starts with "tl:" and carries a hash tag; on Redis Cluster each script call touches
// the keys of one tag only. Every key has a TTL.
//
//	tl:{s:<session>}:links   hash  conversation id → link entry (state, closed at, activity,
//	                               workspace, version, registered flag)            SessionTTL
//	tl:{s:<session>}:buf     zset  pre-link buffer: action JSON (it starts with the
//	                               action id) scored by event ms                   BufferTTL
//	tl:{s:<session>}:acts    hash  action id → stored decision (forwarded, or drained
//	                               by a flush)                                     SessionTTL
//	tl:{s:<session>}:ids     set   identity keys seen in the session                SessionTTL
//	tl:{s:<session>}:fl:<event>:<conv>  string  batch a link step flushed           SessionTTL
//	tl:{i:<identity>}:s      hash  active session and its event time                SessionTTL
//	tl:{i:<identity>}:c      hash  conversation id → entry (+ pending-until)        SessionTTL
//	tl:{c:<conv>}:conv       hash  version, state, closed at, activity, workspace   SessionTTL
//	tl:{c:<conv>}:sess       hash  linked session → contact id                      SessionTTL
//	tl:{c:<conv>}:ids        set   identity keys the conversation is registered with SessionTTL
//	tl:{c:<conv>}:ev:<event> hash  applied entry snapshot and the event's plan      SessionTTL
//	tl:{k:<contact>}:convs   set   conversations of an Intercom contact             SessionTTL
//	tl:{k:<contact>}:ev:<event> string conversations a merge event applies to       SessionTTL
//
// # Scripts
//
// route (session tag): the "buffer or forward" decision for a run of one session's actions. A
// poll batch is one pipelined round trip of route calls: on Redis Cluster one call per session,
// on a single server one call carries many sessions (up to 500 actions), one after the other,
// so the per-call cost of a script is paid per batch rather than per session (a server that
// refuses keys of several hash slots in one call, as a proxy in front of a sharded Redis does,
// turns that off for the Store's life). For each session it skips actions already decided
// (returning the stored decision), applies conversations offered by the session's identities
// (version-checked), flushes the buffer if that made a conversation eligible, then forwards each
// action to its target conversations or buffers it, and stores the decisions that output
// something. Buffering costs a few commands per session and call, whatever its number of
// actions: one ZADD NX, a trim by window (against the call's newest action; the flush applies the
// window exactly) and one by cap, one PEXPIRE; a session with no link reads no decisions, as
// nothing was ever flushed or forwarded from it. It decides before it writes: sessions
// believed linked are sent without the actions' JSON (which only buffering needs), and if one
// must buffer after all the script writes nothing and asks for the JSON, and the call is sent
// again. Links it made itself are reported until registered on the conversation. Other
// components' Redis work for the same batch (the trigger rules') can ride that round trip as a
// Rider instead of paying one of its own.
//
// link (session tag): the "link and flush" step of Apply for one session and conversation. It
// returns the stored result when the event was already applied to the session; otherwise it
// writes the conversation's entry (version-checked), flushes the buffer if the conversation is
// eligible and stores the flushed batch and the drained actions' decisions. Without flushing it
// also confirms a registration.
//
// identitySeen (identity tag): records the action's session as the identity's active one and
// returns the identity's open conversations, claiming pending ones. Its calls are packed as
// route's are: one identity per call on Redis Cluster, many on a single server.
//
// identityRegister (identity tag): writes a conversation's entry (version-checked) and returns
// the active session; an open conversation without one becomes pending.
//
// convApply (conversation tag): applies an event to the conversation record once per event id
// and returns its entry, the stored plan if any, the linked sessions and identities.
// convPlan stores the plan unless one is stored. convSessions records linked sessions and
// following identities and returns the current entry. setOnce stores a merge's conversations.
//
// A Store keeps in-process hints only to spare Redis work (which sessions look linked, which
// identities it recorded lately); they are bounded, emptied after any Redis error, and never
// decide where an action goes.
//
// Between scripts of different tags nothing is atomic, and nothing needs to be: actions are
// only ever buffered or forwarded inside the session script and only drained inside one, so an
// action is output exactly once whichever order replicas run in; identity registration and
// identity lookup serialise on the identity tag, so a conversation and its user's first action
// always meet, either through the active session or through the pending entry.
package linkstore
