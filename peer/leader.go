package peer

import "slices"

// inflightAccept is one accept request a leader awaits an answer to.
type inflightAccept struct {
	first, last uint64 // slots carried; last < first for a heartbeat
	commit      uint64 // the commit point it carried
	sentAt      int    // leader tick when sent
}

// progress is what the leader knows of one follower.
type progress struct {
	next      uint64 // next slot to send
	inflight  map[uint64]inflightAccept
	chosen    uint64 // the follower's chosen prefix, as last reported
	executing bool   // an execute request is in flight
	execAt    int
	hinted    bool // told to install a snapshot, at leader tick hintedAt
	hintedAt  int
	paused    bool // the last request failed: send heartbeats only until one succeeds
	heardAt   int  // leader tick of the last answer at our ballot
	acked     uint64
	// passive (Config.Thrifty): the follower gets heartbeats and, at most once a
	// tick (execTicked), the chosen entries it lacks, but no accept requests.
	passive    bool
	execTicked bool
}

// pendingRead is a linearizable read waiting for a heartbeat round to confirm
// that this replica still leads.
type pendingRead struct {
	token uint64
	index uint64
	round uint64 // 0 until a heartbeat round is assigned
}

// leadership is a replica's state while it leads with ballot.
type leadership struct {
	ballot       Ballot
	maxInflight  int
	nextSlot     uint64
	readyAt      uint64 // the leader serves reads once the chosen prefix reaches it
	votes        map[uint64]quorum
	followers    map[uint64]*progress
	roundTrip    uint64 // number of the last accept request sent, all followers
	ticks        int
	heartbeatDue bool
	lastBeat     int
	reads        []pendingRead
	stopAt       uint64 // slot of the configuration entry this leader proposed; nothing after it

	// A thrifty leader's census (Config.ThriftyCensusTicks): censusSlot, when
	// not 0, was sent to every follower, and censusOrder lists those that
	// accepted it, first answer first; preferred, once set from it, names the
	// followers pickActive makes active next.
	censusDue   bool
	lastCensus  int
	censusSlot  uint64
	censusOrder []uint64
	preferred   []uint64
}

func newLeadership(r *Replica, b Ballot, nextSlot uint64) *leadership {
	l := &leadership{
		ballot:      b,
		maxInflight: r.cfg.MaxInflight,
		nextSlot:    nextSlot,
		votes:       make(map[uint64]quorum),
		followers:   make(map[uint64]*progress),
	}
	for _, m := range r.members {
		if m != r.id {
			l.followers[m] = &progress{next: r.chosen + 1, inflight: make(map[uint64]inflightAccept)}
		}
	}
	return l
}

// readRoundWanted reports whether reads are waiting for a heartbeat round and
// none is already on its way for earlier reads. Reads that arrive while a round
// is in flight wait for it to finish and then share the next one, so under a
// read load the followers answer one round per round trip, not one per read.
func (l *leadership) readRoundWanted() bool {
	unassigned := false
	for _, rd := range l.reads {
		if rd.round != 0 {
			return false
		}
		unassigned = true
	}
	return unassigned
}

func (l *leadership) needsFlush(chosen uint64) bool {
	if l.heartbeatDue || l.readRoundWanted() {
		return true
	}
	for _, p := range l.followers {
		if p.passive {
			if !p.executing && !p.execTicked && p.chosen < chosen {
				return true
			}
			continue
		}
		if !p.paused && p.next < l.nextSlot && len(p.inflight) < l.maxInflight {
			return true
		}
	}
	return false
}

// flushLeader sends what the leader owes its followers: new entries to every
// follower with room in its pipeline, and a heartbeat round when one is due or a
// read waits for one. Entries proposed since the last Ready travel in one message.
func (r *Replica) flushLeader() {
	l := r.lead
	beat := l.heartbeatDue || l.readRoundWanted()
	if len(l.followers) == 0 {
		// A single replica confirms its reads by itself.
		r.confirmReads(l.roundTrip)
		l.heartbeatDue = false
		return
	}
	census := uint64(0)
	if r.cfg.Thrifty {
		r.pickActive()
		census = r.startCensus()
	}
	// Every round numbered from here on was sent after the reads now waiting
	// arrived, so an answer to any of them confirms leadership for those reads.
	firstRound := l.roundTrip + 1
	// Members in order, not map order: the same inputs must give the same
	// messages in the same order, so a simulated run replays from its seed.
	for _, id := range r.members {
		p := l.followers[id]
		if p == nil {
			continue
		}
		if p.passive {
			r.sendExecute(id, p)
			if census != 0 && !p.paused && len(p.inflight) < r.cfg.MaxInflight {
				// The census slot and those after it, as to an active follower.
				p.next = max(p.next, census)
				r.sendAccept(id, p, true)
			} else if beat {
				r.sendAccept(id, p, false) // a bare heartbeat
			}
			continue
		}
		sent := false
		for !p.paused && p.next < l.nextSlot && len(p.inflight) < r.cfg.MaxInflight {
			r.sendAccept(id, p, true)
			sent = true
		}
		if sent {
			continue
		}
		if beat {
			r.sendAccept(id, p, true)
		}
	}
	if beat {
		for i := range l.reads {
			if l.reads[i].round == 0 {
				l.reads[i].round = firstRound
			}
		}
		l.heartbeatDue = false
		l.lastBeat = l.ticks
	}
}

// pickActive chooses, for a thrifty leader, the followers that get accept
// requests: as many as a majority needs besides the leader, taking first those a
// census just found fastest, then those already active while they answer, then
// others in member order. A follower that
// failed its last request or left one unanswered for ThriftyStaleTicks is passed
// over. Every follower is active when too few answer, while a configuration
// change is under way or once it is chosen (Farewell), or when there are no more
// followers than needed.
func (r *Replica) pickActive() {
	l := r.lead
	need := r.quorumSize() - 1
	answers := func(p *progress) bool {
		if p.paused {
			return false
		}
		for _, req := range p.inflight {
			if l.ticks-req.sentAt >= r.cfg.ThriftyStaleTicks {
				return false
			}
		}
		return true
	}
	var pick quorum
	if l.stopAt == 0 && !r.ended() && need < len(l.followers) {
		// A census's first answers first, then the active followers, then the
		// passive ones.
		for _, id := range l.preferred {
			if p := l.followers[id]; p != nil && pick.count() < need && answers(p) {
				pick.add(r.pos[id])
			}
		}
		l.preferred = nil
		for _, wasPassive := range []bool{false, true} {
			for _, id := range r.members {
				p := l.followers[id]
				if p != nil && p.passive == wasPassive && pick.count() < need && answers(p) {
					pick.add(r.pos[id])
				}
			}
		}
	}
	all := pick.count() < need
	for _, id := range r.members {
		p := l.followers[id]
		if p == nil {
			continue
		}
		active := all || pick.has(r.pos[id])
		if active && p.passive {
			// The slots it lacks up to the chosen prefix come by execute; every
			// slot after it is sent again, as a census may have sent it some
			// and not those before.
			p.passive = false
			p.next = r.chosen + 1
		} else if !active && !p.passive {
			p.passive = true
		}
	}
}

// startCensus begins a census when one is due and this flush sends a new slot
// to the active followers while some are passive: it returns the first slot
// sent, which every follower is then sent too, or 0.
func (r *Replica) startCensus() uint64 {
	l := r.lead
	if !l.censusDue {
		return 0
	}
	first, passive := uint64(0), false
	for _, p := range l.followers {
		switch {
		case p.passive:
			passive = passive || !p.paused
		case !p.paused && p.next < l.nextSlot && len(p.inflight) < r.cfg.MaxInflight:
			if first == 0 || p.next < first {
				first = p.next
			}
		}
	}
	if first == 0 || !passive {
		return 0
	}
	l.censusDue, l.lastCensus = false, l.ticks
	l.censusSlot, l.censusOrder = first, l.censusOrder[:0]
	return first
}

// noteCensus records that follower id accepted the census slot; once as many
// have as the leader needs, they are made the active followers.
func (r *Replica) noteCensus(id uint64) {
	l := r.lead
	if slices.Contains(l.censusOrder, id) {
		return
	}
	l.censusOrder = append(l.censusOrder, id)
	if len(l.censusOrder) < r.quorumSize()-1 {
		return
	}
	l.preferred = slices.Clone(l.censusOrder)
	l.censusSlot = 0
	r.pickActive()
}

// sendAccept sends follower id the entries from p.next on (as many as one message
// may carry), or a bare heartbeat when it has all of them or entries is false.
func (r *Replica) sendAccept(id uint64, p *progress, entries bool) {
	l := r.lead
	if p.next <= r.compacted {
		// The follower lacks slots this leader no longer has; it gets them from
		// a snapshot, and meanwhile accepts what comes after them.
		p.next = r.compacted + 1
	}
	l.roundTrip++
	m := Message{Type: MsgAccept, To: id, Ballot: l.ballot, Commit: r.chosen, RoundTrip: l.roundTrip}
	first := p.next
	bytes := 0
	for s := p.next; entries && s < l.nextSlot && len(m.Entries) < r.cfg.MaxEntriesPerMessage; s++ {
		le, ok := r.log[s]
		if !ok {
			break
		}
		if bytes > 0 && bytes+len(le.Data) > r.cfg.MaxBytesPerMessage {
			break
		}
		bytes += len(le.Data)
		m.Entries = append(m.Entries, le.Entry)
	}
	last := first + uint64(len(m.Entries)) - 1 // first-1 for a heartbeat
	p.next = last + 1
	p.inflight[l.roundTrip] = inflightAccept{first: first, last: last, commit: r.chosen, sentAt: l.ticks}
	r.send(m)
}

func (r *Replica) handleAccepted(m Message) {
	l := r.lead
	if l == nil {
		if !m.OK && r.maxSeen.Less(m.Ballot) {
			r.maxSeen = m.Ballot
		}
		return
	}
	p := l.followers[m.From]
	if p == nil {
		return
	}
	req, known := p.inflight[m.RoundTrip]
	delete(p.inflight, m.RoundTrip)
	if !m.OK {
		if l.ballot.Less(m.Ballot) {
			// "If it ever receives a response ... with a higher ballot, the
			// leader has been preempted" (Paxos Made Moderately Complex).
			r.maxSeen = maxBallot(r.maxSeen, m.Ballot)
			r.becomeFollower(0)
		}
		return
	}
	if m.Ballot != l.ballot {
		return
	}
	p.heardAt = l.ticks
	p.paused = false
	// The latest report, not the highest: a follower that restarted may have lost
	// applied slots it had not synced, and must be sent them again.
	p.chosen = m.Commit
	p.acked = max(p.acked, m.RoundTrip)
	if known {
		if l.censusSlot != 0 && req.first <= l.censusSlot && l.censusSlot <= req.last {
			r.noteCensus(m.From)
		}
		for s := req.first; s <= req.last; s++ {
			r.vote(s, m.From)
		}
		if m.Commit < req.commit {
			r.sendExecute(m.From, p)
		}
	}
	r.confirmReadsFromAcks()
}

// sendExecute sends a follower the chosen entries after its chosen prefix, one
// message at a time, until it has them all; a passive follower at most one
// message a tick, so that it saves the slots chosen meanwhile with one fsync.
func (r *Replica) sendExecute(id uint64, p *progress) {
	l := r.lead
	if p.executing || p.chosen >= r.chosen || (p.passive && p.execTicked) {
		return
	}
	p.execTicked = true
	m := Message{Type: MsgExecute, To: id, Ballot: l.ballot, Commit: r.chosen}
	if p.chosen < r.compacted {
		// The slots it lacks are compacted here: tell it to fetch a snapshot,
		// once per election timeout while it stays behind.
		if p.hinted && l.ticks-p.hintedAt < r.cfg.ElectionTicks {
			return
		}
		p.hinted, p.hintedAt = true, l.ticks
		m.Snapshot = r.compacted
		p.executing = true
		p.execAt = l.ticks
		r.send(m)
		return
	}
	bytes := 0
	for s := p.chosen + 1; s <= r.chosen && len(m.Entries) < r.cfg.MaxEntriesPerMessage; s++ {
		le, ok := r.log[s]
		if !ok {
			break
		}
		if bytes > 0 && bytes+len(le.Data) > r.cfg.MaxBytesPerMessage {
			break
		}
		bytes += len(le.Data)
		m.Entries = append(m.Entries, le.Entry)
	}
	if len(m.Entries) == 0 {
		return
	}
	p.executing = true
	p.execAt = l.ticks
	r.send(m)
}

func (r *Replica) handleExecuted(m Message) {
	l := r.lead
	if l == nil {
		return
	}
	p := l.followers[m.From]
	if p == nil {
		return
	}
	p.executing = false
	p.chosen = m.Commit
	if p.chosen < r.chosen {
		r.sendExecute(m.From, p)
	}
}

// handleUnreachable: a request to m.From failed. Its entries are sent again once
// the follower answers a heartbeat.
func (r *Replica) handleUnreachable(m Message) {
	l := r.lead
	if l == nil {
		return
	}
	p := l.followers[m.From]
	if p == nil {
		return
	}
	if m.RoundTrip == 0 {
		// Only accept requests carry a round trip number; this was an execute.
		p.executing = false
		return
	}
	if req, ok := p.inflight[m.RoundTrip]; ok {
		delete(p.inflight, m.RoundTrip)
		if req.last >= req.first && req.first < p.next {
			p.next = req.first
		}
	}
	p.paused = true
	if r.cfg.Thrifty && !p.passive {
		r.pickActive()
	}
}

// tickLeader sends heartbeats, resends what got no answer, and steps down when a
// majority has not answered for an election timeout (so an isolated leader stops
// refusing other candidates and tells its clients so).
func (r *Replica) tickLeader() {
	l := r.lead
	l.ticks++
	if l.ticks-l.lastBeat >= r.cfg.HeartbeatTicks {
		l.heartbeatDue = true
	}
	expiry := r.cfg.ElectionTicks
	for _, p := range l.followers {
		for rt, req := range p.inflight {
			if l.ticks-req.sentAt > expiry {
				delete(p.inflight, rt)
				if req.last >= req.first && req.first < p.next {
					p.next = req.first
				}
			}
		}
		if p.executing && l.ticks-p.execAt > expiry {
			p.executing = false
		}
		p.execTicked = false
	}
	if r.cfg.Thrifty {
		if l.ticks-l.lastCensus >= r.cfg.ThriftyCensusTicks {
			l.censusDue = true
		}
		r.pickActive()
	}
	heard := 1
	for _, p := range l.followers {
		if l.ticks-p.heardAt <= r.cfg.ElectionTicks {
			heard++
		}
	}
	if heard >= r.quorumSize() {
		r.electionElapsed = 0
	} else if r.electionElapsed >= r.cfg.ElectionTicks {
		r.logger.Warn("lost contact with a majority; stepping down", "ballot", l.ballot.String())
		r.becomeFollower(0)
		r.resetElectionTimer()
	}
}
