// Package e2e holds Ballot's system tests: they build ballotd and ballot, start
// real replicas on 127.0.0.1, each in its own process with its own data directory,
// and drive them through the ballot command, the Go client library and raw Thrift
// while killing, restarting and stopping replicas.
//
// The tests run with the rest of the module (`make test`). Set BALLOT_E2E_RACE=1 to
// build the binaries with the race detector as well, and BALLOT_MEASURE=1 to run
// the failover, catch-up, restart and membership-change measurements.
package e2e
