// Package cli is the ballot command line: put, get, delete and status against a
// Ballot cluster, built on package client.
//
// Usage:
//
//	ballot [global options] put KEY VALUE     (VALUE "-" reads it from stdin)
//	ballot [global options] get [--stale] KEY
//	ballot [global options] delete KEY
//	ballot [global options] status [--json]
//
// Global options come before the command: --replicas FILE (default ./replicas.txt,
// env BALLOT_REPLICAS), --endpoints host:port,... (env BALLOT_ENDPOINTS; overrides
// the replicas file) and --timeout DURATION (default 5s, env BALLOT_TIMEOUT), the
// deadline of each operation including its retries.
//
// Output is meant for scripts: put and delete print nothing on success; get prints
// the value followed by a newline. Exit codes:
//
//	0  success (status: at least one replica answered)
//	1  get: the key holds no value ("not found" on stderr)
//	2  usage error: wrong arguments, unknown command or flag
//	3  any other failure, with one line on stderr saying what failed and where
package cli
