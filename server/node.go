package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
	"github.com/ballot-kv/ballot/transport"
)

// Errors the node reports to the client handler.
var (
	// errNotLeader: this replica does not lead; nothing was proposed.
	errNotLeader = errors.New("not the leader")
	// errUnavailable: no quorum in time, or leadership changed while the request
	// was in flight; the write may or may not take effect.
	errUnavailable = errors.New("unavailable")
	// errStopped: the replica is shutting down.
	errStopped = errors.New("replica stopping")
	// errStorageFailed: the replica stops because its stable storage failed (a
	// write or fsync error, a full disk); wrapped with the storage's error, which
	// names the file. Clients are told it as Unavailable.
	errStorageFailed = errors.New("replica stopping: its stable storage failed")
	// errStarting: the replica is starting and not yet taking part.
	errStarting = errors.New("replica starting")
	// errNotMember: a peer request came from a replica that is not a voting
	// member, or was not a request.
	errNotMember = errors.New("sender is not a voting member of this replica's configuration")
	// errFromSelf: a peer request names this replica as its sender. The core
	// ignores such a message, so left to it the request would wait, unanswered,
	// for its deadline.
	errFromSelf = errors.New("sender is this replica itself")
)

// Storage is what the node needs of stable storage; *store.Store provides it.
type Storage interface {
	Save(savePromised bool, promised peer.Ballot, entries []peer.Entry) error
	Apply(entries []peer.Entry) ([]store.Result, error)
	Get(key string) ([]byte, bool, error)
	Applied() uint64
	Keys() int
	LogEntries() int
	Compact(upTo uint64) error
	InstallSnapshot(path string) (store.SnapshotInfo, error)
	FileSize() int64
	Rewrite() error
	SetRebuildTo(slot uint64) error
	Config() ([]byte, error)
	DropLog() error
	Durable() (peer.Durable, error)
}

var _ Storage = (*store.Store)(nil)

// Sender delivers requests to other replicas; replies and failures come back
// through the function given to the node's Deliver.
type Sender interface {
	Send(m peer.Message)
}

// inbound is a request from another replica waiting for the core's reply.
type inbound struct {
	msg   peer.Message
	reply chan peer.Message
}

// proposal is one client write waiting to be chosen and applied.
type proposal struct {
	cmd  command.Command
	done chan writeOutcome
}

type writeOutcome struct {
	res store.Result
	err error
}

// readRequest is one linearizable read waiting for the leader to confirm itself.
type readRequest struct {
	key   string
	token uint64
	index uint64
	done  chan readOutcome
}

type readOutcome struct {
	value []byte
	found bool
	err   error
}

type clientKey struct{ client, seq uint64 }

// nodeState is what handlers may read without asking the loop.
type nodeState struct {
	status peer.Status
	mem    membership // the configuration this replica is in
	member bool       // it votes in it
}

// node runs the core. Only the loop goroutine touches core, waiters and reads.
type node struct {
	core    *peer.Replica
	storage Storage
	sender  Sender
	logger  *slog.Logger
	tick    time.Duration

	inbox     chan inbound
	replies   chan peer.Message
	proposals chan *proposal
	reads     chan *readRequest

	jobs    chan func() // work finished elsewhere, to be carried on in the loop
	state   atomic.Pointer[nodeState]
	stopped chan struct{} // closed when the loop has returned
	// stopErr is why the loop returned: errStopped, or errStorageFailed with the
	// storage's error. Written before stopped is closed, read only after.
	stopErr error
	ctx     context.Context

	compact *compaction // nil: no snapshots or compaction (tests of the loop alone)

	// Leases (lease.go): leaseClock is nil when linearizable reads always take a
	// heartbeat round; lease is what handlers read, nil while there is none.
	leaseClock *leaseClock
	lease      atomic.Pointer[readLease]

	// Configuration (reconfig.go). mem is the configuration this replica runs;
	// retired: it is not a member (any more); joining: it has none yet and waits
	// for a snapshot that brings one.
	self           uint64
	mem            membership
	retired        bool
	joining        bool
	coreConfig     peer.Config // how to make a core for a new configuration
	storagePath    string
	selfAddr       string                   // this replica's peer address, sent with its requests
	fileList       []replicas.Replica       // this replica's replicas file: how it reaches the members it lists
	links          func([]replicas.Replica) // makes sure the sender can reach these replicas
	reconfigs      chan *reconfigRequest
	reconfigSlot   uint64 // slot of the change this leader proposed, 0 if none
	reconfigWaiter *reconfigRequest
	// rebuilding: the store records a rebuild of lost state (peer.Durable.RebuildTo)
	// that the core has not finished yet.
	rebuilding bool

	// Loop-owned state.
	nextToken    uint64
	pendingReply map[uint64]chan peer.Message
	waiters      map[clientKey][]*proposal
	// anonymous holds the writes of client id 0, which have no (client id, seq)
	// to match a result by: by the slot they were proposed in, in batch order.
	anonymous    map[uint64][]*proposal
	readWaiters  map[uint64]*readRequest
	readsAfter   []*readRequest // confirmed, waiting for apply to reach their index
	deferred     []peer.Entry   // chosen, handed out by the core, not yet applied (mayDefer)
	queued       []*proposal    // accepted from clients, not yet proposed (one per client id and seq)
	catchUpSince time.Time      // when this replica fell behind its leader; zero when it is not
	catchUpFrom  uint64
	maxInFlight  int       // slots proposed and not yet chosen (see nextBatch)
	slotLimit    slotLimit // what one slot carries at most
	fatal        error
}

func newNode(core *peer.Replica, storage Storage, sender Sender, tick time.Duration, maxInFlight int, logger *slog.Logger) *node {
	n := &node{
		maxInFlight:  maxInFlight,
		slotLimit:    slotLimit{commands: maxSlotCommands, bytes: maxSlotBytes},
		core:         core,
		storage:      storage,
		sender:       sender,
		logger:       logger,
		tick:         tick,
		inbox:        make(chan inbound, 1024),
		replies:      make(chan peer.Message, 4096),
		proposals:    make(chan *proposal, 4096),
		reads:        make(chan *readRequest, 4096),
		jobs:         make(chan func(), 16),
		reconfigs:    make(chan *reconfigRequest, 16),
		self:         core.ID(),
		mem:          membership{epoch: 1},
		links:        func([]replicas.Replica) {},
		ctx:          context.Background(),
		pendingReply: make(map[uint64]chan peer.Message),
		waiters:      make(map[clientKey][]*proposal),
		anonymous:    make(map[uint64][]*proposal),
		readWaiters:  make(map[uint64]*readRequest),
		stopped:      make(chan struct{}),
	}
	n.publish()
	return n
}

func (n *node) publish() {
	st := n.core.Status()
	if !n.voting() {
		// A core that no longer (or not yet) votes may have been leading when
		// it stopped; it leads nothing now.
		st.IsLeader, st.Leader = false, 0
	}
	n.state.Store(&nodeState{status: st, mem: n.mem, member: n.voting()})
}

// status returns the core's status as of the last loop iteration.
func (n *node) status() peer.Status { return n.state.Load().status }

// step hands a request from another replica to the core and waits for its reply,
// which the loop releases only after the state it depends on is durable.
func (n *node) step(ctx context.Context, m peer.Message) (peer.Message, error) {
	if m.From == n.self {
		return peer.Message{}, fmt.Errorf("%v from replica %d: %w", m.Type, m.From, errFromSelf)
	}
	if err := checkEntries(m.Entries); err != nil {
		return peer.Message{}, fmt.Errorf("%v from replica %d: %w", m.Type, m.From, err)
	}
	if st := n.state.Load(); st != nil {
		if err := checkConfigEpochs(m.Entries, m.Epoch, st.mem.epoch, st.status.Applied); err != nil {
			return peer.Message{}, fmt.Errorf("%v from replica %d: %w", m.Type, m.From, err)
		}
	}
	in := inbound{msg: m, reply: make(chan peer.Message, 1)}
	select {
	case n.inbox <- in:
	case <-n.stopped:
		return peer.Message{}, n.stopErr
	case <-ctx.Done():
		return peer.Message{}, ctx.Err()
	}
	select {
	case r, ok := <-in.reply:
		if !ok {
			return peer.Message{}, n.stopErr
		}
		if r.Type == 0 {
			return peer.Message{}, fmt.Errorf("%v from replica %d: %w", m.Type, m.From, errNotMember)
		}
		return r, nil
	case <-n.stopped:
		return peer.Message{}, n.stopErr
	case <-ctx.Done():
		return peer.Message{}, ctx.Err()
	}
}

func isRequest(t peer.MessageType) bool {
	return t == peer.MsgPrepare || t == peer.MsgAccept || t == peer.MsgExecute
}

// deliver hands the core a reply to one of its requests, or news that one failed.
func (n *node) deliver(m peer.Message) {
	err := checkEntries(m.Entries)
	if st := n.state.Load(); err == nil && st != nil {
		err = checkConfigEpochs(m.Entries, m.Epoch, st.mem.epoch, st.status.Applied)
	}
	if err != nil {
		// Dropped like a lost reply: a promise reporting such an entry would
		// have a new leader propose it again.
		n.logger.Warn("reply dropped", "from", m.From, "type", m.Type.String(), "err", err)
		return
	}
	select {
	case n.replies <- m:
	default:
		// The loop is far behind; a lost reply is like a lost message, which
		// the protocol tolerates (the leader resends).
	}
}

// propose submits a client write and waits for its result.
func (n *node) propose(ctx context.Context, cmd command.Command) (store.Result, error) {
	p := &proposal{cmd: cmd, done: make(chan writeOutcome, 1)}
	select {
	case n.proposals <- p:
	case <-n.stopped:
		return store.Result{}, n.stopErr
	case <-ctx.Done():
		return store.Result{}, fmt.Errorf("%w: request queue full", errUnavailable)
	}
	select {
	case out := <-p.done:
		return out.res, out.err
	case <-n.stopped:
		return store.Result{}, n.stopErr
	case <-ctx.Done():
		return store.Result{}, fmt.Errorf("%w: no quorum within the deadline", errUnavailable)
	}
}

// read serves a linearizable read.
func (n *node) read(ctx context.Context, key string) ([]byte, bool, error) {
	rq := &readRequest{key: key, done: make(chan readOutcome, 1)}
	select {
	case n.reads <- rq:
	case <-n.stopped:
		return nil, false, n.stopErr
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: request queue full", errUnavailable)
	}
	select {
	case out := <-rq.done:
		return out.value, out.found, out.err
	case <-n.stopped:
		return nil, false, n.stopErr
	case <-ctx.Done():
		return nil, false, fmt.Errorf("%w: leadership not confirmed within the deadline", errUnavailable)
	}
}

// run is the node loop. It returns when ctx ends or storage fails: then every
// request waiting for the loop, and every later one, is answered with
// errStorageFailed and the storage's error, which names the file, so that
// clients learn why rather than wait out their deadline.
func (n *node) run(ctx context.Context) (err error) {
	n.ctx = ctx
	ticker := time.NewTicker(n.tick)
	defer ticker.Stop()
	defer func() {
		n.lease.Store(nil)
		n.stopErr = errStopped
		if err != nil {
			n.stopErr = fmt.Errorf("%w: %w", errStorageFailed, err)
		}
		n.failAll(n.stopErr)
		close(n.stopped)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := n.applyDeferred(); err != nil {
				n.logger.Error("replica stops: stable storage failed", "err", err)
				return err
			}
			if n.voting() {
				n.core.Tick()
			}
		case rq := <-n.reconfigs:
			n.startReconfig(rq)
		case in := <-n.inbox:
			n.stepInbound(in)
		case m := <-n.replies:
			if n.gateReply(m) {
				n.core.Step(m)
			}
		case p := <-n.proposals:
			n.collectProposals(p)
		case rq := <-n.reads:
			n.startRead(rq)
		case fn := <-n.jobs:
			fn()
		}
		n.drain()
		n.proposeQueued()
		err := n.handleReady()
		if err == nil {
			err = n.fatal
		}
		if err != nil {
			// Fail-stop: after a failed write or fsync the replica cannot know
			// what its disk holds, so it must not promise or accept anything
			// more; the others carry on without it.
			n.logger.Error("replica stops: stable storage failed", "err", err)
			return err
		}
	}
}

// drain takes whatever else is already waiting, so one Ready (one fsync, one
// message per follower) covers all of it: group commit without a timer.
func (n *node) drain() {
	for i := 0; i < 1024; i++ {
		select {
		case in := <-n.inbox:
			n.stepInbound(in)
		case m := <-n.replies:
			if n.gateReply(m) {
				n.core.Step(m)
			}
		case p := <-n.proposals:
			n.collectProposals(p)
		case rq := <-n.reads:
			n.startRead(rq)
		default:
			return
		}
	}
}

func (n *node) stepInbound(in inbound) {
	if !isRequest(in.msg.Type) {
		in.reply <- peer.Message{}
		return
	}
	if n.gateInbound(in) {
		return
	}
	if !n.core.IsMember(in.msg.From) && in.msg.Type != peer.MsgExecute {
		// The core would ignore it and never answer; say so now.
		in.reply <- peer.Message{}
		return
	}
	n.nextToken++
	in.msg.Token = n.nextToken
	n.pendingReply[n.nextToken] = in.reply
	n.core.Step(in.msg)
}

// collectProposals queues p, with every proposal already waiting, for the next
// slot this leader proposes.
func (n *node) collectProposals(first *proposal) {
	batch := []*proposal{first}
	for len(batch) < 4096 {
		select {
		case p := <-n.proposals:
			batch = append(batch, p)
			continue
		default:
		}
		break
	}
	if !n.voting() || !n.core.IsLeader() {
		for _, p := range batch {
			p.done <- writeOutcome{err: errNotLeader}
		}
		return
	}
	for _, p := range batch {
		if p.cmd.ClientID == 0 {
			n.queued = append(n.queued, p) // no de-duplication: see proposeQueued
			continue
		}
		k := clientKey{p.cmd.ClientID, p.cmd.Seq}
		if ws := n.waiters[k]; len(ws) > 0 {
			// A retry of a write already waiting: it gets the same result.
			n.waiters[k] = append(ws, p)
			continue
		}
		n.waiters[k] = append(n.waiters[k], p)
		n.queued = append(n.queued, p)
	}
}

// slotLimit bounds the writes one slot carries. A slot travels whole in one
// accept request, so its bytes must stay well inside the peer port's frame limit
// however many large writes queue up; past these bounds a slot costs no less per
// write, only longer to send, save and apply while the loop waits.
type slotLimit struct {
	commands int
	bytes    int
}

// The slot limit of a running replica: 1,024 writes or 4 MiB (peerMaxFrame is
// 64 MiB), whichever comes first.
const (
	maxSlotCommands = 1024
	maxSlotBytes    = 4 << 20
)

// commandOverhead is a generous bound on what the batch encoding adds to a
// command's key and value.
const commandOverhead = 64

// nextBatch says how many of the queued writes, from the front, go into the next
// slot; 0: they wait. With nothing in flight everything queued goes, up to the
// slot limit, so an idle cluster adds no delay. With slots in flight a new one
// is proposed only once a full slot's worth is waiting: a write that arrives
// during a round waits for it and shares the next slot with everything else that
// arrived meanwhile. On a machine where the replicas' CPU is what runs out,
// fewer and larger slots carry more writes (each slot costs every replica an
// fsync and a message round, ~1 ms of CPU on the reference machine); when a
// round is long and writes pour in, full slots still overtake each other, up to
// maxInFlight of them.
func nextBatch(queued []*proposal, inFlight, maxInFlight int, limit slotLimit) int {
	if len(queued) == 0 || inFlight >= maxInFlight {
		return 0
	}
	n, bytes := 0, 0
	for _, p := range queued {
		size := len(p.cmd.Key) + len(p.cmd.Value) + commandOverhead
		if n == limit.commands || (n > 0 && bytes+size > limit.bytes) {
			return n // a full slot
		}
		n, bytes = n+1, bytes+size
	}
	if inFlight > 0 {
		return 0 // not a full slot: it waits for the round in flight
	}
	return n
}

// proposeQueued proposes the queued writes in as many slots as nextBatch allows.
func (n *node) proposeQueued() {
	for {
		count := nextBatch(n.queued, n.core.InFlight(), n.maxInFlight, n.slotLimit)
		if count == 0 {
			return
		}
		ps := n.queued[:count:count]
		n.queued = n.queued[count:]
		if len(n.queued) == 0 {
			n.queued = nil
		}
		n.proposeBatch(ps)
	}
}

func (n *node) proposeBatch(ps []*proposal) {
	cmds := make([]command.Command, len(ps))
	for i, p := range ps {
		cmds[i] = p.cmd
	}
	data, err := command.EncodeBatch(cmds)
	var slot uint64
	if err == nil {
		slot, err = n.core.Propose(data)
	}
	for _, p := range ps {
		switch {
		case err != nil:
			n.answer(p, writeOutcome{err: fmt.Errorf("%w: %v", errUnavailable, err)})
		case p.cmd.ClientID == 0:
			// Its result is the next one of client id 0 in this slot.
			n.anonymous[slot] = append(n.anonymous[slot], p)
		}
	}
}

// answer answers a queued write, and every retry of it waiting with it.
func (n *node) answer(p *proposal, out writeOutcome) {
	if p.cmd.ClientID == 0 {
		p.done <- out
		return
	}
	n.answerWrite(clientKey{p.cmd.ClientID, p.cmd.Seq}, out)
}

// answerAnonymous answers the write of client id 0 that res is the result of,
// if this replica proposed it.
func (n *node) answerAnonymous(res store.Result) {
	ps := n.anonymous[res.Slot]
	if len(ps) == 0 {
		return // proposed by another leader
	}
	p := ps[0]
	if len(ps) == 1 {
		delete(n.anonymous, res.Slot)
	} else {
		n.anonymous[res.Slot] = ps[1:]
	}
	out := writeOutcome{res: res}
	if p.cmd.Op != res.Op || p.cmd.Key != res.Key {
		// The slot holds another leader's batch. Writes waiting here are failed
		// when leadership is lost, so this is not expected; if it happens, the
		// write's fate is unknown.
		out = writeOutcome{err: fmt.Errorf("%w: slot %d holds another write", errUnavailable, res.Slot)}
	}
	p.done <- out
}

func (n *node) answerWrite(k clientKey, out writeOutcome) {
	for _, p := range n.waiters[k] {
		p.done <- out
	}
	delete(n.waiters, k)
}

func (n *node) startRead(rq *readRequest) {
	n.nextToken++
	rq.token = n.nextToken
	if !n.voting() {
		rq.done <- readOutcome{err: errNotLeader}
		return
	}
	if err := n.core.ReadIndex(rq.token); err != nil {
		rq.done <- readOutcome{err: errNotLeader}
		return
	}
	n.readWaiters[rq.token] = rq
}

// handleReady carries out the core's work in the order package peer requires:
// save, send, apply, answer.
func (n *node) handleReady() error {
	for n.core.HasReady() {
		rd := n.core.Ready()
		// Taken before anything is sent: a round leaves no earlier than this.
		sentAt := time.Now()
		for i := range rd.Messages {
			rd.Messages[i].Epoch = n.mem.epoch
			rd.Messages[i].FromAddr = n.selfAddr
			if m := &rd.Messages[i]; m.Type == peer.MsgAccept && n.leaseClock != nil {
				n.leaseClock.noteSent(m.Ballot, m.RoundTrip, sentAt)
			}
		}
		// A leader's accept and execute requests may leave before its own entries
		// are durable: its vote counts only after they are (in Advance), and the
		// followers' fsyncs then overlap its own. Promises and accepted replies
		// never leave before the state they report is on disk.
		early := rd.IsLeader
		if early {
			for _, m := range rd.Messages {
				if m.Type == peer.MsgAccept || m.Type == peer.MsgExecute {
					n.sender.Send(m)
				}
			}
		}
		// A leader applies what is chosen before it saves the next slot's
		// entries: chosen entries are durable on a majority, and a leader's were
		// saved in an earlier Ready (it counts its own vote only after its save),
		// so their writers need not wait for another fsync to hear back. Entries
		// this Ready also saves (a new leader may learn some chosen ones from
		// promises) keep the usual order.
		appliedFirst := false
		if early && len(rd.Entries) > 0 && len(rd.Committed) > 0 && !overlap(rd.Committed, rd.Entries) {
			if err := n.apply(rd.Committed); err != nil {
				return err
			}
			appliedFirst = true
		}
		if rd.SavePromised || len(rd.Entries) > 0 {
			if err := n.storage.Save(rd.SavePromised, rd.Promised, rd.Entries); err != nil {
				return err // names the operation and the file
			}
		}
		for _, m := range rd.Messages {
			if m.Type.IsReply() {
				if ch, ok := n.pendingReply[m.Token]; ok {
					delete(n.pendingReply, m.Token)
					ch <- m
				}
				continue
			}
			if early && (m.Type == peer.MsgAccept || m.Type == peer.MsgExecute) {
				continue
			}
			n.sender.Send(m)
		}
		switch {
		case appliedFirst: // done before the save
		case n.mayDefer(rd):
			n.deferred = append(n.deferred, rd.Committed...)
			if len(n.deferred) >= maxDeferredSlots {
				if err := n.applyDeferred(); err != nil {
					return err
				}
			}
		default:
			if err := n.apply(rd.Committed); err != nil {
				return err
			}
		}
		for _, rs := range rd.Reads {
			if rq, ok := n.readWaiters[rs.Token]; ok {
				delete(n.readWaiters, rs.Token)
				rq.index = rs.Index
				n.readsAfter = append(n.readsAfter, rq)
			}
		}
		for _, tok := range rd.FailedReads {
			if rq, ok := n.readWaiters[tok]; ok {
				delete(n.readWaiters, tok)
				rq.done <- readOutcome{err: fmt.Errorf("%w: leadership lost", errUnavailable)}
			}
		}
		if rd.LeaderChanged {
			n.logger.Info("leader changed", "leader", rd.Leader, "is_leader", rd.IsLeader)
			if !rd.IsLeader {
				// Queued commands were never proposed: any replica may take them.
				for _, p := range n.queued {
					n.answer(p, writeOutcome{err: errNotLeader})
				}
				n.queued = nil
				n.failWrites(fmt.Errorf("%w: leadership changed before the write was chosen", errUnavailable))
				n.failReconfig(fmt.Errorf("%w: leadership changed before the configuration change was applied; "+
					"check status and call again", errUnavailable))
			}
		}
		if rd.Snapshot.Index != 0 {
			n.wantSnapshot(rd.Snapshot)
		}
		n.core.Advance(rd)
		n.serveReads()
		if err := n.afterConfigApplied(); err != nil {
			return err
		}
	}
	n.publish()
	n.renewLease()
	n.noteCatchUp()
	if n.rebuilding && n.status().RebuildTo == 0 {
		if err := n.storage.SetRebuildTo(0); err != nil {
			return fmt.Errorf("end rebuild: %w", err)
		}
		n.rebuilding = false
		n.logger.Info("lost acceptor state rebuilt: voting again", "chosen", n.status().Chosen)
	}
	return nil
}

// overlap reports whether an entry of saving is in the slots committed spans
// (committed is consecutive, in slot order).
func overlap(committed, saving []peer.Entry) bool {
	if len(committed) == 0 {
		return false
	}
	first, last := committed[0].Slot, committed[len(committed)-1].Slot
	for _, e := range saving {
		if e.Slot >= first && e.Slot <= last {
			return true
		}
	}
	return false
}

// maxDeferredSlots bounds the chosen slots a follower holds back before it
// applies them together; it applies them at every tick too (see mayDefer).
const maxDeferredSlots = 8

// mayDefer says whether the chosen entries of rd may wait in n.deferred. Every
// Apply call costs a follower two writes to its file and a transaction, however
// few commands it carries, and under load a follower learns one slot at a time
// (each accept carries the commit point of the one before); a follower has no
// client waiting for the results, so it applies up to maxDeferredSlots slots
// in one call, or whatever is held at the next tick. That is the only cost: a
// stale read from a follower may lag by that much more. Never deferred: a
// leader's entries, entries when leadership changes, a configuration entry
// (its effects on membership cannot wait), or anything while a snapshot is
// wanted, lost state is being rebuilt, or the replica does not vote.
func (n *node) mayDefer(rd peer.Ready) bool {
	if rd.IsLeader || rd.LeaderChanged || rd.Snapshot.Index != 0 || n.rebuilding || !n.voting() ||
		len(n.readsAfter) > 0 {
		return false
	}
	for _, e := range rd.Committed {
		if e.Kind == peer.KindConfig {
			return false
		}
	}
	return true
}

// applyDeferred applies the chosen entries held back by mayDefer.
func (n *node) applyDeferred() error { return n.apply(nil) }

// apply applies chosen entries, after any held back, and answers the writes
// waiting for them.
func (n *node) apply(entries []peer.Entry) error {
	if len(n.deferred) > 0 {
		entries = append(n.deferred, entries...)
		n.deferred = nil
	}
	if len(entries) == 0 {
		return nil
	}
	results, err := n.storage.Apply(entries)
	if err != nil {
		return err // names the slots and the file
	}
	n.afterApply(entries)
	for _, res := range results {
		if res.ClientID == 0 {
			n.answerAnonymous(res)
			continue
		}
		n.answerWrite(clientKey{res.ClientID, res.Seq}, writeOutcome{res: res})
	}
	return nil
}

// renewLease publishes the lease the core's latest answered round gives, or
// withdraws it.
func (n *node) renewLease() {
	if n.leaseClock == nil {
		return
	}
	if b, round, index, ok := n.core.LeaseRound(); ok && n.voting() {
		until, ok := n.leaseClock.until(b, round)
		if round == 0 {
			// The only member leads until its configuration changes, which
			// withdraws the lease first; renewed at every Ready.
			until, ok = time.Now().Add(time.Hour), true
		}
		if ok {
			if cur := n.lease.Load(); cur == nil || !cur.until.Equal(until) || cur.index != index {
				n.lease.Store(&readLease{until: until, index: index})
			}
			return
		}
	}
	if n.lease.Load() != nil {
		n.lease.Store(nil)
	}
}

// inquire answers another replica that starts without acceptor state (see
// planRebuild), from the core.
func (n *node) inquire(ctx context.Context) (transport.Inquiry, error) {
	done := make(chan transport.Inquiry, 1)
	job := func() {
		p, h := n.core.Inquire()
		done <- transport.Inquiry{From: n.self, Promised: p, Highest: h, Epoch: n.mem.epoch, Members: n.mem.ids()}
	}
	select {
	case n.jobs <- job:
	case <-n.stopped:
		return transport.Inquiry{}, n.stopErr
	case <-ctx.Done():
		return transport.Inquiry{}, ctx.Err()
	}
	select {
	case q := <-done:
		return q, nil
	case <-n.stopped:
		return transport.Inquiry{}, n.stopErr
	case <-ctx.Done():
		return transport.Inquiry{}, ctx.Err()
	}
}

// catchUpLag is how far behind its leader a replica must fall before it logs
// that it is catching up.
const catchUpLag = 64

// noteCatchUp logs, once each, when this replica falls well behind what its
// leader has chosen and when it has applied all of it again.
func (n *node) noteCatchUp() {
	st := n.status()
	behind := st.LeaderCommit - min(st.LeaderCommit, st.Applied)
	switch {
	case n.catchUpSince.IsZero() && behind > catchUpLag:
		n.catchUpSince = time.Now()
		n.catchUpFrom = st.Applied
		n.logger.Info("catch-up started", "applied", st.Applied, "leader_commit", st.LeaderCommit, "leader", st.Leader)
	case !n.catchUpSince.IsZero() && behind == 0:
		n.logger.Info("catch-up finished", "applied", st.Applied, "slots", st.Applied-n.catchUpFrom,
			"took", time.Since(n.catchUpSince).Round(time.Millisecond))
		n.catchUpSince = time.Time{}
	}
}

// serveReads answers the confirmed reads whose index has been applied.
func (n *node) serveReads() {
	if len(n.readsAfter) == 0 {
		return
	}
	applied := n.storage.Applied()
	kept := n.readsAfter[:0]
	for _, rq := range n.readsAfter {
		if rq.index > applied {
			kept = append(kept, rq)
			continue
		}
		v, found, err := n.storage.Get(rq.key)
		rq.done <- readOutcome{value: v, found: found, err: err}
	}
	n.readsAfter = kept
}

// failReads answers every read waiting for confirmation or for the apply with err.
func (n *node) failReads(err error) {
	for tok, rq := range n.readWaiters {
		rq.done <- readOutcome{err: err}
		delete(n.readWaiters, tok)
	}
	for _, rq := range n.readsAfter {
		rq.done <- readOutcome{err: err}
	}
	n.readsAfter = nil
}

func (n *node) failWrites(err error) {
	for k := range n.waiters {
		n.answerWrite(k, writeOutcome{err: err})
	}
	for slot, ps := range n.anonymous {
		for _, p := range ps {
			p.done <- writeOutcome{err: err}
		}
		delete(n.anonymous, slot)
	}
}

// failAll answers every waiting request with err (on shutdown).
func (n *node) failAll(err error) {
	n.failReconfig(err)
	for _, p := range n.queued {
		n.answer(p, writeOutcome{err: err})
	}
	n.queued = nil
	n.failWrites(err)
	for tok, rq := range n.readWaiters {
		rq.done <- readOutcome{err: err}
		delete(n.readWaiters, tok)
	}
	for _, rq := range n.readsAfter {
		rq.done <- readOutcome{err: err}
	}
	n.readsAfter = nil
	for tok, ch := range n.pendingReply {
		close(ch)
		delete(n.pendingReply, tok)
	}
}
