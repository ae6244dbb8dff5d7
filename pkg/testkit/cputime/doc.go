// Package cputime owns the benchmarks' measure of work done: the CPU time of the test process,
// which the benchmarks report per item beside wall-clock rates on shared machines.
package cputime
