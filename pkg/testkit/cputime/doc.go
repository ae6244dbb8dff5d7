// Package cputime owns the benchmarks' measure of work done: the CPU time of the test process
// and of a redis-server, which the benchmarks report per item beside wall-clock rates on shared
// machines (CPU time barely grows when other processes take the cores; wall time does).
package cputime
