//go:build ballotfaults

package server

import (
	"fmt"
	"os"
	"strings"
)

// loadFaults reads BALLOT_FAULTS: a comma-separated list of local-reads and
// forget-promises.
func loadFaults() (faults, error) {
	var f faults
	for _, name := range strings.Split(os.Getenv("BALLOT_FAULTS"), ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "local-reads":
			f.localReads = true
		case "forget-promises":
			f.forgetPromises = true
		default:
			return f, fmt.Errorf("BALLOT_FAULTS: unknown fault %q (want local-reads, forget-promises)", name)
		}
	}
	return f, nil
}
