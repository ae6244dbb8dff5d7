// Package bench owns the pipeline benchmark that `make bench` runs and the report it writes: the
// four Threadline binaries as processes against a kfake broker, a real redis-server and the fake
// Intercom, loaded by pkg/loadgen, each figure printed beside a limit measured in the same run
// (raw franz-go produce+consume of the same records, a bare encoding/json parse of them,
// redis-benchmark on the same Redis, the Intercom call budget), as ratios, with CPU and
// allocation profiles of each stage under load, and the key figures of the package Benchmark*
// functions.
//
// A run goes: the package benchmarks (go test -bench, short benchtime, one package at a time,
// three runs, each figure their median); a build of the four binaries (profiled through
// /debug/pprof/ on their admin addresses); the limits; the throughput phase, in which ingest
// and then the linker each drain a backlog alone, timed between 10% and 90% of it, with their
// process CPU time and the redis-server's; then
// one paced latency row per notewriter coalescing setting, measuring event time → note stored
// in the fake for every live line, and the notewriter's Intercom calls per action; then the
// direct rows, the notewriter alone fed straight on conversation.actions, each beside what
// coalescing and the Intercom budget allow at its load. Peak RSS is each process's VmHWM. The
// main table also goes into README.md, between its bench markers (ReplaceReadmeTable), with the
// package figures that have targets: normalise's slowest shape, and what the trigger rules cost
// per action beside the linker's own cost. Linux only: it reads /proc.
package bench
