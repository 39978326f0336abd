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
			err = command.ValidateBatch(e.Data)
		case peer.KindConfig:
			_, err = decodeMembership(e.Data)
		}
		if err != nil {
			return fmt.Errorf("%w: slot %d: %w", errBadEntry, e.Slot, err)
		}
	}
	return nil
}

// errStaleConfig: a peer message carries a configuration entry that does not
// move to a later configuration.
var errStaleConfig = errors.New("configuration entry that is not later than the configuration in force")

// checkConfigEpochs reports the first configuration entry above applied whose
// epoch is not above both sentIn, the epoch of the configuration the message was
// sent in, and current, this replica's. A leader of epoch E proposes only epoch
// E+1, and every slot it decides lies above the slots of earlier configurations;
// so such an entry comes from a faulty or hostile peer. Applied, it would end this
// replica's configuration with none to follow, and the replica would wait for ever.
// Entries at or below applied are skipped: they are retransmissions of slots this
// replica has applied, which the core ignores.
func checkConfigEpochs(es []peer.Entry, sentIn, current, applied uint64) error {
	floor := max(sentIn, current)
	for _, e := range es {
		if e.Kind != peer.KindConfig || e.Slot <= applied {
			continue
		}
		m, err := decodeMembership(e.Data)
		if err != nil {
			continue // checkEntries refuses it
		}
		if m.epoch <= floor {
			return fmt.Errorf("%w: slot %d: epoch %d, sent in epoch %d, this replica in epoch %d",
				errStaleConfig, e.Slot, m.epoch, sentIn, current)
		}
	}
	return nil
}
