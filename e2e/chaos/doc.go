// Package chaos attacks the running system the way production will and states its figures. The
// four binaries run as processes against a broker, a redis-server and the fake Intercom, which the
// tests kill, restart, take down and feed bad input:
//
//   - TestChaos: steady load while binaries are killed (kill -9) and restarted, Redis and the
//     broker restarted with their data, Intercom down and then rate-limiting; afterwards every
//     action is in exactly one note or under a summary, nothing was posted twice, summaries
//     precede the redactions they call for, and a replay of every topic posts nothing again.
//   - TestBadInputCorpus: the corpus in testdata/corpus through the capture endpoint, both raw
//     topics and the webhook receiver: refused with the right status, or dead-lettered with a
//     reason, never a crash or a stopped partition; HTML and script arrive escaped in the notes.
//   - TestWebhookRetryAfterIngestDiedMidDeliveryIsStored: a delivery ingest died holding is stored
//     when Intercom retries it.
//   - TestSecurityDefaults, TestSecretsAndPersonalDataNeverLeak: admin endpoints on loopback by
//     default, required secrets, no secret in any log over TLS and SASL, no personal data in any
//     note, summary or LLM prompt.
//
// The package holds only tests; this file carries its documentation. `make chaos` runs the full
// chaos run (THREADLINE_CHAOS_DURATION), `make corpus` the corpus alone.
package chaos
