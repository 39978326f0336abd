/**
 * Ballot peer service: Multi-Paxos between replicas. Only replicas call it; it
 * listens on the peer address of each line of replicas.txt, apart from the client
 * service, so it can be firewalled. Wire format as for the client service: framed
 * transport, binary protocol.
 *
 * Names follow the Paxos papers: prepare/Promise is phase 1 (P1a/P1b), accept/Accepted
 * is phase 2 (P2a/P2b), execute is the commit notice (P3) that also carries chosen
 * entries to a replica that missed them. fetch_snapshot is not part of Paxos: it
 * copies a replica's snapshot of its store, in chunks, to a replica that needs log
 * entries the other has already discarded.
 *
 * An acceptor writes its promise and every accepted entry to disk (fsync) before it
 * answers.
 */
namespace go peerapi
namespace py ballot.peer
namespace cpp ballot.peer
namespace java org.ballotkv.peer
namespace js BallotPeer
namespace netstd Ballot.Peer
namespace rb Ballot.Peer

/** Proposal number: ordered by round, then by replica id; unique per replica. */
struct Ballot {
  1: i64 round
  2: i64 replica
}

enum EntryKind {
  /** data is a serialized CommandBatch. */
  COMMANDS = 0,
  /** Fills a slot that a new leader found empty; applies nothing. */
  NOOP = 1,
  /**
   * data is a serialized Configuration: the new members. Its slot is the last the
   * current members choose; the new configuration runs from the next slot.
   */
  CONFIG = 2,
}

/** One log slot's proposal. */
struct Entry {
  1: i64 slot
  /** Ballot at which the value was proposed (and accepted). */
  2: Ballot ballot
  3: EntryKind kind
  4: binary data
}

enum Op {
  PUT = 0,
  REMOVE = 1,
}

/** One client write, as it is stored in the log. */
struct Command {
  1: i64 client_id
  2: i64 seq
  3: Op op
  4: string key
  5: binary value
}

/** The commands a leader batched into one slot, applied in order. */
struct CommandBatch {
  1: list<Command> commands
}

struct PrepareRequest {
  1: i64 sender
  2: Ballot ballot
  /** Report accepted entries from this slot on. */
  3: i64 first_slot
  /**
   * Pre-vote: only ask whether the acceptor would promise, changing nothing. A
   * replica probes before it raises its ballot, so one that was cut off cannot
   * depose a working leader when it returns.
   */
  4: bool probe
  /**
   * Epoch of the configuration the sender is in. prepare and accept traffic flows
   * only between replicas in the same configuration: a replica refuses a request
   * from another epoch (ok false, its own epoch here), and one that sees a later
   * epoch fetches a snapshot from that replica to catch up.
   */
  5: i64 epoch
  /** The sender's peer address, so a replica that does not know it yet (one joining) can fetch a snapshot from it. */
  6: string sender_addr
}

struct Promise {
  1: i64 sender
  /** False: the acceptor refused (it promised a higher ballot, or it still follows a live leader). */
  2: bool ok
  /** Highest ballot this acceptor has promised. */
  3: Ballot promised
  /** Every entry this acceptor has accepted at slot >= first_slot. */
  4: list<Entry> accepted
  /** Every slot up to this one is known chosen at the acceptor. */
  5: i64 chosen
  /** Echoes the request's probe flag. */
  6: bool probe
  /**
   * Non-zero when ok is false because this acceptor has compacted its log up to
   * this slot, at or past first_slot: it can no longer report what it accepted
   * there. The candidate lacks chosen slots; it fetches a snapshot (fetch_snapshot)
   * before it campaigns again.
   */
  7: i64 compacted
  /** Epoch of the configuration the acceptor is in. */
  8: i64 epoch
}

struct AcceptRequest {
  1: i64 sender
  2: Ballot ballot
  /** Entries to accept; empty for a heartbeat. */
  3: list<Entry> entries
  /** Every slot up to this one is chosen (the leader's commit point). */
  4: i64 commit
  /** Heartbeat round, echoed back; confirms leadership for linearizable reads. */
  5: i64 round_trip
  /** Epoch of the sender's configuration (see PrepareRequest.epoch). */
  6: i64 epoch
  /** The sender's peer address (see PrepareRequest.sender_addr). */
  7: string sender_addr
}

struct Accepted {
  1: i64 sender
  /** False: the acceptor has promised a higher ballot and accepted nothing. */
  2: bool ok
  3: Ballot promised
  /** Every slot up to this one is known chosen at the acceptor (for catch-up). */
  4: i64 chosen
  5: i64 round_trip
  /** Epoch of the configuration the acceptor is in. */
  6: i64 epoch
}

struct ExecuteRequest {
  1: i64 sender
  2: Ballot ballot
  /** Chosen entries the receiver lacks, in slot order. */
  3: list<Entry> entries
  4: i64 commit
  /**
   * Non-zero: the leader has compacted its log up to this slot, so it cannot send
   * the entries the receiver lacks up to there; the receiver fetches a snapshot
   * from the leader (fetch_snapshot) and then the log after it.
   */
  5: i64 snapshot
  /** Epoch of the sender's configuration; chosen entries are taken from any epoch. */
  6: i64 epoch
  /** The sender's peer address (see PrepareRequest.sender_addr). */
  7: string sender_addr
}

struct Executed {
  1: i64 sender
  2: i64 chosen
  3: i64 epoch
}

/**
 * A request for part of a replica's snapshot file. A transfer starts with index 0 and
 * offset 0, then asks for the index the first chunk named, at the offset after the
 * bytes received so far, until it holds size bytes.
 */
struct SnapshotRequest {
  1: i64 sender
  /** The snapshot being fetched: 0 for the replica's latest; otherwise the index of a transfer being resumed. */
  2: i64 index
  /** Byte offset to read from; 0 when index is 0. */
  3: i64 offset
  /** Most bytes to return, at least 1 (the server may return fewer; it caps it at 4 MiB). */
  4: i32 max_bytes
}

/** Part of a snapshot file, and what the receiver needs to check the whole. */
struct SnapshotChunk {
  1: i64 sender
  /** Applied slot the snapshot holds; 0 when the replica has no snapshot to give. When it differs from the requested index the transfer restarts at offset 0 of this snapshot. */
  2: i64 index
  /** Size of the whole snapshot file in bytes. */
  3: i64 size
  /** SHA-256 of the whole file (32 bytes; empty when index is 0); the receiver checks it before using the file. */
  4: binary checksum
  /** Where data begins in the file: the requested offset, or 0 when the transfer restarts. */
  5: i64 offset
  /** The file's bytes from offset on, at most max_bytes of them; empty only at the end of the file. */
  6: binary data
}

/** One member of a configuration: its replicas.txt line. */
struct Member {
  1: i64 id
  2: string client_addr
  3: string peer_addr
}

/**
 * The configuration a cluster committed: its members, numbered by an epoch. Every
 * replica stores it durably (and in its snapshots) and follows it rather than its
 * replicas.txt once it has one.
 */
struct Configuration {
  1: i64 epoch
  2: list<Member> members
}

struct InquiryRequest {
  1: i64 sender
}

/**
 * What a replica that starts without its acceptor state (a new or wiped data
 * directory) learns from the others before it votes: see docs/design.md.
 */
struct Inquiry {
  1: i64 sender
  /** Highest ballot this replica has promised or accepted at. */
  2: Ballot promised
  /**
   * Highest slot this replica has accepted an entry for or applied, or (while it is
   * rebuilding lost storage itself) may have accepted before the loss.
   */
  3: i64 highest
  /** True while this replica is itself starting without state: its answer carries nothing. */
  4: bool starting
  /** Epoch of the configuration this replica is in (0: it has none yet). */
  5: i64 epoch
  /** Ids of that configuration's members. */
  6: list<i64> members
  /**
   * While starting (field 4): a number this process chose at random when it
   * started, so that the others can tell this start from a later one.
   */
  7: i64 start_nonce
  /**
   * The start_nonce the asking replica reported in the round in which this
   * replica found every replica starting and founded the cluster (0: none, or
   * this replica did not found it). It tells the asker that the cluster was
   * founded while it was starting, so it never voted in it and has nothing to
   * rebuild.
   */
  8: i64 founded_with
}

service Peer {
  /** Phase 1: promise to ignore ballots lower than req.ballot; report accepted entries. */
  Promise prepare(1: PrepareRequest req)
  /** Phase 2: accept entries at req.ballot unless a higher ballot was promised. Also the heartbeat. */
  Accepted accept(1: AcceptRequest req)
  /** Learn chosen entries and the commit point. */
  Executed execute(1: ExecuteRequest req)
  /**
   * Read part of a snapshot of the replica's store, for a replica whose next log
   * entries were discarded here. Answered from files on disk; changes nothing. A
   * replica replaces a snapshot when it takes a newer one, so a transfer that is
   * resumed may be told to start again on the newer one (see SnapshotChunk.index).
   */
  SnapshotChunk fetch_snapshot(1: SnapshotRequest req)
  /** What a replica starting without its acceptor state must know before it votes. */
  Inquiry inquire(1: InquiryRequest req)
}
