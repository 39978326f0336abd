//go:build ballotfaults

package server

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ballot-kv/ballot/store"
)

// faultNames lists what BALLOT_FAULTS accepts, for its error message.
const faultNames = "local-reads, forget-promises, write-error-after=N, fsync-error-after=N, disk-faults-armed-by=FILE"

// loadFaults reads BALLOT_FAULTS: a comma-separated list of local-reads,
// forget-promises, write-error-after=N and fsync-error-after=N (the store's file
// fails every write or fsync after the first N, with EIO) and
// disk-faults-armed-by=FILE (those N are counted only once FILE exists).
func loadFaults() (faults, error) {
	var f faults
	for _, item := range strings.Split(os.Getenv("BALLOT_FAULTS"), ",") {
		name, value, hasValue := strings.Cut(strings.TrimSpace(item), "=")
		count := func() (faultAfter, error) {
			n, err := strconv.ParseInt(value, 10, 64)
			if !hasValue || err != nil || n < 0 {
				return faultAfter{}, fmt.Errorf("BALLOT_FAULTS: %s wants a count of 0 or more, got %q", name, value)
			}
			return faultAfter{on: true, n: n}, nil
		}
		var err error
		switch name {
		case "":
		case "local-reads":
			f.localReads = true
		case "forget-promises":
			f.forgetPromises = true
		case "write-error-after":
			f.writeErrors, err = count()
		case "fsync-error-after":
			f.fsyncErrors, err = count()
		case "disk-faults-armed-by":
			if value == "" {
				err = fmt.Errorf("BALLOT_FAULTS: %s wants a file name", name)
			}
			f.armedBy = value
		default:
			err = fmt.Errorf("BALLOT_FAULTS: unknown fault %q (want %s)", name, faultNames)
		}
		if err != nil {
			return f, err
		}
	}
	return f, nil
}

// storeOptions adds the disk faults to the store's options.
func (f faults) storeOptions(o store.Options) store.Options {
	if !f.writeErrors.on && !f.fsyncErrors.on {
		return o
	}
	return o.WithDiskFaults(store.DiskFaults{
		WritesOK: f.writeErrors.count(),
		SyncsOK:  f.fsyncErrors.count(),
		ArmedBy:  f.armedBy,
	})
}
