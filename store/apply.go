package store

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/tidwall/buntdb"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

// Result is the outcome of one command applied by Apply.
type Result struct {
	ClientID, Seq uint64
	// Slot is the slot in which the command took effect. For a duplicate it is the
	// slot of the original (0 when the duplicate is older than the client's last
	// applied command, whose result is no longer kept).
	Slot uint64
	Op   command.Op
	Key  string
	// Existed reports whether the key existed before the command: a put replaced a
	// value, a remove removed one. For a duplicate it is the original's result.
	Existed bool
	// Duplicate: the client's command with this sequence number (or a later one) was
	// applied before, so this one changed nothing.
	Duplicate bool
}

// applyStage says how far apply goes; only tests stop early, to leave the file as a
// crash at that point would.
type applyStage int

const (
	stageIntent applyStage = iota + 1 // write the intent record only
	stageData                         // and the data, but not the applied slot
	stageDone                         // everything
)

// Apply applies chosen entries to the data, in slot order: entries[0].Slot must be
// the applied slot + 1 and each entry must follow the one before. A KindNoop entry
// only advances the applied slot; a KindCommands entry's data is decoded with
// command.DecodeBatch and its commands applied in order, each de-duplicated by
// (ClientID, Seq) unless ClientID is 0. Results are returned for every command of
// every entry, in order.
//
// All entries are checked and decoded before anything is written; an invalid one
// fails the whole call, naming its slot. Apply does not fsync; its writes reach the
// disk with the next Save or Compact, or at Close. A crash can lose the last Applies,
// but then it loses their applied slot too, and the replica applies those chosen
// slots again (from its log or its peers); an Apply a crash cuts in the middle is
// completed by Open. See the package comment.
func (s *Store) Apply(entries []peer.Entry) ([]Result, error) {
	return s.apply(entries, stageDone)
}

func (s *Store) apply(entries []peer.Entry, upTo applyStage) ([]Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	applied := s.applied.Load()
	batches := make([][]command.Command, len(entries))
	var config string // the last configuration entry's data, if any
	total := 0
	for i, e := range entries {
		if want := applied + 1 + uint64(i); e.Slot != want {
			return nil, fmt.Errorf("apply slot %d in %s: %w: next slot to apply is %d",
				e.Slot, s.path, ErrOutOfOrder, want)
		}
		switch e.Kind {
		case peer.KindNoop:
		case peer.KindConfig:
			config = string(e.Data)
		case peer.KindCommands:
			cmds, err := command.DecodeBatch(e.Data)
			if err != nil {
				return nil, fmt.Errorf("apply slot %d in %s: %w", e.Slot, s.path, err)
			}
			batches[i] = cmds
			total += len(cmds)
		default:
			return nil, fmt.Errorf("apply slot %d in %s: %w: kind %d", e.Slot, s.path, ErrInvalidEntry, e.Kind)
		}
	}
	first, last := entries[0].Slot, entries[len(entries)-1].Slot

	// Work out every write and result against the current state, then write.
	p := planner{index: make(map[string]int, 2*total), storedClients: s.clients,
		clients: make(map[uint64]dedupRecord), writers: len(s.clients)}
	results := make([]Result, 0, total)
	err := s.db.View(func(tx *buntdb.Tx) error {
		p.tx = tx
		for i, cmds := range batches {
			for j, c := range cmds {
				r, err := p.command(entries[i].Slot, uint64(j), c)
				if err != nil {
					return fmt.Errorf("slot %d command %d: %w", entries[i].Slot, j, err)
				}
				results = append(results, r)
			}
			if len(cmds) > 0 {
				if err := p.evictWriters(s.maxWriters); err != nil {
					return fmt.Errorf("slot %d: drop de-duplication records: %w", entries[i].Slot, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply in %s: %w", s.path, err)
	}
	if config != "" {
		// A configuration entry: the new configuration is state, written with the
		// rest (and redone from the intent like it).
		p.changes = append(p.changes, change{key: keyConfig, val: config})
	}

	if len(p.changes) > 0 {
		// 1. The intent: every write of this call, in one key, so that it is on disk
		// whole or not at all.
		in := intent{From: first, To: last, Changes: p.changes}
		err := s.update("apply", func(tx *buntdb.Tx) error {
			_, _, err := tx.Set(keyIntent, encodeIntent(in), nil)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("apply slots %d-%d: %w", first, last, err)
		}
		if upTo == stageIntent {
			return results, nil
		}
	}
	if upTo == stageData {
		// Only tests stop here: the data of a torn second transaction without
		// its applied slot.
		if err := s.update("apply", func(tx *buntdb.Tx) error { return writeChanges(tx, p.changes) }); err != nil {
			return nil, fmt.Errorf("apply slots %d-%d: %w", first, last, err)
		}
		s.userKeys.Add(p.keyDelta())
		s.mergeWriters(&p)
		return results, nil
	}
	// 2. The writes themselves and the applied slot, in one transaction (one
	// write() to the file), in the random order buntdb gives them. A torn tail
	// may keep the applied slot and lose some writes: Open redoes the intent of
	// the last Apply whenever it reaches the applied slot (finishInterruptedApply).
	err = s.update("apply", func(tx *buntdb.Tx) error {
		if err := writeChanges(tx, p.changes); err != nil {
			return err
		}
		_, _, err := tx.Set(keyApplied, encodeSlot(last), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply slots %d-%d: %w", first, last, err)
	}
	s.userKeys.Add(p.keyDelta())
	s.mergeWriters(&p)
	s.applied.Store(last)
	if p.evictions > 0 {
		s.logger.Info("dropped the de-duplication records of the writers silent longest",
			"records", p.evictions, "kept", len(s.clients), "limit", s.maxWriters, "slot", last)
	}
	return results, nil
}

// mergeWriters brings the table up to date with what p wrote to the file.
func (s *Store) mergeWriters(p *planner) {
	for id := range p.evicted {
		delete(s.clients, id)
	}
	maps.Copy(s.clients, p.clients) // a writer dropped and back again is in p.clients
}

// redoChanges performs those of changes the stored state lacks, and returns how
// many. Writing only what differs keeps a clean Open from growing the file.
func redoChanges(tx *buntdb.Tx, changes []change) (int, error) {
	var missing []change
	for _, c := range changes {
		v, err := tx.Get(c.key)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
			if !c.del {
				missing = append(missing, c)
			}
		case err != nil:
			return 0, err
		case c.del || v != c.val:
			missing = append(missing, c)
		}
	}
	return len(missing), writeChanges(tx, missing)
}

// writeChanges performs an intent's writes. Each is idempotent: doing them again
// after some or all were done leaves the same state.
func writeChanges(tx *buntdb.Tx, changes []change) error {
	for _, c := range changes {
		if c.del {
			if _, err := tx.Delete(c.key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
			continue
		}
		if _, _, err := tx.Set(c.key, c.val, nil); err != nil {
			return err
		}
	}
	return nil
}

// finishInterruptedApply redoes the writes of an Apply that a crash interrupted,
// and records its applied slot. Called by Open.
func (s *Store) finishInterruptedApply() error {
	var (
		in      intent
		found   bool
		applied uint64
	)
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		if applied, err = getSlot(tx, keyApplied); err != nil {
			return corruptRecord(keyApplied, err)
		}
		v, err := tx.Get(keyIntent)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if in, err = decodeIntent(v); err != nil {
			return corruptRecord(keyIntent, err)
		}
		found = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	// The intent is redone when the applied slot is below its end (the data and
	// applied slot were lost, or torn) or at it (the applied slot survived a tear
	// that may have lost some writes). Redoing a complete Apply's writes changes
	// nothing: every later change of those keys is an Apply, which replaces the
	// intent, and SetConfig removes it. An applied slot past the intent's end
	// means later Applies (with no writes) completed after it.
	if !found || in.To < applied {
		return nil
	}
	if in.From > applied+1 || in.From > in.To {
		return fmt.Errorf("open %s: %w: interrupted apply of slots %d-%d does not follow applied slot %d",
			s.path, ErrCorrupt, in.From, in.To, applied)
	}
	wasComplete := in.To == applied
	repaired := 0
	err = s.update("finish apply", func(tx *buntdb.Tx) error {
		var err error
		repaired, err = redoChanges(tx, in.Changes)
		if err != nil {
			return err
		}
		if !wasComplete {
			_, _, err = tx.Set(keyApplied, encodeSlot(in.To), nil)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("open %s: finish apply of slots %d-%d: %w", s.path, in.From, in.To, err)
	}
	if !wasComplete || repaired > 0 {
		s.logger.Info("completed an apply interrupted by a crash", "from", in.From, "to", in.To,
			"writes", len(in.Changes), "redone", repaired)
	}
	return nil
}

// planner computes the writes and results of an Apply. Reads see the planned
// writes first, then the stored state.
type planner struct {
	tx      *buntdb.Tx
	changes []change
	index   map[string]int // key → its position in changes
	// stored[i] reports whether changes[i].key existed before this Apply.
	stored []bool
	// storedClients is the store's de-duplication table (read only here);
	// clients holds the records this Apply writes, merged into it once they
	// are in the file.
	storedClients map[uint64]dedupRecord
	clients       map[uint64]dedupRecord
	// evicted holds the writers whose records this Apply deletes (see
	// evictWriters); writers counts the records the table holds as planned so
	// far, and evictions how many were dropped.
	evicted   map[uint64]bool
	writers   int
	evictions int
}

// client returns the de-duplication record of client id at this point of the
// Apply, and what is known of whether its key is stored.
func (p *planner) client(id uint64) (rec dedupRecord, found bool, ex existence) {
	if rec, ok := p.clients[id]; ok {
		return rec, true, unknown // written by this Apply: the key is in p.index
	}
	if p.evicted[id] {
		return dedupRecord{}, false, unknown // deleted by this Apply: in p.index
	}
	rec, found = p.storedClients[id]
	return rec, found, known(found, true)
}

// get returns the value key has at this point of the Apply, and whether that is the
// stored value (no earlier command of this Apply wrote the key).
func (p *planner) get(key string) (val string, found, stored bool, err error) {
	if i, ok := p.index[key]; ok {
		c := p.changes[i]
		return c.val, !c.del, false, nil
	}
	v, err := p.tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return "", false, true, nil
	}
	if err != nil {
		return "", false, false, err
	}
	return v, true, true, nil
}

// existence says what the caller of write knows of whether key is stored.
type existence uint8

const (
	unknown existence = iota
	storedAbsent
	storedPresent
)

func known(found, stored bool) existence {
	switch {
	case !stored:
		return unknown
	case found:
		return storedPresent
	default:
		return storedAbsent
	}
}

// write plans a write of key. ex saves a lookup when the caller has just read the
// stored key.
func (p *planner) write(key, val string, del bool, ex existence) error {
	if i, ok := p.index[key]; ok {
		p.changes[i] = change{key: key, val: val, del: del}
		return nil
	}
	if ex == unknown {
		_, err := p.tx.Get(key)
		switch {
		case err == nil:
			ex = storedPresent
		case errors.Is(err, buntdb.ErrNotFound):
			ex = storedAbsent
		default:
			return err
		}
	}
	p.index[key] = len(p.changes)
	p.changes = append(p.changes, change{key: key, val: val, del: del})
	p.stored = append(p.stored, ex == storedPresent)
	return nil
}

// keyDelta is the change in the number of user keys the planned writes make.
func (p *planner) keyDelta() int64 {
	var d int64
	for i, c := range p.changes {
		if !strings.HasPrefix(c.key, prefixData) {
			continue
		}
		if !c.del {
			d++
		}
		if p.stored[i] {
			d--
		}
	}
	return d
}

func (p *planner) effect(c command.Command, dkey string, ex existence) error {
	if c.Op == command.OpRemove {
		return p.write(dkey, "", true, ex)
	}
	return p.write(dkey, string(c.Value), false, ex)
}

// command plans command index of slot's batch.
//
// De-duplication: the client's record holds the sequence number, position (slot,
// index) and result of its last applied command. A record at exactly this position
// means the command was applied before a crash that lost the applied slot (and the
// intent that would have completed it): its effect is written again and its recorded
// result returned. Otherwise a record with the same or a later sequence number makes
// the command a duplicate, which changes nothing.
func (p *planner) command(slot, index uint64, c command.Command) (Result, error) {
	r := Result{ClientID: c.ClientID, Seq: c.Seq, Slot: slot, Op: c.Op, Key: c.Key}
	dkey := dataKey(c.Key)
	var (
		ckey   string
		cex    existence
		cfound bool
	)
	if c.ClientID != 0 {
		ckey = clientKey(c.ClientID)
		var rec dedupRecord
		rec, cfound, cex = p.client(c.ClientID)
		if cfound {
			switch {
			case rec.Slot == slot && rec.Index == index:
				r.Existed = rec.Existed
				return r, p.effect(c, dkey, unknown)
			case rec.Seq >= c.Seq:
				r.Duplicate, r.Slot = true, 0
				if rec.Seq == c.Seq {
					r.Slot, r.Existed = rec.Slot, rec.Existed
				}
				return r, nil
			}
		}
	}
	_, existed, stored, err := p.get(dkey)
	if err != nil {
		return Result{}, err
	}
	r.Existed = existed
	if err := p.effect(c, dkey, known(existed, stored)); err != nil {
		return Result{}, err
	}
	if ckey != "" {
		rec := dedupRecord{Seq: c.Seq, Slot: slot, Index: index, Existed: existed}
		if err := p.write(ckey, encodeDedup(rec), false, cex); err != nil {
			return Result{}, err
		}
		if !cfound {
			p.writers++
		}
		p.clients[c.ClientID] = rec
	}
	return r, nil
}

// Get returns the value of a user key.
func (s *Store) Get(key string) (value []byte, found bool, err error) {
	var v string
	err = s.view(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(dataKey(key))
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("get from %s: %w", s.path, viewErr(err))
	}
	if !found {
		return nil, false, nil
	}
	return []byte(v), true, nil
}

// Applied returns the last slot applied.
func (s *Store) Applied() uint64 { return s.applied.Load() }

// Keys returns the number of user keys.
func (s *Store) Keys() int { return int(s.userKeys.Load()) }
