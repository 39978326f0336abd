package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// The reconfigure fault (docs/testing.md, docs/reconfiguration.md) moves the
// cluster one member at a time, as an operator replacing a replica does: it
// adds a spare, waits until the spare votes in the new configuration and has
// caught up, then removes a random member, the leader sometimes, which stays
// running as a spare. Every configuration it asks for has the initial number
// of members or one more. It runs in the background while the schedule goes
// on, so a fault drawn with it strikes in the middle of the change.

// reconfigureBudget bounds one reconfigure fault: both changes and the wait
// for the spare to catch up, retries included.
const reconfigureBudget = 30 * time.Second

// errConfigMoved: the configuration changed to another than the one asked for
// (a change whose outcome was unknown was committed after all).
var errConfigMoved = errors.New("the configuration moved elsewhere")

// reconfigure starts a replacement in the background and returns its
// description and a heal that waits for it to end. Its outcome joins the
// fault's description once it has ended.
func (n *Nemesis) reconfigure(ctx context.Context, leader int) (string, func() error, error) {
	cfg := n.c.Config()
	spares := n.c.Spares()
	// Its own source, drawn from the schedule's: the schedule goes on drawing
	// while the change runs.
	rng := rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.setOutcome(FaultReconfigure, n.replace(ctx, rng, time.Now().Add(reconfigureBudget)))
	}()
	heal := func() error {
		<-done
		return nil
	}
	return fmt.Sprintf("replace a member of %s by one of the spares %v (leader %d)", cfg, spares, leader), heal, nil
}

// replace makes one replacement, or finishes one a fault before left half
// done, and says what it did. The member it removes is any but the one just
// added and those rebuilding after a wipe. A change that is not committed by
// the deadline, or when the history ends, ends it: its outcome is unknown, and
// the next reconfigure fault starts from whatever the replicas then report.
func (n *Nemesis) replace(ctx context.Context, rng *rand.Rand, deadline time.Time) string {
	c := n.c
	cfg := c.ObserveConfig(ctx)
	initial := c.InitialMembers()
	newcomer := 0
	var did []string
	switch len(cfg.Members) {
	case initial:
		spare := n.readySpare(ctx, rng, cfg)
		if spare == 0 {
			return fmt.Sprintf("no spare ready (running, not paused, not rebuilding, answering) among %v: nothing changed", c.Spares())
		}
		target := append(slices.Clone(cfg.Members), spare)
		slices.Sort(target)
		c.MarkMember(spare)
		got, err := c.Reconfigure(ctx, target, deadline)
		if err != nil {
			n.failIfHarness(err)
			return fmt.Sprintf("add %d to %s: %v", spare, cfg, err)
		}
		n.noteChange(cfg, got, spare, 0)
		did = append(did, fmt.Sprintf("added %d (%s)", spare, got))
		newcomer, cfg = spare, got
	case initial + 1:
		// A fault before added a spare and did not get to remove a member.
		n.mu.Lock()
		if slices.Contains(cfg.Members, n.added) {
			newcomer = n.added
		}
		n.mu.Unlock()
	default:
		n.fail(fmt.Errorf("configuration %s has %d members; the harness keeps %d or %d", cfg, len(cfg.Members), initial, initial+1))
		return fmt.Sprintf("configuration %s has the wrong number of members", cfg)
	}
	if newcomer != 0 {
		took, err := c.waitCaughtUp(ctx, newcomer, cfg.Epoch, deadline)
		if err != nil {
			return join(did, fmt.Sprintf("replica %d did not catch up: %v; no member removed", newcomer, err))
		}
		did = append(did, fmt.Sprintf("%d caught up in %s", newcomer, took.Round(time.Millisecond)))
	}
	if ctx.Err() != nil {
		return join(did, "the history ended before a member was removed")
	}
	// Not a member still rebuilding after a wipe: removed, it would never
	// finish, nor could it be added again.
	rebuilding := c.Rebuilding()
	candidates := slices.DeleteFunc(slices.Clone(cfg.Members), func(id int) bool {
		return id == newcomer || slices.Contains(rebuilding, id)
	})
	if len(candidates) == 0 {
		return join(did, fmt.Sprintf("every member of %s but %d is rebuilding; no member removed", cfg, newcomer))
	}
	leader := c.Leader(ctx)
	victim := candidates[rng.IntN(len(candidates))]
	if leader != 0 && slices.Contains(candidates, leader) && rng.IntN(len(cfg.Members)) == 0 {
		// The leader a little more often than its share.
		victim = leader
	}
	target := slices.DeleteFunc(slices.Clone(cfg.Members), func(id int) bool { return id == victim })
	got, err := c.Reconfigure(ctx, target, deadline)
	if err != nil {
		n.failIfHarness(err)
		return join(did, fmt.Sprintf("remove %d (leader %d) from %s: %v", victim, leader, cfg, err))
	}
	n.noteChange(cfg, got, 0, victim)
	return join(did, fmt.Sprintf("removed %d (leader %d; %s)", victim, leader, got))
}

func join(parts []string, last string) string {
	return strings.Join(append(parts, last), ", ")
}

// failIfHarness records an error that says the harness asked for something
// wrong (a change refused as invalid), not that the cluster was slow.
func (n *Nemesis) failIfHarness(err error) {
	var inv *kvapi.InvalidArgument
	if errors.As(err, &inv) {
		n.fail(fmt.Errorf("reconfigure: %w", err))
	}
}

// noteChange records a committed change.
func (n *Nemesis) noteChange(from, to Configuration, added, removed int) {
	if to.Epoch <= from.Epoch {
		return // nothing had to change
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.changes = append(n.changes, ConfigChange{At: n.h.Now(), From: from, To: to, Added: added, Removed: removed})
	if added != 0 {
		n.added = added
	}
}

// readySpare picks a spare to add: running, not paused, not rebuilding after a
// wipe, and answering status as no member of cfg's epoch or a later one. It
// returns 0 if there is none.
func (n *Nemesis) readySpare(ctx context.Context, rng *rand.Rand, cfg Configuration) int {
	st := n.c.Statuses(ctx, time.Second)
	rebuilding := n.c.Rebuilding()
	var ready []int
	for _, id := range n.c.IDs() {
		s, ok := st[id]
		if slices.Contains(cfg.Members, id) || !ok || !n.c.Running(id) || n.c.Paused(id) || slices.Contains(rebuilding, id) ||
			(s.Member && s.ConfigEpoch >= cfg.Epoch) {
			continue
		}
		ready = append(ready, id)
	}
	if len(ready) == 0 {
		return 0
	}
	return ready[rng.IntN(len(ready))]
}

// waitCaughtUp waits until replica id votes in configuration epoch (or a
// later one) and has applied every slot the other members had applied when it
// first did, and returns how long that took.
func (c *Cluster) waitCaughtUp(ctx context.Context, id int, epoch int64, deadline time.Time) (time.Duration, error) {
	begin := time.Now()
	mark := int64(-1)
	err := poll(ctx, time.Until(deadline), fmt.Sprintf("replica %d to vote in epoch %d and catch up", id, epoch), func() error {
		st := c.Statuses(ctx, time.Second)
		s, ok := st[id]
		switch {
		case !ok:
			return fmt.Errorf("replica %d does not answer status", id)
		case !s.Member || s.ConfigEpoch < epoch:
			return fmt.Errorf("replica %d: member %v, epoch %d, applied %d", id, s.Member, s.ConfigEpoch, s.Applied)
		}
		if mark < 0 {
			for other, o := range st {
				if other != id && o.Member && o.ConfigEpoch == s.ConfigEpoch {
					mark = max(mark, o.Applied)
				}
			}
		}
		if s.Applied < mark {
			return fmt.Errorf("replica %d has applied slot %d of %d", id, s.Applied, mark)
		}
		return nil
	})
	return time.Since(begin), err
}

// Reconfigure asks the cluster for the configuration whose members are target
// until one is committed, ctx ends or deadline passes. It sends the change to
// the leader and follows NotLeader. After an answer that leaves the outcome
// unknown (Unavailable, a timeout, a broken connection) it checks the
// replicas' status: the change may have been committed, or may still be;
// otherwise it asks again for the same members, which commits nothing twice:
// asking for the members in force changes nothing, also behind the proxies
// (TestReconfigureAgainBehindProxies). It returns the configuration committed,
// or an error if the cluster committed none it could see (errConfigMoved if it
// committed another).
func (c *Cluster) Reconfigure(ctx context.Context, target []int, deadline time.Time) (Configuration, error) {
	target = slices.Clone(target)
	slices.Sort(target)
	members := make([]*kvapi.ReplicaAddress, 0, len(target))
	for _, id := range target {
		r := c.Replica(id)
		members = append(members, &kvapi.ReplicaAddress{ID: int64(id), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr})
	}
	base := c.Config()
	to := c.Leader(ctx)
	var last error
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) || ctx.Err() != nil {
			if last == nil {
				return Configuration{}, fmt.Errorf("reconfigure to %v: not sent, the history is over", target)
			}
			return Configuration{}, fmt.Errorf("reconfigure to %v: not committed after %d attempts (the outcome is unknown); last: %v",
				target, attempt, last)
		}
		if to == 0 {
			running := slices.DeleteFunc(c.Members(), func(id int) bool { return !c.Running(id) })
			if len(running) == 0 {
				running = c.Members()
			}
			to = running[attempt%len(running)]
		}
		res, err := c.reconfigureAt(ctx, to, members)
		switch kind, leaderAddr := classify(err); kind {
		case errNone:
			got := Configuration{Epoch: res.Epoch}
			for _, m := range res.Members {
				got.Members = append(got.Members, int(m.ID))
			}
			slices.Sort(got.Members)
			c.noteConfig(got)
			if !slices.Equal(got.Members, target) {
				return got, fmt.Errorf("reconfigure to %v at replica %d returned %s", target, to, got)
			}
			return got, nil
		case errNotLeader:
			last = fmt.Errorf("replica %d: %w", to, err)
			to = c.idAt(leaderAddr)
			pause(ctx, 25*time.Millisecond)
		case errBad:
			return Configuration{}, fmt.Errorf("reconfigure to %v at replica %d: %w", target, to, err)
		default:
			last = fmt.Errorf("replica %d: %w", to, err)
			cur := c.ObserveConfig(ctx)
			switch {
			case cur.Epoch > base.Epoch && slices.Equal(cur.Members, target):
				return cur, nil
			case cur.Epoch > base.Epoch:
				return cur, fmt.Errorf("reconfigure to %v: %w: %s (from %s)", target, errConfigMoved, cur, base)
			}
			pause(ctx, 100*time.Millisecond)
			to = c.Leader(ctx)
		}
	}
}

// reconfigureAt sends one reconfigure call to replica id on a new connection.
func (c *Cluster) reconfigureAt(ctx context.Context, id int, members []*kvapi.ReplicaAddress) (*kvapi.ReconfigureResult_, error) {
	kv, err := dialKV(c.Replica(id).ClientAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return kv.Reconfigure(ctx, members)
}

// idAt returns the id of the replica whose client address is addr, 0 if none.
func (c *Cluster) idAt(addr string) int {
	for _, r := range c.reps {
		if r.ClientAddr == addr {
			return r.ID
		}
	}
	return 0
}

// answeredAfterJoin counts the operations answered by a replica that a change
// had added when the operation began (and no later change had removed).
func answeredAfterJoin(ops []porcupine.Operation, changes []ConfigChange) int {
	n := 0
	for _, op := range ops {
		out := op.Output.(Output)
		if out.Unknown || out.Replica == 0 {
			continue
		}
		joined := false
		for _, ch := range changes {
			if ch.At >= op.Call {
				break
			}
			switch out.Replica {
			case ch.Added:
				joined = true
			case ch.Removed:
				joined = false
			}
		}
		if joined {
			n++
		}
	}
	return n
}
