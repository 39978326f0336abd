package store

import (
	"cmp"
	"slices"
)

// MaxWriters bounds the de-duplication table: the store keeps the record of the
// last write of at most this many writers (client ids). Without a bound every
// client id ever seen would stay, in memory and in every snapshot, for the life of
// the cluster; a command-line client uses a new id for each run.
//
// When a slot leaves more records than this, the records of the writers whose last
// write is oldest are dropped, down to nine tenths of the bound, so that the
// ordering runs once per tenth of the bound of new writers rather than at every
// slot. A writer is dropped only once at least nine tenths of the bound of other
// writers have written since its last write; if it then retries that write, the
// write is applied again (the guarantee is the same as for client id 0). Every
// replica drops the same records at the same slot: which records go depends only
// on the table and the slot's commands, never on how the chosen slots are grouped
// into Apply calls, so the bound is part of the replicated state machine and must
// be the same on every replica.
const MaxWriters = 100_000

// writersAfterEviction is how many records an eviction keeps.
func writersAfterEviction(limit int) int { return limit - limit/10 }

// writerAge orders records for eviction: oldest last write first. No two records
// hold the same position (slot, index); the id only makes the order total.
type writerAge struct {
	id   uint64
	slot uint64
	idx  uint64
}

// evictWriters plans the removal of the oldest records when the table, as this
// Apply has planned it so far, holds more than limit of them. Called at the end of
// each slot's commands. Records written by this slot are the newest and go last.
func (p *planner) evictWriters(limit int) error {
	if p.writers <= limit {
		return nil
	}
	ages := make([]writerAge, 0, p.writers)
	for id, rec := range p.storedClients {
		if _, ok := p.clients[id]; ok || p.evicted[id] {
			continue
		}
		ages = append(ages, writerAge{id, rec.Slot, rec.Index})
	}
	for id, rec := range p.clients {
		ages = append(ages, writerAge{id, rec.Slot, rec.Index})
	}
	slices.SortFunc(ages, func(a, b writerAge) int {
		return cmp.Or(cmp.Compare(a.slot, b.slot), cmp.Compare(a.idx, b.idx), cmp.Compare(a.id, b.id))
	})
	drop := len(ages) - writersAfterEviction(limit)
	if p.evicted == nil {
		p.evicted = make(map[uint64]bool, drop)
	}
	for _, a := range ages[:drop] {
		ex := unknown
		if _, written := p.clients[a.id]; !written {
			ex = storedPresent // in storedClients, so its key is in the file
		}
		if err := p.write(clientKey(a.id), "", true, ex); err != nil {
			return err
		}
		delete(p.clients, a.id)
		p.evicted[a.id] = true
	}
	p.writers -= drop
	p.evictions += drop
	return nil
}
