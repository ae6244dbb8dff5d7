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
// the rules that may match its PostHog event name are tried. A match emits the rule's event for
// the action's user; a user with no identifier is skipped and counted, never guessed. The event's
// created_at is the action's event time in seconds (for a dwell rule, its pageview's) and its
// metadata comes only from the action's (already redacted) properties: flat strings of at most
// 255 characters, at most 10 keys, any value in which redact.Find sees personal data left out.
//
// Every: a rule with every emits for a user at most once per period of event time. The last
// emission's time is kept per (rule, user), and an action closer than every to it, either way,
// is suppressed; the check and the record are one script on the user's hash tag, so replicas
// agree.
//
// Dwell: a pageview that matches a dwell rule starts a wait in the session's page state. A later
// pageview or pageleave of the session (in event time) ends the page. Tick decides each wait once
// its threshold (pageview time + dwell) is at or before the cutoff (Tick's clock less the dwell
// grace): the rule fires when the page ended at or after the threshold, or has not ended and is
// still the session's current page; otherwise the user left early and nothing fires. Decisions
// depend only on the session's events and the clock Tick is given, so a replay decides the same;
// the page state lives in Redis, so replicas and restarts carry on where others stopped. Only
// sessions with a pending wait have page state, so an action that matches nothing costs Redis
// work only when it is a page event and some rule has a dwell: one HMGET, within a single call
// per batch.
//
// # Exactly once
//
// Each (rule, action) is decided once, ever: the first decision is stored in a marker (per user,
// kept MarkerTTL), and a later evaluation of the same action, a replay or a retry, finds it and
// emits nothing. An emitted event is stored in its marker as unconfirmed, with a lease, and
// listed in the unconfirmed set atomically with that decision (on a cluster, listed before it);
// Confirm, once the caller produced the event, marks it confirmed. Tick emits again any event
// whose lease ended unconfirmed (the produce failed or the process died), at most
// MaxRedeliveries times. So nothing is lost between a decision and its produce, and an event is
// produced twice only when a produce outlived its lease; it is then the same event (rule and
// action_id are its idempotency key, created_at is fixed, and Intercom ignores a repeat of name,
// user and created_at).
//
// # Redis
//
// On a single server an evaluation is one round trip and usually one script call: the claims of
// the batch and the page events of its sessions go to one call of luaEvaluate. Confirm is one
// round trip and one script call. On Redis Cluster every script call keeps to the keys of one
// hash tag (a user's, or a session's), all in the same round trip; when a batch claims or starts
// anything, one round trip before it lists the claims as unconfirmed and schedules the dwell
// starts (the set and the schedule are single keys), and the entries of claims that emitted
// nothing are removed with the engine's next round trip.
//
//	tl:trg:{s:<session>}:pg             hash  current page, pending dwell waits, page ends  max dwell + grace + 1h
//	tl:trg:{u:<user>}:m:<rule>:<action> hash  the decision: state, lease, tries, event    MarkerTTL
//	tl:trg:{u:<user>}:l:<rule>          hash  the last emission's event time (every)      2 × every + 1m
//	tl:trg:{u:e:<hash>}:ct              hash  the contact of an email hash: x, c ids      ContactTTL
//	tl:trg:due                          zset  dwell waits by due time (event-time ms)     until decided
//	tl:trg:unconfirmed                  zset  unconfirmed markers by lease end (wall ms)  until confirmed
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
