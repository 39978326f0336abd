package peer

// Durable is what a replica had on stable storage when it (re)started: all the
// acceptor state, and how far the state machine had applied the log.
type Durable struct {
	// Promised is the highest ballot promised. An accepted entry implies a promise
	// of its ballot, so New takes the higher of Promised and every entry's ballot.
	Promised Ballot
	// Entries are the accepted entries still in the log, in any order.
	Entries []Entry
	// Applied is the last slot the state machine applied; every slot up to it is
	// chosen and needs no entry.
	Applied uint64
	// Compacted is the slot up to which the log was compacted (Replica.Compact,
	// Replica.InstallSnapshot): no entry up to it is kept, here or in Entries. It is
	// never above Applied.
	Compacted uint64
	// RebuildTo is non-zero for a replica that lost its stable storage and is
	// rebuilding it from the others: it may have accepted entries up to this slot
	// before the loss, and could have helped choose them, so until its chosen prefix
	// reaches RebuildTo it neither campaigns nor promises a prepare that asks about
	// a slot up to there. The caller learns the slot from a majority of the other
	// replicas (their highest accepted slot) and makes Promised at least the highest
	// ballot they promised; see docs/design.md.
	RebuildTo uint64
}

// SnapshotWanted asks the caller to fetch a snapshot of the state machine from
// replica From, taken at slot Index or later, and to hand it to InstallSnapshot:
// this replica lacks chosen slots that From no longer keeps in its log.
type SnapshotWanted struct {
	From  uint64
	Index uint64
}

// ReadState tells the caller that the linearizable read identified by Token may be
// served once the state machine has applied every slot up to Index.
type ReadState struct {
	Token uint64
	Index uint64
}

// Ready is a batch of work for the caller; see the package comment for the order in
// which it must be carried out.
type Ready struct {
	// SavePromised is true when Promised must be written to stable storage.
	SavePromised bool
	Promised     Ballot
	// Entries must be written to stable storage (each replacing any entry at the
	// same slot) before Messages are sent.
	Entries []Entry
	// Messages are to be sent after Promised and Entries are durable.
	Messages []Message
	// Committed are chosen entries to apply, in slot order, each following the last.
	Committed []Entry
	// Reads may be served once the state machine has applied up to their Index.
	Reads []ReadState
	// FailedReads are tokens of reads this replica can no longer confirm (it lost
	// leadership); the caller answers them with an error.
	FailedReads []uint64
	// Leader is the replica this one believes leads (0: none known), and IsLeader
	// whether that is this replica.
	Leader   uint64
	IsLeader bool
	// Snapshot, when Index is non-zero, asks for a snapshot (see SnapshotWanted).
	// It is repeated while the need lasts, at most once per election timeout.
	Snapshot SnapshotWanted
	// LeaderChanged is true when Leader or IsLeader differ from the previous Ready.
	// Proposals waiting for a result may never get one after a change: the caller
	// fails them (the client retries with the same sequence number).
	LeaderChanged bool
}

// Status is a replica's view of itself, for operators.
type Status struct {
	ID       uint64
	Leader   uint64
	IsLeader bool
	Promised Ballot
	// Chosen: every slot up to it is known to be chosen.
	Chosen uint64
	// Applied: every slot up to it has been handed to the caller to apply.
	Applied uint64
	// LogEntries is the number of accepted entries held in memory.
	LogEntries int
	// Compacted: no log entry up to this slot is kept.
	Compacted uint64
	// RebuildTo: non-zero while the replica rebuilds lost storage (Durable.RebuildTo).
	RebuildTo uint64
	// LeaderCommit is the highest commit point a leader has announced to this
	// replica (its own chosen prefix, if it leads); Chosen below it means the
	// replica is catching up.
	LeaderCommit uint64
	Members      []uint64
}
