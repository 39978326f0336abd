//go:build ballotfaults

package store

// DiskFaults make a store's file fail as a failing disk would: only binaries
// built with the ballotfaults tag have this, for tests of a replica whose disk
// fails (server/faults_on.go, BALLOT_FAULTS).
type DiskFaults struct {
	// WritesOK and SyncsOK are how many writes (buntdb transactions) and fsyncs
	// of the store's file succeed before every later one fails with EIO;
	// negative: never fails.
	WritesOK, SyncsOK int64
	// ArmedBy, when not empty, is a file: writes and fsyncs are counted only once
	// it exists.
	ArmedBy string
}

// WithDiskFaults returns o with the disk faults f.
func (o Options) WithDiskFaults(f DiskFaults) Options {
	o.faults = newDiskFaults(f.WritesOK, f.SyncsOK, f.ArmedBy)
	return o
}
