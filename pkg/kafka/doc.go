// Package kafka owns Threadline's Kafka plumbing on franz-go: client construction (brokers, SASL,
// TLS, logging through zap, client metrics through Prometheus), topic names and their creation
// at start-up, and the one consumer loop every service runs.
//
// # Delivery semantics of Consumer
//
// At least once, in offset order per partition. A Consumer is a consumer-group member; each
// partition assigned to it gets a goroutine of its own that hands the partition's records, in
// offset order and in batches of at most MaxPollRecords, to the service's Handler. An offset is
// marked for commit only after the handler reported the record done (nil, or the index of a
// RecordError past it); marked offsets are committed in the background, when a partition is
// revoked, and on shutdown. A crash therefore never loses a record, and may hand a record to a
// handler again: handlers make their side effects idempotent, keyed by stable ids.
//
// What a handler error means:
//
//   - Permanent(reason, err): the record can never succeed (undecodable, invalid). It is produced
//     to the dead-letter topic, synchronously, with headers naming the source topic, partition,
//     offset, service, reason and error, and only then marked; processing continues with the next
//     record. If the dead-letter produce fails the record is retried like a transient failure.
//   - Fatal(err): Run stops and returns the error; the record's partition is not marked past it.
//     A handler panic is treated the same way.
//   - anything else is transient: the unfinished records are retried with capped exponential
//     backoff and jitter, marking nothing meanwhile (so nothing past them is committed), until
//     they succeed, the partition is revoked, or Run ends.
//
// Rebalances. Rebalance callbacks never run between a poll and the hand-off of its records
// (BlockRebalanceOnPoll). When a partition is revoked its worker takes no new batch and stops
// retrying; the in-flight handler call may finish within DrainTimeout (its context is cancelled
// after that), what it finished is marked, and the marks are committed before the partition
// moves on. When a partition is lost (the member fell out of the group) the worker is fenced
// first: nothing it finishes afterwards is marked.
//
// Backpressure. Each partition buffers at most PartitionBuffer records ahead of its handler;
// when the buffer is full that partition's fetching pauses, and resumes when half is done.
// Pause/Resume, or PauseWhile with a circuit breaker's state, stop fetching altogether while a
// downstream dependency is down; meanwhile the handler keeps retrying what it already holds,
// without committing and without spinning.
//
// Transactions. The consumer reads committed records only (read_committed). Transaction markers
// never reach the handler but are marked in order, so committed offsets and lag reach the end of
// a partition written transactionally.
//
// Readiness and replay. Ready turns true once the member was assigned its partitions and each
// had lag 0 (the lag metric follows fetches and a periodic listing of end offsets). ReplayFrom
// ("earliest" or an RFC 3339 time) rewinds each partition once, when this process is first
// assigned it; a replay never moves a partition forward past its committed offset.
package kafka
