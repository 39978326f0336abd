package peer

// candidacy is a replica's state while it runs phase 1.
type candidacy struct {
	// probing is true during the pre-vote: ballot is not yet promised, not even by
	// this replica, and promises are answers to probes.
	probing     bool
	ballot      Ballot
	firstSlot   uint64
	selfDurable bool // our own promise is on disk and counts
	promises    map[uint64][]Entry
	highest     map[uint64]Entry // slot → accepted entry with the highest ballot reported so far
}

// Campaign starts phase 1 now, as if the election timeout had expired. Operators
// and tests use it to move leadership.
func (r *Replica) Campaign() { r.campaign() }

// campaign starts an election: first a pre-vote (a probe that changes no
// acceptor's state), then, once a majority would promise, phase 1 proper.
func (r *Replica) campaign() {
	if r.role == leader {
		return
	}
	b := Ballot{Round: r.maxSeen.Round + 1, ID: r.id}
	r.becomeFollower(0)
	r.role = candidate
	r.cand = &candidacy{probing: true, ballot: b, promises: make(map[uint64][]Entry)}
	r.resetElectionTimer()
	for _, m := range r.members {
		if m != r.id {
			r.send(r.campaignRequest(m))
		}
	}
	r.checkCandidacy()
}

// prepare runs phase 1 for every slot after the chosen prefix with a ballot higher
// than any seen.
func (r *Replica) prepare() {
	// The pre-vote's ballot, unless something higher was seen meanwhile.
	b := r.cand.ballot
	if !r.maxSeen.Less(b) && r.maxSeen != b {
		b = Ballot{Round: r.maxSeen.Round + 1, ID: r.id}
	}
	r.logger.Info("campaigning", "ballot", b.String(), "first_slot", r.chosen+1)
	r.cand = &candidacy{
		ballot:    b,
		firstSlot: r.chosen + 1,
		promises:  make(map[uint64][]Entry),
		highest:   make(map[uint64]Entry),
	}
	r.persistPromise(b)
	r.resetElectionTimer()
	for _, le := range r.log {
		if le.Slot >= r.cand.firstSlot {
			r.cand.consider(le.Entry)
		}
	}
	for _, m := range r.members {
		if m != r.id {
			r.send(r.campaignRequest(m))
		}
	}
}

// campaignRequest is the candidacy's current request to member to: the pre-vote
// probe, or phase 1 for every slot from the first unchosen one.
func (r *Replica) campaignRequest(to uint64) Message {
	c := r.cand
	if c.probing {
		return Message{Type: MsgPrepare, To: to, Ballot: c.ballot, Slot: r.chosen + 1, Probe: true}
	}
	return Message{Type: MsgPrepare, To: to, Ballot: c.ballot, Slot: c.firstSlot}
}

// resendCampaign asks again, every heartbeat interval, the members that have not
// answered the candidacy's current request (the pre-vote or phase 1). A member
// still in the previous configuration, which has not yet applied the change that
// started this one, turns the request away without an answer this core sees; the
// leader of the ended configuration campaigns in the new one at once, so its first
// requests often arrive that early, and without this it would wait out an
// election timeout. Asking again at the same ballot is always safe.
func (r *Replica) resendCampaign() {
	c := r.cand
	for _, m := range r.members {
		if m == r.id {
			continue
		}
		if _, answered := c.promises[m]; answered {
			continue
		}
		r.send(r.campaignRequest(m))
	}
}

// consider keeps e if it has the highest ballot reported for its slot.
func (c *candidacy) consider(e Entry) {
	if cur, ok := c.highest[e.Slot]; !ok || cur.Ballot.Less(e.Ballot) {
		c.highest[e.Slot] = e
	}
}

func (r *Replica) handlePromise(m Message) {
	if !m.OK && m.Snapshot > r.chosen {
		r.wantSnapshot(m.From, m.Snapshot)
	}
	if r.cand == nil || m.Ballot != r.cand.ballot || m.Probe != r.cand.probing {
		if !m.OK && r.maxSeen.Less(m.Ballot) {
			r.maxSeen = m.Ballot
		}
		return
	}
	if !m.OK {
		return
	}
	if _, dup := r.cand.promises[m.From]; dup {
		return
	}
	if r.cand.probing {
		// A pre-vote only counts who would promise; the acceptors report
		// their entries to the prepare that follows.
		r.cand.promises[m.From] = nil
		r.checkCandidacy()
		return
	}
	r.cand.promises[m.From] = m.Entries
	for _, e := range m.Entries {
		if e.Slot >= r.cand.firstSlot {
			r.cand.consider(e)
		}
	}
	r.checkCandidacy()
}

// checkCandidacy makes this replica leader once a majority, itself included, has
// promised.
func (r *Replica) checkCandidacy() {
	c := r.cand
	if c == nil || len(c.promises)+1 < r.quorumSize() {
		return
	}
	if c.probing {
		r.prepare()
		r.checkCandidacy()
		return
	}
	if c.selfDurable {
		r.becomeLeader()
	}
}

// becomeLeader ends phase 1. For every slot from the first unchosen one to the
// highest reported, the new leader proposes the value with the highest ballot any
// promise reported ("Paxos Made Simple", 2.2: the proposer "issues a proposal with
// number n and value v, where v is the value of the highest-numbered proposal among
// the responses"), or a no-op where no one reported anything (section 3: gaps are
// filled with "no-op" commands).
func (r *Replica) becomeLeader() {
	c := r.cand
	last := c.firstSlot - 1
	for s := range c.highest {
		last = max(last, s)
	}
	stop := c.stopSlot(last)
	if stop != 0 {
		last = stop
	}
	r.cand = nil
	r.role = leader
	r.leader = r.id
	r.lead = newLeadership(r, c.ballot, last+1)
	r.lead.stopAt = stop
	r.electionElapsed = 0
	for s := c.firstSlot; s <= last; s++ {
		e, ok := c.highest[s]
		if !ok {
			e = Entry{Slot: s, Kind: KindNoop}
		}
		e.Ballot = c.ballot
		r.storeEntry(e, false)
	}
	r.lead.readyAt = last
	r.logger.Info("elected leader", "ballot", c.ballot.String(), "reproposed_from", c.firstSlot, "reproposed_to", last)
	// Announce leadership at once, so followers stop campaigning.
	r.lead.heartbeatDue = true
}

// stopSlot applies the stop rule of reconfiguration (Stoppable Paxos, Lamport,
// Malkhi and Zhou, 2008) to what phase 1 found up to slot last. The first slot
// whose highest-ballot value is a configuration ends this configuration: the new
// leader re-proposes it and nothing after it, and returns its slot. But when some
// later slot holds a value accepted at a higher ballot than that configuration
// entry, a leader with that ballot did not see the entry, so it was never chosen:
// it is replaced by a no-op and the search goes on. Values after the stop slot
// were accepted at lower ballots and cannot have been chosen: the leader that
// proposed the configuration entry saw every chosen slot in its phase 1 and
// proposed it after them. Returns 0 when no configuration entry ends the log.
func (c *candidacy) stopSlot(last uint64) uint64 {
	for s := c.firstSlot; s <= last; s++ {
		e, ok := c.highest[s]
		if !ok || e.Kind != KindConfig {
			continue
		}
		overtaken := false
		for t, later := range c.highest {
			if t > s && e.Ballot.Less(later.Ballot) {
				overtaken = true
				break
			}
		}
		if overtaken {
			c.highest[s] = Entry{Slot: s, Ballot: e.Ballot, Kind: KindNoop}
			continue
		}
		return s
	}
	return 0
}

// ProposeConfig asks the leader to choose a new configuration (data, opaque to
// the core) in the next free slot, and stops it proposing anything after that
// slot: the slot is the last of this configuration. Once it is chosen, the
// caller applies it and starts a new Replica with the new members from the next
// slot. It returns the slot, ErrNotLeader, or ErrStopped when a configuration
// change is already under way.
func (r *Replica) ProposeConfig(data []byte) (uint64, error) {
	if r.role != leader {
		return 0, ErrNotLeader
	}
	if r.lead.stopAt != 0 || r.ended() {
		return 0, ErrStopped
	}
	slot := r.lead.nextSlot
	r.lead.nextSlot++
	r.lead.stopAt = slot
	r.storeEntry(Entry{Slot: slot, Ballot: r.lead.ballot, Kind: KindConfig, Data: data}, false)
	return slot, nil
}

// Propose asks the leader to choose data (an opaque batch of commands) in the next
// free slot. It returns the slot, or ErrNotLeader.
func (r *Replica) Propose(data []byte) (uint64, error) {
	if r.role != leader {
		return 0, ErrNotLeader
	}
	if r.lead.stopAt != 0 || r.ended() {
		return 0, ErrStopped
	}
	slot := r.lead.nextSlot
	r.lead.nextSlot++
	r.storeEntry(Entry{Slot: slot, Ballot: r.lead.ballot, Kind: KindCommands, Data: data}, false)
	return slot, nil
}

// InFlight is the number of slots this leader has proposed that are not yet
// chosen (0 when it does not lead). The caller may hold new commands back while it
// is high, so that they travel together in one bigger slot.
func (r *Replica) InFlight() int {
	if r.lead == nil || r.lead.nextSlot <= r.chosen+1 {
		return 0
	}
	return int(r.lead.nextSlot - 1 - r.chosen)
}

// vote records that member id accepted slot at the leader's ballot, and marks the
// slot chosen once a majority has.
func (r *Replica) vote(slot, id uint64) {
	l := r.lead
	le, ok := r.log[slot]
	if l == nil || slot <= r.chosen || !ok || le.chosen {
		return
	}
	q := l.votes[slot]
	q.add(r.pos[id])
	if q.count() >= r.quorumSize() {
		delete(l.votes, slot)
		le.chosen = true
		r.advanceChosen()
		return
	}
	l.votes[slot] = q
}
