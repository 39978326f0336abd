package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
)

// Configuration changes (docs/reconfiguration.md). A change is one log entry,
// chosen by the current members; its slot is the last they choose (package
// peer's stop rule). A replica that applies it starts a new core for the new
// members from the next slot, or, if it is not one of them, stops voting and
// answers clients with NotLeader. Prepare and accept traffic carries the
// sender's epoch and flows only within one configuration; a replica that meets a
// later epoch fetches a snapshot from that replica, which carries the new
// configuration, and goes on in it.

// errChangeUnderWay: a configuration change has been proposed and not applied yet.
var errChangeUnderWay = errors.New("a configuration change is under way")

// reconfigRequest is a reconfigure call waiting for its change to be applied.
type reconfigRequest struct {
	want membership
	done chan reconfigOutcome
}

type reconfigOutcome struct {
	mem  membership
	slot uint64
	err  error
}

// reconfigure asks the leader to change the members to want.members and waits
// until the change is applied here.
func (n *node) reconfigure(ctx context.Context, members []replicas.Replica) (membership, uint64, error) {
	rq := &reconfigRequest{want: membership{members: members}, done: make(chan reconfigOutcome, 1)}
	select {
	case n.reconfigs <- rq:
	case <-n.stopped:
		return membership{}, 0, n.stopErr
	case <-ctx.Done():
		return membership{}, 0, fmt.Errorf("%w: request queue full", errUnavailable)
	}
	select {
	case out := <-rq.done:
		return out.mem, out.slot, out.err
	case <-n.stopped:
		return membership{}, 0, n.stopErr
	case <-ctx.Done():
		return membership{}, 0, fmt.Errorf("%w: the change was not applied within the deadline; check status and call again", errUnavailable)
	}
}

// startReconfig proposes a change, on the loop.
func (n *node) startReconfig(rq *reconfigRequest) {
	if !n.voting() || !n.core.IsLeader() {
		rq.done <- reconfigOutcome{err: errNotLeader}
		return
	}
	if committed := n.committedMembers(); sameMembers(rq.want.members, committed) {
		rq.done <- reconfigOutcome{mem: membership{epoch: n.mem.epoch, members: committed}}
		return
	}
	if n.reconfigSlot != 0 || n.core.Ended() != 0 {
		rq.done <- reconfigOutcome{err: fmt.Errorf("%w: %w", errUnavailable, errChangeUnderWay)}
		return
	}
	next := membership{epoch: n.mem.epoch + 1, members: rq.want.members}
	data, err := encodeMembership(next)
	if err == nil {
		n.reconfigSlot, err = n.core.ProposeConfig(data)
	}
	if err != nil {
		rq.done <- reconfigOutcome{err: fmt.Errorf("%w: %v", errUnavailable, err)}
		return
	}
	n.reconfigWaiter = rq
	n.logger.Info("configuration change proposed", "slot", n.reconfigSlot, "epoch", next.epoch, "members", next.ids())
}

// failReconfig answers a waiting reconfigure call with err (leadership lost).
func (n *node) failReconfig(err error) {
	if n.reconfigWaiter != nil {
		n.reconfigWaiter.done <- reconfigOutcome{err: err}
		n.reconfigWaiter = nil
	}
	n.reconfigSlot = 0
}

func sameMembers(a, b []replicas.Replica) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y replicas.Replica) bool {
			return y.ID == x.ID && y.ClientAddr == x.ClientAddr && y.PeerAddr == x.PeerAddr
		}) {
			return false
		}
	}
	return true
}

// voting reports whether this replica takes part in its configuration's Paxos.
func (n *node) voting() bool { return !n.retired && !n.joining }

// afterConfigApplied starts the next configuration once the one this core ran
// has ended and its last slot is applied.
func (n *node) afterConfigApplied() error {
	if end := n.core.Ended(); end == 0 || n.storage.Applied() < end {
		return nil
	}
	return n.adoptStoredConfig()
}

// adoptStoredConfig moves this replica to the configuration its store holds, if
// it is later than the one it runs: after applying a configuration entry, or
// after installing a snapshot taken in a later configuration.
func (n *node) adoptStoredConfig() error {
	data, err := n.storage.Config()
	if err != nil || data == nil {
		return err
	}
	next, err := decodeMembership(data)
	if err != nil {
		return fmt.Errorf("%s: %w", n.storagePath, err)
	}
	if next.epoch <= n.mem.epoch && !n.joining {
		return nil
	}
	wasLeader := n.core.IsLeader()
	if wasLeader && n.voting() {
		// Tell the old configuration's followers that its last slot is chosen,
		// with the entries any of them has not reported (Farewell), so they
		// apply the change and move on at once: a member this change removes
		// hears from no leader after this.
		n.core.Farewell()
		rd := n.core.Ready()
		for _, m := range rd.Messages {
			if !m.Type.IsReply() {
				m.Epoch, m.FromAddr = n.mem.epoch, n.selfAddr
				n.sender.Send(m)
			}
		}
		n.core.Advance(rd)
	}
	// Whatever was waiting belonged to the old configuration.
	for _, p := range n.queued {
		n.answer(p, writeOutcome{err: errNotLeader})
	}
	n.queued = nil
	n.failWrites(fmt.Errorf("%w: the configuration changed before the write was chosen", errUnavailable))
	n.failReads(fmt.Errorf("%w: the configuration changed", errUnavailable))
	if err := n.storage.DropLog(); err != nil {
		return fmt.Errorf("start configuration %d: %w", next.epoch, err)
	}
	prev, recorded := n.mem, next
	next = withFileAddresses(next, n.fileList)
	n.mem = next
	n.links(next.members)
	if rq := n.reconfigWaiter; rq != nil {
		rq.done <- reconfigOutcome{mem: recorded, slot: n.reconfigSlot}
		n.reconfigWaiter = nil
	}
	n.reconfigSlot = 0
	// A snapshot that carries the new configuration, for members that must fetch
	// one to join (a replica that leaves may be the only one holding it).
	n.snapshotNow()
	if _, ok := next.find(n.self); !ok {
		n.retired, n.joining = true, false
		n.logger.Warn("no longer a member: this replica stops voting and sends clients to the members",
			"epoch", next.epoch, "members", next.ids(), "previous_epoch", prev.epoch)
		n.publish()
		return nil
	}
	durable, err := n.storage.Durable()
	if err != nil {
		return fmt.Errorf("start configuration %d: %w", next.epoch, err)
	}
	cfg := n.coreConfig
	cfg.ID, cfg.Members = n.self, next.ids()
	core, err := peer.New(cfg, durable)
	if err != nil {
		return fmt.Errorf("start configuration %d: %w", next.epoch, err)
	}
	// The ended configuration's leader campaigns at once in the new one (below);
	// the others promise it without waiting out the hold after start, and
	// nobody else for an election timeout.
	core.AssumeLeader(n.core.Leader())
	n.core = core
	n.retired, n.joining = false, false
	n.logger.Info("configuration started", "epoch", next.epoch, "members", next.ids(), "from_slot", durable.Applied+1,
		"previous_epoch", prev.epoch)
	if wasLeader {
		// Lead the new configuration at once rather than after an election
		// timeout: writes pause for one round of phase 1.
		n.core.Campaign()
	}
	n.publish()
	return nil
}

// gateInbound refuses prepare and accept traffic from another configuration, and
// everything but execute while this replica does not vote. It reports whether
// the request was answered here. A request from a later configuration makes
// this replica fetch a snapshot from its sender.
func (n *node) gateInbound(in inbound) bool {
	m := in.msg
	if m.Epoch > n.mem.epoch {
		if m.FromAddr != "" {
			// A joining replica may not know the sender: its file lists only
			// the new members.
			n.links([]replicas.Replica{{ID: m.From, PeerAddr: m.FromAddr}})
		}
		n.fetchFromLater(m.From)
	}
	switch {
	case m.Type == peer.MsgExecute && n.voting():
		return false // chosen values are facts in any configuration
	case n.voting() && m.Epoch == n.mem.epoch:
		return false
	}
	if _, member := n.mem.find(m.From); !member && m.Epoch <= n.mem.epoch {
		// Not a member here, and not from a later configuration either: an
		// error that names it (see step).
		in.reply <- peer.Message{}
		return true
	}
	reply := peer.Message{From: n.self, To: m.From, Epoch: n.mem.epoch}
	switch m.Type {
	case peer.MsgPrepare:
		reply.Type = peer.MsgPromise
	case peer.MsgAccept:
		reply.Type, reply.RoundTrip = peer.MsgAccepted, m.RoundTrip
	default:
		reply.Type = peer.MsgExecuted
	}
	in.reply <- reply
	return true
}

// gateReply drops a reply from another configuration; one from a later
// configuration makes this replica fetch a snapshot from its sender.
func (n *node) gateReply(m peer.Message) bool {
	if m.Type == peer.MsgUnreachable || m.Type == peer.MsgExecuted || m.Epoch == n.mem.epoch {
		return n.voting() || m.Type == peer.MsgExecuted
	}
	if m.Epoch > n.mem.epoch {
		n.fetchFromLater(m.From)
	}
	return false
}

// fetchFromLater fetches a snapshot from replica id, which is in a later
// configuration.
func (n *node) fetchFromLater(id uint64) {
	n.wantSnapshot(peer.SnapshotWanted{From: id})
}

// configChanged reports whether the store holds a later configuration than the
// one this replica runs (or any, while it joins).
func (n *node) configChanged() (bool, error) {
	data, err := n.storage.Config()
	if err != nil || data == nil {
		return false, err
	}
	m, err := decodeMembership(data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", n.storagePath, err)
	}
	return m.epoch > n.mem.epoch || n.joining, nil
}

// committedMembers returns the members of the configuration in force with the
// addresses the configuration records (n.mem has this replica's own file's
// addresses for the members it lists).
func (n *node) committedMembers() []replicas.Replica {
	data, err := n.storage.Config()
	if err != nil || data == nil {
		return n.mem.members
	}
	m, err := decodeMembership(data)
	if err != nil || m.epoch != n.mem.epoch {
		return n.mem.members
	}
	return m.members
}
