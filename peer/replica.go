package peer

import (
	"fmt"
	"log/slog"
	"math/rand"
	"slices"
)

type role uint8

const (
	follower role = iota
	candidate
	leader
)

func (r role) String() string {
	return [...]string{"follower", "candidate", "leader"}[r]
}

// logEntry is an accepted entry and whether this replica knows it is chosen.
type logEntry struct {
	Entry
	chosen bool
}

// Replica is one Multi-Paxos replica: acceptor, learner and (when it leads)
// proposer. It is not safe for concurrent use; one goroutine owns it.
type Replica struct {
	cfg     Config
	id      uint64
	members []uint64       // sorted voting members
	pos     map[uint64]int // member id → position in members, for quorum bit sets
	logger  *slog.Logger
	rng     *rand.Rand

	// Acceptor state. promised and every entry in log are durable once the Ready
	// that carried them has been saved.
	promised Ballot
	log      map[uint64]*logEntry

	// Learner state.
	chosen       uint64 // every slot up to chosen is chosen and its value is known
	applied      uint64 // every slot up to applied has been handed out to apply
	leaderCommit uint64 // highest commit point a leader announced here
	compacted    uint64 // no log entry up to this slot is kept (compacted <= applied)
	rebuildTo    uint64 // see Durable.RebuildTo; 0 once chosen reaches it
	endedAt      uint64 // slot of a chosen configuration entry: this configuration is over

	// Snapshot requests: the pending one for the next Ready, and the last one
	// handed out, so that hints repeated by every heartbeat do not become a request
	// each.
	snapWant    SnapshotWanted
	snapAsked   SnapshotWanted
	snapAskedAt int
	ticks       int // ticks since New, for pacing snapshot requests

	// Role state.
	role            role
	leader          uint64 // the leader this replica follows (or itself), 0 if none
	electionElapsed int    // ticks since the last message from a live leader, or since campaigning
	electionTimeout int    // randomised timeout for the current wait
	maxSeen         Ballot // highest ballot seen anywhere, so a new campaign outbids it

	cand *candidacy  // non-nil while a candidate
	lead *leadership // non-nil while the leader

	// Output waiting for the next Ready.
	savePromised bool
	unsaved      []Entry
	msgs         []Message
	reads        []ReadState
	failedReads  []uint64
	lastLeader   uint64
	lastIsLeader bool
}

// New returns a replica that resumes from the durable state d.
func New(cfg Config, d Durable) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replica config: %w", err)
	}
	cfg = cfg.withDefaults()
	members := slices.Clone(cfg.Members)
	slices.Sort(members)
	pos := make(map[uint64]int, len(members))
	for i, m := range members {
		pos[m] = i
	}
	if d.Compacted > d.Applied {
		return nil, fmt.Errorf("durable state: log compacted to slot %d beyond the applied slot %d", d.Compacted, d.Applied)
	}
	r := &Replica{
		cfg:       cfg,
		id:        cfg.ID,
		members:   members,
		pos:       pos,
		logger:    cfg.Logger.With("replica", cfg.ID),
		rng:       rand.New(rand.NewSource(cfg.Seed ^ int64(cfg.ID)*7919)),
		promised:  d.Promised,
		log:       make(map[uint64]*logEntry, len(d.Entries)),
		chosen:    d.Applied,
		applied:   d.Applied,
		compacted: d.Compacted,
		rebuildTo: d.RebuildTo,
	}
	for _, e := range d.Entries {
		if e.Slot <= d.Compacted {
			continue // a compaction the storage had not finished; the slot is applied
		}
		// Accepting at a ballot implies having promised it: a torn write may have
		// kept an entry but lost the promise record written with it.
		r.promised = maxBallot(r.promised, e.Ballot)
		if old, ok := r.log[e.Slot]; ok && e.Ballot.Less(old.Ballot) {
			continue
		}
		// Entries up to the applied slot are chosen; they stay, so that this
		// replica can send them to one that lacks them.
		r.log[e.Slot] = &logEntry{Entry: e, chosen: e.Slot <= d.Applied}
	}
	r.maxSeen = r.promised
	r.resetElectionTimer()
	return r, nil
}

// AssumeLeader makes a replica that has just started follow id as a live leader,
// as if it had just heard from it: it promises id's ballots at once and refuses
// other candidates for an election timeout. A replica starting the next
// configuration calls it with the leader of the one that ended, who then leads
// the new one without waiting out HoldVotesAfterStart. It does nothing to a
// replica that has already heard from a leader or leads.
func (r *Replica) AssumeLeader(id uint64) {
	if r.role != follower || r.leader != 0 || id == r.id || !r.isMember(id) {
		return
	}
	r.leader = id
	r.electionElapsed = 0
}

// ID returns the replica's id.
func (r *Replica) ID() uint64 { return r.id }

// Members returns the voting members, sorted.
func (r *Replica) Members() []uint64 { return slices.Clone(r.members) }

// IsLeader reports whether this replica leads.
func (r *Replica) IsLeader() bool { return r.role == leader }

// Leader returns the leader this replica knows, or 0.
func (r *Replica) Leader() uint64 { return r.leader }

// Status reports the replica's view of itself.
func (r *Replica) Status() Status {
	return Status{
		ID:           r.id,
		Leader:       r.leader,
		IsLeader:     r.role == leader,
		Promised:     r.promised,
		Chosen:       r.chosen,
		Applied:      r.applied,
		LogEntries:   len(r.log),
		Compacted:    r.compacted,
		RebuildTo:    r.rebuildTo,
		LeaderCommit: max(r.leaderCommit, r.chosen),
		Members:      slices.Clone(r.members),
	}
}

// quorumSize is the number of members that make a majority.
func (r *Replica) quorumSize() int { return majority(len(r.members)) }

func (r *Replica) isMember(id uint64) bool { _, ok := r.pos[id]; return ok }

// IsMember reports whether id is another voting member: the only replicas whose
// messages Step acts on (and answers).
func (r *Replica) IsMember(id uint64) bool { return id != r.id && r.isMember(id) }

// Tick advances the logical clock by one tick.
func (r *Replica) Tick() {
	r.ticks++
	r.electionElapsed++
	switch r.role {
	case leader:
		r.tickLeader()
	default:
		if r.role == candidate && r.cand != nil && r.electionElapsed%r.cfg.HeartbeatTicks == 0 {
			r.resendCampaign()
		}
		if r.electionElapsed >= r.electionTimeout {
			if r.rebuilding() || r.ended() {
				// Its own empty acceptor state would count in its phase 1.
				r.resetElectionTimer()
				return
			}
			r.campaign()
		}
	}
}

// resetElectionTimer restarts the wait before campaigning, with a fresh random
// timeout so that replicas which lost a leader together do not campaign together
// forever (the randomised backoff that breaks dueling proposers).
func (r *Replica) resetElectionTimer() {
	r.electionElapsed = 0
	r.electionTimeout = r.cfg.ElectionTicks + r.rng.Intn(r.cfg.ElectionTicks)
}

// send queues a message for the next Ready.
func (r *Replica) send(m Message) {
	m.From = r.id
	r.msgs = append(r.msgs, m)
}

// persistPromise raises the promised ballot and queues it for saving.
func (r *Replica) persistPromise(b Ballot) {
	if r.promised.Less(b) {
		r.promised = b
		r.savePromised = true
	}
	r.maxSeen = maxBallot(r.maxSeen, b)
}

// storeEntry records an entry in the acceptor log and queues it for saving.
func (r *Replica) storeEntry(e Entry, chosen bool) {
	le, ok := r.log[e.Slot]
	if !ok {
		le = &logEntry{}
		r.log[e.Slot] = le
	}
	le.Entry = e
	le.chosen = le.chosen || chosen
	r.unsaved = append(r.unsaved, e)
}

// becomeFollower makes this replica follow leaderID (0: none known).
func (r *Replica) becomeFollower(leaderID uint64) {
	if r.role == leader {
		r.logger.Info("stepped down", "ballot", r.lead.ballot.String(), "new_leader", leaderID)
		r.failPendingReads()
	}
	r.role = follower
	r.cand = nil
	r.lead = nil
	r.leader = leaderID
}

// Step hands the replica one message. Messages from non-members are ignored.
func (r *Replica) Step(m Message) {
	// A chosen value is a fact whoever reports it: execute requests are taken from
	// any replica, so one that joined or lags across a configuration change can
	// learn from a leader it does not know as a member.
	if m.From == r.id || (!r.isMember(m.From) && m.Type != MsgExecute) {
		return
	}
	r.maxSeen = maxBallot(r.maxSeen, m.Ballot)
	switch m.Type {
	case MsgPrepare:
		r.handlePrepare(m)
	case MsgAccept:
		r.handleAccept(m)
	case MsgExecute:
		r.handleExecute(m)
	case MsgPromise:
		r.handlePromise(m)
	case MsgAccepted:
		r.handleAccepted(m)
	case MsgExecuted:
		r.handleExecuted(m)
	case MsgUnreachable:
		r.handleUnreachable(m)
	}
}

// HasReady reports whether Ready would return any work.
func (r *Replica) HasReady() bool {
	if r.lead != nil && r.lead.needsFlush(r.chosen) {
		return true
	}
	return r.savePromised || len(r.unsaved) > 0 || len(r.msgs) > 0 ||
		r.chosen > r.applied || len(r.reads) > 0 || len(r.failedReads) > 0 || r.snapWant.Index != 0 ||
		r.leader != r.lastLeader || (r.role == leader) != r.lastIsLeader
}

// Ready returns the work accumulated since the last Advance. The caller must carry
// it out (see the package comment) and then call Advance with it.
func (r *Replica) Ready() Ready {
	if r.role == leader {
		r.flushLeader()
	}
	rd := Ready{
		SavePromised: r.savePromised,
		Promised:     r.promised,
		Entries:      r.unsaved,
		Messages:     r.msgs,
		Reads:        r.reads,
		FailedReads:  r.failedReads,
		Snapshot:     r.snapWant,
		Leader:       r.leader,
		IsLeader:     r.role == leader,
	}
	rd.LeaderChanged = rd.Leader != r.lastLeader || rd.IsLeader != r.lastIsLeader
	if r.chosen > r.applied {
		last := r.chosen
		if n := uint64(r.cfg.MaxEntriesPerMessage); last-r.applied > n {
			last = r.applied + n
		}
		rd.Committed = make([]Entry, 0, last-r.applied)
		for s := r.applied + 1; s <= last; s++ {
			rd.Committed = append(rd.Committed, r.log[s].Entry)
		}
	}
	r.savePromised = false
	r.unsaved = nil
	r.msgs = nil
	r.reads = nil
	r.failedReads = nil
	r.snapWant = SnapshotWanted{}
	r.lastLeader = rd.Leader
	r.lastIsLeader = rd.IsLeader
	return rd
}

// Advance tells the replica that rd has been carried out: its state is durable,
// its messages sent, its committed entries applied.
func (r *Replica) Advance(rd Ready) {
	if n := len(rd.Committed); n > 0 {
		r.applied = rd.Committed[n-1].Slot
	}
	// Our own promise and accepts count only now that they are on disk.
	if r.cand != nil && rd.SavePromised && rd.Promised == r.cand.ballot {
		r.cand.selfDurable = true
		r.checkCandidacy()
	}
	if r.lead != nil {
		for _, e := range rd.Entries {
			if e.Ballot == r.lead.ballot {
				r.vote(e.Slot, r.id)
			}
		}
	}
}
