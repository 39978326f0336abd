package store

import (
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/ballot-kv/ballot/peer"
)

// Save durably records a promise (when savePromised) and accepted entries, each
// replacing the entry at its slot, in one buntdb transaction followed by one fsync:
// when Save returns nil, all of it is on disk. This is the acceptor's rule that
// nothing is sent before the state it depends on is durable, and one call per
// Ready is group commit.
//
// A promise is never lowered: if promised orders before the stored promise, the
// stored one stays. An entry with slot 0 or an unknown kind is refused, and nothing
// is written.
func (s *Store) Save(savePromised bool, promised peer.Ballot, entries []peer.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if !savePromised && len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if e.Slot == 0 || !validKind(e.Kind) {
			return fmt.Errorf("save slot %d in %s: %w: kind %d", e.Slot, s.path, ErrInvalidEntry, e.Kind)
		}
	}
	added := 0
	err := s.update("save", func(tx *buntdb.Tx) error {
		if savePromised {
			if err := s.savePromised(tx, promised); err != nil {
				return err
			}
		}
		for _, e := range entries {
			_, replaced, err := tx.Set(logKey(e.Slot), encodeEntry(e), nil)
			if err != nil {
				return fmt.Errorf("save slot %d in %s: %w", e.Slot, s.path, err)
			}
			if !replaced {
				added++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.logEntries.Add(int64(added))
	return s.sync("save")
}

func (s *Store) savePromised(tx *buntdb.Tx, promised peer.Ballot) error {
	v, err := tx.Get(keyPromised)
	switch {
	case errors.Is(err, buntdb.ErrNotFound):
	case err != nil:
		return fmt.Errorf("save promise in %s: %w", s.path, err)
	default:
		stored, err := decodeBallot(v)
		if err != nil {
			return fmt.Errorf("save promise in %s: %w", s.path, corruptRecord(keyPromised, err))
		}
		if promised.Less(stored) {
			s.logger.Warn("refusing to lower the promised ballot", "stored", stored, "given", promised)
			return nil
		}
	}
	if _, _, err := tx.Set(keyPromised, encodeBallot(promised), nil); err != nil {
		return fmt.Errorf("save promise in %s: %w", s.path, err)
	}
	return nil
}

// Durable returns the acceptor state and the applied slot, as a restarting replica
// needs them. Entries are in slot order. Promised is the highest of the stored
// promise and every entry's ballot: accepting at a ballot implies promising it, and
// a torn write can keep an entry while losing the promise written with it.
func (s *Store) Durable() (peer.Durable, error) {
	var d peer.Durable
	err := s.view(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyPromised)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
		case err != nil:
			return err
		default:
			if d.Promised, err = decodeBallot(v); err != nil {
				return corruptRecord(keyPromised, err)
			}
		}
		if d.Applied, err = getSlot(tx, keyApplied); err != nil {
			return corruptRecord(keyApplied, err)
		}
		if d.Compacted, err = getSlot(tx, keyCompacted); err != nil {
			return corruptRecord(keyCompacted, err)
		}
		if d.RebuildTo, err = getSlot(tx, keyRebuild); err != nil {
			return corruptRecord(keyRebuild, err)
		}
		var iterErr error
		err = tx.AscendRange("", prefixLog, endLog, func(key, value string) bool {
			slot, err := slotOfLogKey(key)
			if err != nil {
				iterErr = corruptRecord(key, err)
				return false
			}
			e, err := decodeEntry(slot, value)
			if err != nil {
				iterErr = fmt.Errorf("slot %d: %w", slot, corruptRecord(key, err))
				return false
			}
			d.Entries = append(d.Entries, e)
			return true
		})
		if iterErr != nil {
			return iterErr
		}
		return err
	})
	if err != nil {
		return peer.Durable{}, fmt.Errorf("read durable state from %s: %w", s.path, viewErr(err))
	}
	for _, e := range d.Entries {
		if d.Promised.Less(e.Ballot) {
			d.Promised = e.Ballot
		}
	}
	return d, nil
}

// LogEntries returns the number of accepted entries stored.
func (s *Store) LogEntries() int { return int(s.logEntries.Load()) }

// Compacted returns the slot up to which the log has been compacted: no entry at or
// below it is kept. It is never above Applied.
func (s *Store) Compacted() uint64 { return s.compacted.Load() }

// Compact deletes the log entries with slot <= upTo and durably records upTo as the
// compacted slot (which never goes down), then syncs. upTo must not be above the
// applied slot: an entry not yet applied is never deleted, and asking to fails with
// ErrNotApplied and changes nothing.
//
// Accepting an entry implies promising its ballot, and Durable counts entries'
// ballots as promises; so that compaction never lowers the promise Durable reports,
// Compact first raises the stored promise to the highest ballot it deletes, in the
// transaction before the deletes. That transaction also records the compacted slot:
// a torn write can then leave entries at or below it (the next Compact deletes
// them), never a compacted slot below an entry already deleted.
func (s *Store) Compact(upTo uint64) error { return s.compact(upTo, false) }

// DropLog deletes every log entry, those above the applied slot too, and records
// the applied slot as compacted, as Compact does. A replica calls it when it
// starts a new configuration: the entries after the last slot of the old one
// were accepted under it and can never be chosen.
func (s *Store) DropLog() error { return s.compact(s.applied.Load(), true) }

func (s *Store) compact(upTo uint64, all bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if applied := s.applied.Load(); upTo > applied {
		return fmt.Errorf("compact %s up to slot %d: %w: applied slot is %d", s.path, upTo, ErrNotApplied, applied)
	}
	var (
		keys    []string
		highest peer.Ballot
		stored  peer.Ballot
	)
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyPromised)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
		case err != nil:
			return err
		default:
			if stored, err = decodeBallot(v); err != nil {
				return corruptRecord(keyPromised, err)
			}
		}
		var iterErr error
		end := logKey(upTo + 1)
		if all {
			end = endLog
		}
		err = tx.AscendRange("", prefixLog, end, func(key, value string) bool {
			r := reader{s: value}
			b := peer.Ballot{Round: r.uvarint(), ID: r.uvarint()}
			if r.err != nil {
				iterErr = corruptRecord(key, r.err)
				return false
			}
			if highest.Less(b) {
				highest = b
			}
			keys = append(keys, key)
			return true
		})
		if iterErr != nil {
			return iterErr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("compact %s up to slot %d: %w", s.path, upTo, err)
	}
	raise, advance := stored.Less(highest), upTo > s.compacted.Load()
	if len(keys) == 0 && !advance {
		return nil
	}
	if raise || advance {
		err := s.update("compact", func(tx *buntdb.Tx) error {
			if raise {
				if _, _, err := tx.Set(keyPromised, encodeBallot(highest), nil); err != nil {
					return err
				}
			}
			if advance {
				if _, _, err := tx.Set(keyCompacted, encodeSlot(upTo), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("compact %s up to slot %d: record promise and compacted slot: %w", s.path, upTo, err)
		}
		if advance {
			s.compacted.Store(upTo)
		}
	}
	if len(keys) > 0 {
		err = s.update("compact", func(tx *buntdb.Tx) error {
			for _, k := range keys {
				if _, err := tx.Delete(k); err != nil {
					return fmt.Errorf("delete %s: %w", k, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("compact %s up to slot %d: %w", s.path, upTo, err)
		}
		s.logEntries.Add(-int64(len(keys)))
	}
	s.logger.Debug("compacted the log", "up_to", upTo, "deleted", len(keys))
	return s.sync("compact")
}

// SetRebuildTo records durably (fsync) that this replica lost its storage and
// rebuilds it up to slot (peer.Durable.RebuildTo); 0 ends the rebuild. Durable
// reports it, so a crash during the rebuild does not forget it.
func (s *Store) SetRebuildTo(slot uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	err := s.update("rebuild", func(tx *buntdb.Tx) error {
		if slot == 0 {
			_, err := tx.Delete(keyRebuild)
			if errors.Is(err, buntdb.ErrNotFound) {
				return nil
			}
			return err
		}
		_, _, err := tx.Set(keyRebuild, encodeSlot(slot), nil)
		return err
	})
	if err != nil {
		return err
	}
	return s.sync("rebuild")
}

// SetConfig records durably (fsync) the cluster's committed configuration, an
// encoding the store does not interpret. It is part of the replicated state:
// snapshots carry it, and installing one replaces it.
func (s *Store) SetConfig(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	err := s.update("config", func(tx *buntdb.Tx) error {
		// Open redoes the last Apply's intent when it reaches the applied slot;
		// one that wrote the configuration would undo this. Open completed it.
		if _, err := tx.Delete(keyIntent); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
			return err
		}
		_, _, err := tx.Set(keyConfig, string(data), nil)
		return err
	})
	if err != nil {
		return err
	}
	return s.sync("config")
}

// Config returns the committed configuration SetConfig recorded, or nil if none.
func (s *Store) Config() ([]byte, error) {
	var out []byte
	err := s.view(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyConfig)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = []byte(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read configuration from %s: %w", s.path, viewErr(err))
	}
	return out, nil
}
