package peer

import (
	"errors"
	"fmt"
)

// ErrStaleSnapshot: InstallSnapshot was given a snapshot no newer than what this
// replica has already applied.
var ErrStaleSnapshot = errors.New("snapshot is not newer than the applied slot")

// Compact discards the log up to slot upTo, which the caller's state machine has
// applied and made durable (a snapshot of it, or the store itself, holds every
// effect of those slots). It is the caller's half of log compaction: the caller
// deletes the same entries from stable storage, and a Durable given to New later
// names the compacted slot.
//
// Compaction is safe for Paxos because an acceptor refuses every prepare that asks
// about a slot it has compacted (see handlePrepare): a promise it does give still
// reports every entry it accepted from the candidate's first slot on, so a new
// leader never mistakes a compacted slot for an empty one. A candidate that is
// refused for that reason, and a follower whose leader has compacted past the
// follower's chosen prefix, are told to install a snapshot (Ready.Snapshot).
func (r *Replica) Compact(upTo uint64) error {
	if upTo > r.applied {
		return fmt.Errorf("compact to slot %d: only %d applied", upTo, r.applied)
	}
	if upTo <= r.compacted {
		return nil
	}
	for s := r.compacted + 1; s <= upTo; s++ {
		delete(r.log, s)
	}
	r.compacted = upTo
	return nil
}

// CompactionPoint is the slot up to which the log may be compacted below a
// snapshot taken at index so as to keep the slots nearest index: at most
// maxSlots of them, and no more of them than fit in maxBytes of entry data (a
// slot bigger than maxBytes alone is not kept). Compact is the caller's to call.
func (r *Replica) CompactionPoint(index, maxSlots uint64, maxBytes int64) uint64 {
	floor := index - min(index, maxSlots)
	var bytes int64
	for s := index; s > floor; s-- {
		le, ok := r.log[s]
		if !ok {
			return s // compacted already, or never held here
		}
		bytes += int64(len(le.Data))
		if bytes > maxBytes {
			return s
		}
	}
	return floor
}

// Compacted returns the slot up to which the log has been compacted.
func (r *Replica) Compacted() uint64 { return r.compacted }

// InstallSnapshot tells the replica that the caller has replaced its state machine
// with a snapshot taken at slot index, durably: every slot up to index is applied.
// The replica drops its log up to index and carries on from there. A snapshot no
// newer than the applied slot is refused with ErrStaleSnapshot (the caller should
// not have installed it). A leader or candidate steps down first: it was missing
// chosen slots, so it should not be proposing.
func (r *Replica) InstallSnapshot(index uint64) error {
	if index <= r.applied {
		return fmt.Errorf("install snapshot at slot %d, applied %d: %w", index, r.applied, ErrStaleSnapshot)
	}
	if r.role != follower {
		r.becomeFollower(0)
		r.resetElectionTimer()
	}
	for s := range r.log {
		if s <= index {
			delete(r.log, s)
		}
	}
	kept := r.unsaved[:0]
	for _, e := range r.unsaved {
		if e.Slot > index {
			kept = append(kept, e)
		}
	}
	r.unsaved = kept
	r.applied = index
	r.compacted = max(r.compacted, index)
	r.chosen = max(r.chosen, index)
	r.advanceChosen()
	r.logger.Debug("installed snapshot", "slot", index, "chosen", r.chosen)
	return nil
}

// wantSnapshot asks the caller, through the next Ready, for a snapshot from
// replica from of slot index or later, unless this replica already has that slot
// or asked for it recently (hints come with every heartbeat).
func (r *Replica) wantSnapshot(from, index uint64) {
	if index <= r.chosen {
		return
	}
	if index <= r.snapAsked.Index && r.ticks-r.snapAskedAt < r.cfg.ElectionTicks {
		return
	}
	r.snapWant = SnapshotWanted{From: from, Index: index}
	r.snapAsked = r.snapWant
	r.snapAskedAt = r.ticks
}

// rebuilding reports whether the replica is still rebuilding lost storage (see
// Durable.RebuildTo), and ends the rebuild once its chosen prefix has reached the
// slot it may have accepted entries up to.
func (r *Replica) rebuilding() bool {
	if r.rebuildTo != 0 && r.chosen >= r.rebuildTo {
		r.logger.Info("rebuilt lost storage", "chosen", r.chosen)
		r.rebuildTo = 0
	}
	return r.rebuildTo != 0
}

// Inquire reports what a replica rebuilding lost storage needs from this one
// (Durable.RebuildTo): the highest ballot this replica has promised or accepted
// at, and the highest slot it has accepted an entry for, applied, or (if it is
// rebuilding itself) may have accepted before its own loss.
func (r *Replica) Inquire() (promised Ballot, highest uint64) {
	promised = r.promised
	highest = max(r.applied, r.chosen, r.compacted, r.rebuildTo)
	for s, le := range r.log {
		highest = max(highest, s)
		promised = maxBallot(promised, le.Ballot)
	}
	return promised, highest
}

// ended reports whether a configuration entry is among the chosen slots: this
// configuration is over, and the caller is to start the next one once it has
// applied that slot. An ended replica neither campaigns nor proposes.
func (r *Replica) ended() bool { return r.endedAt != 0 }

// Ended returns the slot of the chosen configuration entry that ended this
// configuration, or 0.
func (r *Replica) Ended() uint64 { return r.endedAt }

// Farewell makes a leader whose configuration has ended (its core is about to be
// replaced) send a heartbeat round with its commit point in the next Ready, so
// that its followers learn the last slot is chosen and move on from their logs
// rather than by fetching a snapshot. Each follower that has not reported every
// chosen slot is sent, with the commit point, the entries after the chosen prefix
// it last reported, in the same accept request. A bare heartbeat could overtake the
// accept request carrying the configuration's last entry (requests travel on
// several connections), and a follower that lacks the entry cannot learn it is
// chosen from the commit point alone; a member the new configuration drops hears
// from nobody after this, so this request is its last chance to learn of it.
func (r *Replica) Farewell() {
	l := r.lead
	if l == nil {
		return
	}
	if r.cfg.Thrifty {
		r.pickActive()
	}
	for _, id := range r.members {
		p := l.followers[id]
		if p == nil || p.chosen >= r.chosen {
			continue
		}
		p.next = min(p.next, p.chosen+1)
		p.paused = false
		// Every slot the ended configuration will choose is chosen: answers to
		// earlier requests have nothing left to count, and must not hold
		// this one back (MaxInflight) or move p.next again.
		clear(p.inflight)
	}
	l.heartbeatDue = true
}
