package server

// faults are deliberate protocol violations for proving that the checkers catch
// them, and failing disks for proving that a replica stops when its disk fails.
// Only a binary built with the ballotfaults tag can turn them on (through the
// BALLOT_FAULTS environment variable); in every other build loadFaults returns
// none, and storeOptions passes the options through.
type faults struct {
	// localReads: answer linearizable reads from the local copy, whoever
	// receives them, without confirming leadership.
	localReads bool
	// forgetPromises: on start, forget the acceptor's promised ballot and accepted
	// entries (what a replica whose fsync lied would do after a crash).
	forgetPromises bool
	// writeErrors and fsyncErrors: the store's file fails every write (buntdb
	// transaction) or fsync after the first n, with EIO.
	writeErrors, fsyncErrors faultAfter
	// armedBy, when not empty, is a file whose existence starts the counting of
	// writeErrors and fsyncErrors: a test creates it when the failures may begin.
	armedBy string
}

// faultAfter is a fault that strikes after n successful calls, if on.
type faultAfter struct {
	on bool
	n  int64
}

// count is the number of calls that succeed; -1: all of them.
func (f faultAfter) count() int64 {
	if !f.on {
		return -1
	}
	return f.n
}
