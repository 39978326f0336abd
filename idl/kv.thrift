/**
 * Ballot client service: the contract between a Ballot cluster and its clients.
 *
 * Wire format: framed transport (a 4-byte big-endian length before every message)
 * carrying the binary protocol (TBinaryProtocol, strict), on the client address of
 * any replica listed in replicas.txt.
 *
 * Every write carries a (client_id, seq) pair. A replica remembers, per client_id,
 * the highest seq it has applied and that request's result, so a request retried with
 * the same pair after a timeout or Unavailable is answered, never applied twice.
 * A client_id must have at most one write outstanding at a time, and its seq must
 * grow by one with every new write (retries reuse the seq). The cluster remembers
 * at most 100,000 client_ids, those that wrote most recently: one is forgotten only
 * once at least 90,000 others have written since its last write, and a retry of
 * that write is then applied again.
 */
namespace go kvapi
namespace py ballot.kv
namespace cpp ballot.kv
namespace java org.ballotkv.kv
namespace js BallotKV
namespace netstd Ballot.KV
namespace rb Ballot.KV

/** Largest accepted key, in bytes of its UTF-8 encoding. */
const i32 MAX_KEY_BYTES = 4096
/** Largest accepted value, in bytes. */
const i32 MAX_VALUE_BYTES = 1048576

/**
 * The replica that received the request does not lead the cluster. The request was
 * not proposed, so the client may send it at once to leader_addr (or, when that is
 * empty because no leader is known yet, to any other replica after a short pause),
 * with the same client_id and seq.
 */
exception NotLeader {
  /** Client address (host:port) of the leader this replica knows, or "" if none. */
  1: string leader_addr
  /** Replica id of that leader, or 0 if none. */
  2: i64 leader_id
  /** Human-readable explanation, for logs. */
  3: string message
}

/**
 * No quorum answered within the request's deadline, or leadership was lost while
 * the request was in flight. A write may or may not have been applied: retry it with
 * the same client_id and seq, and it takes effect at most once.
 */
exception Unavailable {
  /** Human-readable explanation, for logs. */
  1: string message
}

/**
 * The request is malformed: an empty key, a key that is not UTF-8, a key or value
 * over its limit, or a negative client_id or seq. Final: retrying cannot succeed.
 */
exception InvalidArgument {
  /** Says what is wrong, naming the limit that was exceeded. */
  1: string message
  /** Which argument: "key", "value", "client_id", "seq", "consistency", or backup's "index", "offset" or "max_bytes". */
  2: string field
  /** The limit in bytes that was exceeded, or 0. */
  3: i64 limit
}

/** get: the key holds no value (it was never written, or it was removed). Final. */
exception NotFound {
  /** The key that was asked for. */
  1: string key
}

/** How a get is served. */
enum Consistency {
  /**
   * Default. The leader confirms it still leads with one round of heartbeats to a
   * majority and answers once it has applied every write chosen before the get
   * arrived: the result reflects every write acknowledged before the call.
   */
  LINEARIZABLE = 0,
  /** Any replica answers from its local copy at once; it may lag behind. */
  STALE = 1,
}

/** What get returns. */
struct GetResult {
  /** The stored bytes, exactly as put wrote them (may be empty). */
  1: binary value
  /** Log slot up to which the answering replica had applied writes. */
  2: i64 applied
}

/** What put and remove return once the write is applied. */
struct WriteResult {
  /** Log slot in which the write was chosen. */
  1: i64 slot
  /** Whether the key held a value before this write (put: replaced; remove: deleted). */
  2: bool existed
}

/** One replica of a configuration: a line of replicas.txt. */
struct ReplicaAddress {
  1: i64 id
  2: string client_addr
  3: string peer_addr
}

/** One replica's view of itself, for operators and `ballot status`. */
struct ReplicaStatus {
  /** This replica's id in replicas.txt. */
  1: i64 id
  /** Where it serves this KV service (host:port). */
  2: string client_addr
  /** Where it serves the peer service, for replicas only (host:port). */
  3: string peer_addr
  /** True when this replica currently leads. */
  4: bool is_leader
  /** The leader this replica knows, 0 if none. */
  5: i64 leader_id
  /** Highest ballot this replica has promised, as "round.replica". */
  6: string ballot
  /** Highest log slot applied to the store. */
  7: i64 applied
  /** Highest log slot known to be chosen (every slot up to it is chosen). */
  8: i64 chosen
  /** Number of log entries held by the acceptor. */
  9: i64 log_entries
  /** Number of keys in the store. */
  10: i64 keys
  /** Members of the configuration this replica follows. */
  11: list<i64> members
  /** Applied slot of this replica's latest snapshot of its store, 0 if it has none. */
  12: i64 snapshot_index
  /** Log entries up to this slot have been discarded (they are in the snapshot); 0 if none. */
  13: i64 compacted
  /** Bytes of this replica's data directory (log, store and snapshots). */
  14: i64 disk_bytes
  /** Epoch of the committed configuration this replica follows (members lists its ids). */
  15: i64 config_epoch
  /** Whether this replica is a member of that configuration. */
  16: bool member
  /** That configuration's members with the addresses it records. */
  17: list<ReplicaAddress> member_addresses
  /**
   * Non-empty while this replica is starting and serves nothing yet: what it is
   * waiting for. Until then every other call answers Unavailable, so a client
   * goes on to another replica; the other fields are unset.
   */
  18: string starting
}

/**
 * A fingerprint of one replica's store at one applied slot. Replicas that have
 * applied the same slot hold the same keys and values, so their digests at that
 * slot are equal; different digests at the same slot mean the replicas diverged.
 */
struct Digest {
  /** The applied slot the digest was taken at. */
  1: i64 applied
  /** Number of keys in the store at that slot. */
  2: i64 keys
  /**
   * SHA-256 (32 bytes) over every key and its value at that slot, keys in ascending
   * byte order, each key and each value written as its length in bytes (8 bytes,
   * big-endian) followed by its bytes.
   */
  3: binary sha256
}

/** Part of a snapshot taken for backup: a file holding the store as of one applied slot. */
struct BackupChunk {
  /** Applied slot the snapshot holds; pass it to the next backup call. */
  1: i64 index
  /** Size of the whole snapshot file in bytes. */
  2: i64 size
  /** SHA-256 (32 bytes) of the whole file; check it once every chunk is written. */
  3: binary checksum
  /** Where data begins in the file: the offset that was asked for. */
  4: i64 offset
  /** The file's bytes from offset on, at most max_bytes of them; empty only at the end of the file. */
  5: binary data
}


/** The configuration a reconfigure call committed. */
struct ReconfigureResult {
  /** Its epoch. */
  1: i64 epoch
  /** The log slot whose entry carried it (0 when nothing had to change). */
  2: i64 slot
  3: list<ReplicaAddress> members
}

/**
 * The client service, served on the client address of every replica (framed
 * transport, strict binary protocol). Any replica accepts any call; one that cannot
 * serve it answers NotLeader with the leader's address. Every error is one of the
 * exceptions NotLeader, Unavailable, InvalidArgument and NotFound; a transport error
 * (connection refused or closed, a timeout) leaves the outcome unknown and is handled
 * like Unavailable. A message over MAX_VALUE_BYTES + MAX_KEY_BYTES + 64 KiB is
 * refused by closing the connection.
 */
service KV {
  /**
   * Returns the value stored under key.
   *
   * Throws NotFound when the key holds no value (final); NotLeader when a
   * LINEARIZABLE read reaches a replica that does not lead (resend to leader_addr);
   * Unavailable when the leader could not confirm its leadership in time (retry);
   * InvalidArgument for a bad key or consistency (final).
   */
  GetResult get(
    /** 1..MAX_KEY_BYTES bytes of UTF-8. */
    1: string key,
    /** LINEARIZABLE (the default, served by the leader) or STALE (any replica). */
    2: Consistency consistency)
    throws (1: NotFound not_found, 2: NotLeader not_leader, 3: Unavailable unavailable,
            4: InvalidArgument invalid)

  /**
   * Stores value under key, replacing any previous value, and returns once a majority
   * of replicas has durably accepted the write and the leader has applied it.
   *
   * Throws NotLeader (nothing was proposed: resend the same client_id and seq to
   * leader_addr); Unavailable (the write may or may not have been applied: retry with
   * the same client_id and seq, and it takes effect once); InvalidArgument for an
   * empty, non-UTF-8 or oversized key, a value over MAX_VALUE_BYTES, or a negative
   * client_id or seq (final; the message names the limit).
   */
  WriteResult put(
    /**
     * Identifies one writer for de-duplication: a random positive number, kept for a
     * sequence of writes with at most one outstanding. 0 opts out of de-duplication
     * (a retried write may then be applied twice).
     */
    1: i64 client_id,
    /**
     * The writer's sequence number: 1 for its first write, one more for each new
     * write; a retry of the same write reuses it. Must be positive unless client_id
     * is 0.
     */
    2: i64 seq,
    /** 1..MAX_KEY_BYTES bytes of UTF-8. */
    3: string key,
    /** 0..MAX_VALUE_BYTES bytes, stored as given. */
    4: binary value)
    throws (1: NotLeader not_leader, 2: Unavailable unavailable, 3: InvalidArgument invalid)

  /**
   * Deletes key (the CLI calls it `delete`; Thrift reserves that word). Deleting a
   * missing key succeeds with existed = false. Same guarantees and exceptions as put.
   */
  WriteResult remove(
    /** As for put. */
    1: i64 client_id,
    /** As for put: one more than the writer's previous write, reused on retry. */
    2: i64 seq,
    /** 1..MAX_KEY_BYTES bytes of UTF-8. */
    3: string key)
    throws (1: NotLeader not_leader, 2: Unavailable unavailable, 3: InvalidArgument invalid)

  /** This replica's status; answered locally by every replica, leader or not. */
  ReplicaStatus status()

  /**
   * A digest of this replica's store at its applied slot, taken from a consistent
   * view; answered locally by every replica, leader or not. Compare the digests of
   * replicas at the same applied slot to check that they hold the same data.
   *
   * Throws Unavailable when the replica cannot read its store now (it is starting
   * or stopping): retry later or ask another replica.
   */
  Digest digest()
    throws (1: Unavailable unavailable)

  /**
   * Reads a backup of this replica's store, one chunk per call; answered locally by
   * every replica, leader or not (ask the leader for the most recent data). Index 0
   * and offset 0 asks the replica to take a fresh consistent snapshot now and returns
   * its first chunk. Later calls go to the same replica with the returned index and
   * the offset after the bytes received so far, until size bytes have arrived; then
   * check the SHA-256 of the whole against checksum.
   *
   * Throws Unavailable when the replica could not take a snapshot, or no longer
   * holds the one asked for (it may keep only its latest): start again with index 0.
   * InvalidArgument for a negative index or offset, an offset beyond the file, an
   * offset other than 0 with index 0, or max_bytes below 1 (final; field names the
   * argument).
   */
  BackupChunk backup(
    /** 0 to take a new snapshot; otherwise the index the first chunk returned. */
    1: i64 index,
    /** Byte offset to read from: 0 with index 0, then the bytes received so far. */
    2: i64 offset,
    /** Most bytes to return, at least 1; the replica returns at most MAX_VALUE_BYTES. */
    3: i32 max_bytes)
    throws (1: Unavailable unavailable, 2: InvalidArgument invalid)

  /**
   * Replaces the cluster's members by members, through the log: the leader
   * proposes the new configuration as one log entry, the last slot of the current
   * configuration, and answers once it is chosen and applied; the new members
   * then run the log from the next slot, and a replica that is no longer a member
   * stops voting and answers clients with NotLeader. Any change is safe in one
   * call; to keep writes flowing, change one member at a time (ballot
   * reconfigure does) so that a majority of each new configuration is up to date.
   * Asking for the members the cluster already has changes nothing and returns
   * the current configuration.
   *
   * Throws NotLeader (resend to leader_addr); Unavailable when the change could
   * not be committed in time, or another change is under way (the configuration
   * in force may be either: check status and call again); InvalidArgument for an
   * empty list, more than 64 members, an id below 1, or an id or address listed
   * twice (final; nothing changes).
   */
  ReconfigureResult reconfigure(1: list<ReplicaAddress> members)
    throws (1: NotLeader not_leader, 2: Unavailable unavailable, 3: InvalidArgument invalid)
}
