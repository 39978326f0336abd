package server

// faults are deliberate protocol violations for proving that the checkers catch
// them. Only a binary built with the ballotfaults tag can turn them on (through
// the BALLOT_FAULTS environment variable); in every other build loadFaults returns
// none.
type faults struct {
	// localReads: answer linearizable reads from the local copy, whoever
	// receives them, without confirming leadership.
	localReads bool
	// forgetPromises: on start, forget the acceptor's promised ballot and accepted
	// entries (what a replica whose fsync lied would do after a crash).
	forgetPromises bool
}
