package server

import (
	"errors"
	"fmt"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

// errBadEntry: a peer message carries a log entry whose data this replica could
// not apply.
var errBadEntry = errors.New("entry whose data does not decode")

// checkEntries reports the first entry whose data the store could not apply: a
// batch of commands or a configuration that does not decode. Such an entry must
// never reach the log. Once chosen it would stop every replica that applies it,
// and stop it again at every restart, since the log keeps it; so a request that
// carries one is refused and a reply that carries one is dropped, before the
// core sees either. A replica's own leader only proposes entries it encoded.
func checkEntries(es []peer.Entry) error {
	for _, e := range es {
		var err error
		switch e.Kind {
		case peer.KindCommands:
			_, err = command.DecodeBatch(e.Data)
		case peer.KindConfig:
			_, err = decodeMembership(e.Data)
		}
		if err != nil {
			return fmt.Errorf("%w: slot %d: %w", errBadEntry, e.Slot, err)
		}
	}
	return nil
}
