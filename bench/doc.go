// Package bench is the load generator behind `ballot bench` and `make bench`: it
// drives a Ballot cluster with many concurrent clients and measures what they see.
//
// A run has up to three phases. Preload puts every key of the key space once, so
// that reads find values. Warm-up runs the load for Config.Warmup and throws its
// figures away. The measured phase runs for Config.Duration, or until Config.Ops
// operations have been issued, or (replaying a workload file with neither) once
// through the file; it always stops at Config.TimeLimit at the latest.
//
// The engine promises:
//
//   - Wall-clock throughput: operations completed in the measured phase divided by
//     the seconds from its start until its last operation finished. Latencies are
//     never summed to make a throughput.
//   - Latency percentiles from a log-bucket histogram (see Histogram) whose
//     relative error is under 1/64, recorded by each worker without locks and
//     merged at the end.
//   - Errors sorted by kind (see ErrorKind): not found, unavailable, invalid, other.
//     A failed operation is counted under its kind and left out of the latency
//     figures and of ops/s, which count successes only.
//   - Bounded loops: every phase stops at its count or time limit, and when the
//     caller's context ends.
//
// Workload files (see ParseWorkload) replay recorded operations: the workers take
// lines in turn from one shared cursor.
package bench
