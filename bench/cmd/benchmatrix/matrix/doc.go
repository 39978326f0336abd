// Package matrix runs a benchmark matrix of a replicated key-value store: for every
// combination of cluster size, client count, value size and operation it starts a
// fresh cluster, drives it with the bench engine, and measures throughput, latency
// and the CPU time the cluster's servers used per operation (package proc). It
// writes a markdown report, JSON and PNG charts.
//
// What is measured is a System: benchmatrix measures Ballot's bin/ballotd, and
// bench/etcd's etcdmatrix measures etcd with the same cells, settings, load engine,
// CPU accounting and reports, so that figures of the two taken in one run compare.
package matrix
