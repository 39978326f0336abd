// Package store keeps a replica's durable state in one buntdb file, <dir>/ballot.db:
// the acceptor's promised ballot and accepted log entries, the key-value data, the
// applied slot and the client de-duplication table. It also writes and installs
// snapshots of the state machine, and rewrites its file so that disk and memory
// stay bounded by the data rather than by the history.
//
// # Layout
//
// Each kind of record has its own key prefix, so user keys cannot collide with the
// replica's records: "d/"+key holds a user value, "c/"+client id the client's
// de-duplication record, "l/"+slot (20 digits) one accepted log entry, and
// "m/promised", "m/applied", "m/compacted" and "m/intent" the promise, the applied
// slot, the slot up to which the log was compacted and the redo record of the last
// Apply. Values are compact binary (uvarints); keys and values may hold any bytes.
//
// The de-duplication table holds at most MaxWriters records: Apply drops those of
// the writers silent longest, at the same slot on every replica (see MaxWriters).
//
// # Durability
//
// buntdb runs with SyncPolicy Never and automatic shrinking off (a shrink rewrites
// and renames the file without syncing the directory). The store syncs the file
// itself, through a second descriptor, and checks the error, which buntdb ignores:
//
//   - Save returns only after its one transaction is written and fsync'd. This is
//     the acceptor's durability point: nothing may be sent that depends on a promise
//     or an accepted entry before Save returns. One Save per batch of work is group
//     commit: one write and one fsync however many entries it carries.
//   - Compact records the compacted slot, deletes and syncs.
//   - Apply writes but does not sync; its writes become durable with the next Save
//     or Compact, or Close. Its input is chosen entries, which can always be had
//     again: a crash can lose the last Applies, but the applied slot goes with them
//     (it is written after the data, see below), so the replica applies those slots
//     again. A crash never loses a promise or an accepted entry this way.
//   - Open syncs the file and its directory, so the file exists after a crash.
//   - Rewrite, InstallSnapshot and Restore build a new file, sync it, rename it over
//     ballot.db and sync the directory; WriteSnapshot does the same with its file.
//
// A failed write or fsync of the store's file stops the store: every later write
// (Save, Apply, Compact, DropLog, SetRebuildTo, SetConfig, Rewrite,
// InstallSnapshot) and WriteSnapshot returns the same error, wrapping ErrDiskFailed
// and naming the operation, the file and the system's error; for a full disk
// (ENOSPC, EDQUOT) it names the data directory and says to free space and restart.
// After a failed fsync Linux may have dropped the dirty pages and cleared the
// error, so a retry could "succeed" without the data; a replica that cannot trust
// its disk must stop acting as an acceptor. A failed write leaves memory no
// further than the file: buntdb cuts what part of the transaction reached the file
// and rolls it back in memory. What was acknowledged (Save returned nil) is in
// the file; opening the store again, once the disk has room, goes on from there.
//
// The second copies of the data (Rewrite, InstallSnapshot, WriteSnapshot) are
// different: they are written to files of their own, and a failure before the
// rename leaves the store as it was. On a nearly full disk such a copy could take
// the space the store's own next write needs, so each first checks the free space
// and refuses with ErrNoSpace when the copy and a reserve do not fit.
//
// # Torn writes
//
// buntdb appends each transaction as one write(), but writes its keys in map order,
// that is at random, and a crash can tear the tail of the file: keep the first keys
// of a transaction and lose the rest. On load buntdb drops an incomplete last record;
// a damaged record before the end makes Open fail with ErrCorrupt and the path. The
// store is built so that any prefix of what it wrote is a state it can continue from:
//
//   - Each accepted entry (ballot, kind, data) is one key: it is on disk whole or
//     not at all. A promise and entries saved together may be torn apart, so Durable
//     reports as promised the highest of the stored promise and every entry's
//     ballot: accepting at a ballot implies having promised it.
//   - Apply writes in two transactions. First the intent: one key with the slots
//     being applied and the final value of every key the call writes (data and
//     de-duplication records). Then those writes and the applied slot, together.
//     If a crash leaves the intent, the second transaction may be torn in any way,
//     the applied slot kept or not; Open redoes every write the stored state lacks
//     (each is idempotent) and records the applied slot, so the data is exactly
//     what the complete Apply would have left. It does so whenever the intent
//     reaches the applied slot: only an Apply changes those keys again, and it
//     replaces the intent (SetConfig, which writes the configuration outside
//     Apply, deletes it). If the intent itself is lost, nothing after it reached
//     the file and the applied slot was not advanced: the replica applies those
//     slots again from the log.
//   - De-duplication records also carry the position (slot, index in the batch) of
//     the command they record, and a command applied again at the position its
//     client's record names is redone with its recorded result. This second line of
//     defence makes re-applying a slot harmless even if an intent were lost while
//     later writes survived, which a file that only ever loses its tail cannot do.
//
// Files with NUL bytes before a complete record (blocks a crash left unwritten while
// later ones were written) are refused too: buntdb would load them but then append
// at the wrong offset. NUL bytes after the last record are cut off by Open.
//
// # De-duplication
//
// Each command carries (ClientID, Seq). The store keeps, per client, the sequence
// number, position and result of its last applied command, in the file and, decoded,
// in memory (read back by Open and whenever the file is replaced), since every
// command consults it. A command whose sequence
// number is not above the recorded one is a duplicate: it changes nothing and, when
// the numbers are equal, returns the recorded result. ClientID 0 opts out.
//
// # Memory and disk
//
// buntdb keeps every key in memory as well as on disk, so log entries must be
// compacted (Compact) once the state they lead to is safe elsewhere: in the store's
// own data (it is applied) or, for a peer that lags behind, in a snapshot. Compact
// refuses slots not yet applied, and records the compacted slot before it deletes,
// so the slot it reports is never below an entry already gone. The intent of the
// last Apply stays until the next one replaces it.
//
// buntdb appends every change to the file, so the file grows with the history, not
// the data. Rewrite replaces it with one holding only the live records. It builds
// the new file, ballot.db.tmp, from one read transaction and loads it while the
// store carries on; then, holding the writers back, it copies over what the old
// file gained meanwhile (whole records, as each writer's transaction is one write),
// syncs it, renames it over ballot.db and syncs the directory. A crash leaves the
// old file or the new one, each whole; Open removes a temporary file a crash left
// behind. buntdb's own Shrink is not used because it does not sync the rewritten
// file or its directory. While the new file loads, memory holds two copies of the
// index.
//
// # Snapshots
//
// WriteSnapshot writes the state machine at the applied slot (data, de-duplication
// records, the applied and compacted slots; never the promise or the log) to a file
// of its own format: a versioned header, length-prefixed records in key order and a
// SHA-256 trailer over everything before it, so that a torn, cut or altered file is
// refused (ErrCorrupt) before anything is taken from it. SnapshotInfo.Sum, the
// SHA-256 of the whole file, lets a receiver check a file it assembled.
//
// InstallSnapshot replaces the state machine with a snapshot newer than the applied
// slot by the same rewrite, so it is atomic with respect to crashes. It keeps the
// acceptor's promise (raised to the ballot of every entry it drops, as Compact does:
// a promise is never forgotten) and the accepted entries above the snapshot's slot.
// Restore creates a new store directory from a snapshot, for disaster recovery.
// Digest hashes the user data, so that replicas at the same applied slot can be
// compared.
package store
