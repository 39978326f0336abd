package peer

// ReadIndex asks the leader to confirm, with one heartbeat round to a majority,
// that it still leads, so that a read can be served from its state machine without
// writing the log (the read-index technique of the Raft thesis, section 6.4). Once
// confirmed, Ready.Reads carries token with the index the state machine must have
// applied before the read is served. Every read waiting at the same moment shares
// one round.
func (r *Replica) ReadIndex(token uint64) error {
	if r.role != leader {
		return ErrNotLeader
	}
	l := r.lead
	// The leader's chosen prefix may miss slots its predecessors chose until its
	// re-proposals are chosen; never serve a read behind them.
	idx := max(r.chosen, l.readyAt)
	l.reads = append(l.reads, pendingRead{token: token, index: idx})
	return nil
}

// confirmReadsFromAcks releases the reads whose heartbeat round a majority has
// answered at this leader's ballot.
func (r *Replica) confirmReadsFromAcks() {
	l := r.lead
	if len(l.reads) == 0 {
		return
	}
	// The highest round that a majority (this replica included) has answered.
	acks := make([]uint64, 0, len(l.followers))
	for _, p := range l.followers {
		acks = append(acks, p.acked)
	}
	need := r.quorumSize() - 1
	var confirmed uint64
	if need <= 0 {
		confirmed = l.roundTrip
	} else {
		// need-th largest ack.
		for i := 0; i < need; i++ {
			best := i
			for j := i + 1; j < len(acks); j++ {
				if acks[j] > acks[best] {
					best = j
				}
			}
			acks[i], acks[best] = acks[best], acks[i]
		}
		confirmed = acks[need-1]
	}
	r.confirmReads(confirmed)
}

// confirmReads releases every read whose round is at most round.
func (r *Replica) confirmReads(round uint64) {
	l := r.lead
	kept := l.reads[:0]
	for _, rd := range l.reads {
		if rd.round != 0 && rd.round <= round || len(l.followers) == 0 {
			r.reads = append(r.reads, ReadState{Token: rd.token, Index: rd.index})
			continue
		}
		kept = append(kept, rd)
	}
	l.reads = kept
}

// failPendingReads gives up every read this replica can no longer confirm.
func (r *Replica) failPendingReads() {
	if r.lead == nil {
		return
	}
	for _, rd := range r.lead.reads {
		r.failedReads = append(r.failedReads, rd.token)
	}
	r.lead.reads = nil
}
