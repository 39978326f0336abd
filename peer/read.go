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
	if len(r.lead.reads) == 0 {
		return
	}
	r.confirmReads(r.majorityAcked())
}

// majorityAcked is the highest round that a majority of the members (this
// leader included) has answered at this leader's ballot: every member of that
// majority answered it or a later one.
func (r *Replica) majorityAcked() uint64 {
	l := r.lead
	need := r.quorumSize() - 1
	if need <= 0 {
		return l.roundTrip
	}
	acks := make([]uint64, 0, len(l.followers))
	for _, p := range l.followers {
		acks = append(acks, p.acked)
	}
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
	return acks[need-1]
}

// LeaseRound is what a leader needs to serve a read under a lease, without a
// heartbeat round of its own. Round is the highest heartbeat (accept) round a
// majority has answered at this leader's ballot: each of those acceptors then
// refuses other candidates for at least ElectionTicks of its clock from the
// moment it answered (followsLiveLeader; with HoldVotesAfterStart even across a
// restart), so no other leader can be chosen until an election timeout after
// the round was sent. The caller, which alone has a clock, records when it
// handed each round to the network and serves a read at index (once applied)
// only while the time since that round left is below an election timeout minus
// its bound on clock drift. ok is false, and the read must take ReadIndex's
// round, when this replica does not lead, is not ready (its predecessors'
// slots are not chosen yet), leads a configuration that is ending, or no round
// has been answered by a majority yet. Round is 0, with ok, for a leader that is
// the only member: it needs no round.
//
// Ballot is the leadership's ballot: rounds are numbered afresh by each.
func (r *Replica) LeaseRound() (ballot Ballot, round, index uint64, ok bool) {
	if r.role != leader || r.lead.stopAt != 0 || r.ended() || r.chosen < r.lead.readyAt {
		return Ballot{}, 0, 0, false
	}
	if r.quorumSize() == 1 {
		// The only member: nobody else can lead while it does.
		return r.lead.ballot, 0, r.chosen, true
	}
	round = r.majorityAcked()
	if round == 0 {
		return Ballot{}, 0, 0, false
	}
	return r.lead.ballot, round, r.chosen, true
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
