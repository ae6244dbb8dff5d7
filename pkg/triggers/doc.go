// Package triggers owns proactive triggers: the rules file that turns product actions into
// Intercom data events (so Intercom outbound messages and Workflows can act before the user
// writes), and the engine that evaluates those rules with its state in Redis. It produces
// messages.IntercomEvent values; it neither reads Kafka nor calls Intercom.
//
// # Rules
//
// Load and Parse read a YAML file (THREADLINE_TRIGGERS_FILE), validate it against the JSON Schema
// schemas.TriggersFile and check what a schema cannot. Every problem is reported with its line
// and column in a *RulesError. The fields are documented in the schema and in this package's
// README: a rule has a name (the event name: lowercase words joined by dashes, one of them a
// past-tense verb), when (event, kind, url, url_prefix, url_contains, page, properties; all must
// hold), and optionally every, dwell and metadata.
//
// # Evaluation
//
// EvaluateBatch (Evaluate for one action) matches each action against the rules in memory; only
// the rules that may match its PostHog event name and kind are tried. A match emits the rule's
// event for the action's user; a user with no identifier is skipped and counted, never guessed.
// The event's created_at is the action's event time in seconds (for a dwell rule, its
// pageview's) and its metadata comes only from the action's (already redacted) properties: flat
// strings of at most 255 characters, at most 10 keys, any value in which redact.Find sees
// personal data left out. Properties may come as JSON (Input.RawProperties): they are decoded
// only for an action that meets every other condition of a rule that reads them (property
// conditions or metadata), at most once; most actions match no such rule and are never decoded.
//
// A caller that sends a Redis round trip of its own per batch (the linker) evaluates with Begin,
// which matches in memory, then Evaluation.Queue, which puts the evaluation's Redis work into the
// caller's pipeline, then Evaluation.Finish once the pipeline ran, which returns the events:
// on a single server, rules then cost no round trip of their own. EvaluateBatch is Begin and
// Finish.
//
// Every: a rule with every emits for a user at most once per period of event time. The last
// emission's time is kept per (rule, user), and an action closer than every to it, either way,
// is suppressed; the check and the record are one script on the user's hash tag, so replicas
// agree.
//
// Dwell: a pageview that matches a dwell rule starts a wait, and makes the pageview the
// session's pending page (its page state). The session's first later pageview or pageleave (in
// event time) ends the page: its end is recorded for the pageview's waits and the page state is
// deleted. Tick decides each wait once its threshold (pageview time + dwell) is at or before the
// cutoff (Tick's clock less the dwell grace): the rule fires when the page ended at or after the
// threshold, or has not ended and is still the session's current page; otherwise the user left
// early and nothing fires. Decisions depend only on the session's events and the clock Tick is
// given, so a replay decides the same; the page state lives in Redis, so replicas and restarts
// carry on where others stopped. A session's events are taken to come in order (they share a
// partition, and those of a batch are taken in event-time order): a page event older than the
// pending page changes nothing, but once the page ended its state is gone, so a late event is no
// longer told from a new one (it does not move the recorded end, and a late pageview may start a
// wait of its own). Only a session whose current page is pending has page state, and the engine
// remembers the sessions a script call found without one (a bounded index in memory), so an
// action that matches nothing costs no Redis work at all unless it is a page event of a session
// with a pending page or not yet asked about: then its share of one SMISMEMBER per batch (inside
// the evaluation's script call). What the index remembers holds while this process consumes the
// session's actions without a break (only their consumer creates page state; Tick only removes
// it); ForgetSessions, which the linker calls when partitions are assigned, empties it.
//
// # Exactly once
//
// Each (rule, action) is decided once, ever: the first decision is stored in a marker (per user,
// kept MarkerTTL), and a later evaluation of the same action, a replay or a retry, finds it and
// emits nothing. An emitted event is stored in its marker as unconfirmed, with a lease, and
// listed in the unconfirmed set atomically with that decision (on a cluster, listed before it);
// the marker is written with SET NX GET, which decides and records in one call. Confirm, once
// the caller produced the event, marks it confirmed (and drops the stored event); ConfirmLater
// does the same with the engine's next round trip (the next evaluation's, Tick's first, ahead of
// its read of the unconfirmed set, or Confirm's), so that confirming costs no round trip of its
// own. Tick emits again any event whose lease ended unconfirmed (the produce failed, or the
// process died, before Confirm or before ConfirmLater's writes went out), at most
// MaxRedeliveries times. So nothing is lost between a decision and its produce, and an event is
// produced twice only when it was not confirmed within its lease; it is then the same event (rule
// and action_id are its idempotency key, created_at is fixed): the notewriter records the rule
// and action id of each event it posts and drops a repeat, and Intercom ignores a repeat of name,
// user and created_at.
//
// # Redis
//
// Redis work is counted in calls (each command, those a script runs included, costs the server
// about the same), so the keys are laid out to need few: a claim without every is one SET NX GET
// PX (decision, unconfirmed event and expiry at once), one with every adds a GET and a SET PX of
// its limiter, a suppressed one is a GET and a SET NX; a confirmation is one SET XX KEEPTTL per
// event and one ZREM for all; a session's page state is one string (one GET, one SET PX), each
// wait a pageview starts one SET PX of its event, and the end of a pending page one SET PX.
//
// On a single server an evaluation is one round trip, the caller's when it queues it there: one
// call of luaEvaluate (per 500 claims or sessions) takes the claims, the sessions that start a
// wait, and the other sessions with page events (each with its earliest page event only, the one
// that could end its pending page), of which one SMISMEMBER of the set of sessions with page
// state, inside the call, names the few to follow; the confirmations ConfirmLater kept
// and the events of the waits started go with it as plain commands. A batch that matches nothing
// and has no page event to follow (none, or no rule has a dwell) runs no script, and needs no
// round trip unless writes wait for one. Confirm is one round trip with no script. On Redis Cluster every script call
// keeps to the keys of one hash tag (a user's, or a session's), all in the same round trip, and
// there is no set of sessions with page state: each session with page events is a call of its
// own; when a batch claims or starts anything, Begin sends a round trip before it that lists the
// claims as unconfirmed and schedules the dwell starts (the set and the schedule are single
// keys), and the entries of claims that emitted nothing are removed with the engine's next round
// trip.
//
//	tl:trg:{s:<session>}:page                   string  pending page: pageview, time, rules      max dwell + grace + 1h
//	tl:trg:{s:<session>}:e:<pageview>           string  when a pending page ended (ms)           max dwell + grace + 1h
//	tl:trg:{s:<session>}:w:<rule>:<pageview>    string  a pending wait's event                   max dwell + grace + 1h
//	tl:trg:{u:<user>}:d:<rule>:<action>         string  the decision; while unconfirmed, with    MarkerTTL
//	                                                    lease, tries, contact ids and event
//	tl:trg:{u:<user>}:t:<rule>                  string  the last emission's event time (every)   2 × every + 1m
//	tl:trg:{u:e:<hash>}:ct                      hash    the contact of an email hash: x, c ids   ContactTTL
//	tl:trg:pages                                set     sessions with page state (single server) max dwell + grace + 1h
//	tl:trg:due                                  zset    dwell waits by due time (event-time ms)  until decided
//	tl:trg:unconfirmed                          zset    unconfirmed markers by lease end (ms)    until confirmed
//
// <user> is "x:" and the user id, else "c:" and the Intercom contact id, else "e:" and the email
// hash.
//
// # Users known by an email hash
//
// A user whose only identifier is an email hash emits only when a conversation event named the
// Intercom contact behind that hash: RememberContact keeps the contact's ids for ContactTTL, and
// the script call that claims an action of such a user resolves the hash to them, so the event
// carries the contact's intercom_user_id and user_id. A hash with no remembered contact is
// skipped (and counted as anonymous), not decided, so a replay after the contact is known emits.
// The claim, its limiter and the contact share the hash's tag.
package triggers
