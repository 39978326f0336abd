// Package cli is the ballot command line: put, get, delete, status, digest,
// snapshot save and reconfigure against a Ballot cluster, built on package client.
//
// Usage:
//
//	ballot [global options] put KEY VALUE     (VALUE "-" reads it from stdin)
//	ballot [global options] get [--stale] KEY
//	ballot [global options] delete KEY
//	ballot [global options] status [--json]
//	ballot [global options] digest [--json]
//	ballot [global options] snapshot save FILE
//	ballot [global options] reconfigure [--dry-run] [--json] [--current FILE] [--catch-up-timeout D]
//	ballot [global options] certs [--out DIR] [--days N] [--client-name NAME] [--force]
//
// Global options come before the command: --replicas FILE (default ./replicas.txt,
// env BALLOT_REPLICAS), --endpoints host:port,... (env BALLOT_ENDPOINTS; overrides
// the replicas file) and --timeout DURATION (default 5s, env BALLOT_TIMEOUT), the
// deadline of each operation including its retries.
//
// Output is meant for scripts: put and delete print nothing on success; get prints
// the value followed by a newline. digest prints each replica's applied slot, key
// count and SHA-256 of its data, and fails when two replicas at the same slot
// differ. snapshot save writes a fresh snapshot of the leader's store to FILE.tmp,
// checks it against its SHA-256, syncs it, renames it to FILE and prints
// "saved snapshot at slot N: S bytes, sha256 HEX"; on failure FILE is untouched.
// reconfigure makes the members those of the replicas file in single-member steps,
// printing "epoch N: added 4 (host:port) -> members 1,2,3,4" or "epoch N: removed 1
// -> members 2,3,4" per step; it starts from the configuration the cluster has
// committed, so after a failure running it again resumes.
// certs writes a local CA and certificates for every replica of the replicas file
// and for a client into DIR (default certs), for trying TLS; it never replaces a
// file without --force.
// Exit codes:
//
//	0  success (status, digest: at least one replica answered)
//	1  get: the key holds no value ("not found" on stderr)
//	2  usage error: wrong arguments, unknown command or flag
//	3  any other failure, with one line on stderr saying what failed and where
package cli
