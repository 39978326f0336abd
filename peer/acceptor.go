package peer

import "slices"

// followsLiveLeader reports whether this replica has heard from a leader other than
// candidate recently enough to believe it is alive. Such a replica refuses to
// promise, so that a replica cut off for a while and then reconnected cannot depose
// a working leader (the rule Raft uses for votes, section 6; it only delays
// elections, never breaks safety).
//
// With HoldVotesAfterStart, a replica that knows no leader also refuses for its
// first ElectionTicks: it may have answered a leader's heartbeats just before it
// restarted, and that leader may be serving reads under a lease that counts on
// this replica's refusal.
func (r *Replica) followsLiveLeader(candidateID uint64) bool {
	if r.leader == 0 {
		return r.cfg.HoldVotesAfterStart && candidateID != r.id && r.ticks < r.cfg.ElectionTicks
	}
	if r.leader == candidateID {
		return false
	}
	return r.electionElapsed < r.cfg.ElectionTicks
}

// handlePrepare is the acceptor's phase 1.
//
// "If an acceptor receives a prepare request with number n greater than that of any
// prepare request to which it has already responded, then it responds to the
// request with a promise not to accept any more proposals numbered less than n and
// with the highest-numbered proposal (if any) that it has accepted." (Paxos Made
// Simple, 2.2.) In Multi-Paxos one prepare covers every slot from m.Slot on, so the
// promise reports the accepted entry of each of those slots.
func (r *Replica) handlePrepare(m Message) {
	reply := Message{Type: MsgPromise, To: m.From, Token: m.Token, Commit: r.chosen, Probe: m.Probe}
	if m.Slot <= r.compacted {
		// The entries this acceptor accepted up to compacted are gone, so it
		// cannot report them: promising would let the candidate take a chosen slot
		// for an empty one. The candidate lacks chosen slots anyway; it is told to
		// install a snapshot first.
		reply.Ballot = r.promised
		reply.Snapshot = r.compacted
		r.send(reply)
		return
	}
	if r.rebuilding() && m.Slot <= r.rebuildTo {
		// It may have accepted, before it lost its storage, entries it can no
		// longer report.
		reply.Ballot = r.promised
		r.send(reply)
		return
	}
	if m.Ballot.Less(r.promised) || m.Ballot.ID != m.From || r.followsLiveLeader(m.From) {
		reply.Ballot = r.promised
		r.send(reply)
		return
	}
	if m.Probe {
		reply.OK = true
		reply.Ballot = m.Ballot
		r.send(reply)
		return
	}
	if r.role != follower && r.currentBallot() != m.Ballot {
		r.becomeFollower(0)
	}
	r.persistPromise(m.Ballot)
	// Give the candidate a full timeout to finish phase 1 and start leading.
	r.resetElectionTimer()
	reply.OK = true
	reply.Ballot = r.promised
	for _, le := range r.log {
		if le.Slot >= m.Slot {
			reply.Entries = append(reply.Entries, le.Entry)
		}
	}
	slices.SortFunc(reply.Entries, func(a, b Entry) int { return compareSlots(a.Slot, b.Slot) })
	r.send(reply)
}

// handleAccept is the acceptor's phase 2, and a follower's heartbeat.
//
// "If an acceptor receives an accept request for a proposal numbered n, it accepts
// the proposal unless it has already responded to a prepare request having a
// number greater than n." (Paxos Made Simple, 2.2.)
func (r *Replica) handleAccept(m Message) {
	reply := Message{Type: MsgAccepted, To: m.From, Token: m.Token, RoundTrip: m.RoundTrip}
	if m.Ballot.Less(r.promised) || m.Ballot.ID != m.From {
		reply.Ballot = r.promised
		reply.Commit = r.chosen
		r.send(reply)
		return
	}
	r.persistPromise(m.Ballot)
	if r.role != follower || r.leader != m.From {
		if r.leader != m.From {
			r.logger.Info("following new leader", "leader", m.From, "ballot", m.Ballot.String())
		}
		r.becomeFollower(m.From)
	}
	r.electionElapsed = 0
	for _, e := range m.Entries {
		if e.Slot <= r.chosen {
			continue // already chosen here; the value cannot differ
		}
		if le, ok := r.log[e.Slot]; ok && le.chosen {
			continue
		}
		e.Ballot = m.Ballot
		r.storeEntry(e, false)
	}
	r.learnCommit(m.Ballot, m.Commit)
	reply.OK = true
	reply.Ballot = r.promised
	reply.Commit = r.chosen
	r.send(reply)
}

// handleExecute learns chosen entries the leader sent because this replica lacked
// them. A chosen value is a fact whoever reports it, so the sender's ballot only
// decides whether it also counts as a sign of a live leader.
func (r *Replica) handleExecute(m Message) {
	if !m.Ballot.Less(r.promised) && m.Ballot.ID == m.From {
		if r.role != follower || r.leader != m.From {
			r.becomeFollower(m.From)
		}
		r.electionElapsed = 0
	}
	if m.Snapshot > r.chosen {
		r.wantSnapshot(m.From, m.Snapshot)
	}
	for _, e := range m.Entries {
		if e.Slot <= r.chosen {
			continue
		}
		if le, ok := r.log[e.Slot]; ok && le.chosen {
			continue
		} else if ok && e.Ballot.Less(le.Ballot) {
			// A value accepted at a ballot above the one that chose the slot is
			// the chosen value too; keep the higher ballot so a promise reports it.
			e.Ballot = le.Ballot
		}
		r.storeEntry(e, true)
	}
	r.advanceChosen()
	if !m.Ballot.Less(r.promised) {
		r.learnCommit(m.Ballot, m.Commit)
	}
	r.send(Message{Type: MsgExecuted, To: m.From, Token: m.Token, Ballot: r.promised, Commit: r.chosen})
}

// learnCommit marks as chosen every slot up to commit whose entry this replica
// accepted at ballot b: the leader of b proposes one value per slot, so the entry
// accepted here is the one a majority chose.
func (r *Replica) learnCommit(b Ballot, commit uint64) {
	r.leaderCommit = max(r.leaderCommit, commit)
	for s := r.chosen + 1; s <= commit; s++ {
		le, ok := r.log[s]
		if !ok {
			break
		}
		if le.Ballot == b {
			le.chosen = true
		}
		if !le.chosen {
			break
		}
	}
	r.advanceChosen()
}

// advanceChosen moves the chosen prefix over every contiguous chosen slot.
func (r *Replica) advanceChosen() {
	for r.endedAt == 0 {
		le, ok := r.log[r.chosen+1]
		if !ok || !le.chosen {
			break
		}
		r.chosen++
		if le.Kind == KindConfig {
			// The last slot of this configuration: nothing after it is chosen
			// by these members.
			r.endedAt = r.chosen
			r.logger.Info("configuration change chosen", "slot", r.chosen)
		}
	}
	r.rebuilding() // ends a rebuild the chosen prefix has now covered
}

// currentBallot is the ballot this replica proposes with, if it is a candidate or
// leader.
func (r *Replica) currentBallot() Ballot {
	switch {
	case r.lead != nil:
		return r.lead.ballot
	case r.cand != nil:
		return r.cand.ballot
	}
	return Ballot{}
}

func compareSlots(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
