package peer

import (
	"bytes"
	"testing"
)

// Scripted races between two proposers for one slot: the classic Basic Paxos
// scenarios, played on the Multi-Paxos core (slot 1 of the log). Replica 1 and
// replica 2 are the proposers; all three replicas are acceptors.

// deliverWhere delivers, in order, every message in flight that matches, and every
// matching message those deliveries produce, until none is left.
func (c *simCluster) deliverWhere(match func(Message) bool) {
	for n := 0; n < 10000; n++ {
		i := -1
		for j, m := range c.net {
			if match(m) {
				i = j
				break
			}
		}
		if i < 0 {
			return
		}
		c.deliver(i, false)
		c.checkInvariants()
	}
	c.fatalf("deliverWhere did not settle")
}

// dropWhere discards every message in flight that matches.
func (c *simCluster) dropWhere(match func(Message) bool) {
	kept := c.net[:0]
	for _, m := range c.net {
		if !match(m) {
			kept = append(kept, m)
		}
	}
	c.net = kept
}

func between(a, b uint64) func(Message) bool {
	return func(m Message) bool { return (m.From == a && m.To == b) || (m.From == b && m.To == a) }
}

func anyOf(ps ...func(Message) bool) func(Message) bool {
	return func(m Message) bool {
		for _, p := range ps {
			if p(m) {
				return true
			}
		}
		return false
	}
}

func isType(ts ...MessageType) func(Message) bool {
	return func(m Message) bool {
		for _, t := range ts {
			if m.Type == t {
				return true
			}
		}
		return false
	}
}

func all(m Message) bool { return true }

// silenceLeader makes every replica behave as if its election timeout had passed
// without news from the leader, as after a crash or a long pause.
func (c *simCluster) silenceLeader() {
	for _, r := range c.replicas {
		if r != nil {
			r.electionElapsed = r.cfg.ElectionTicks
			if r.lead != nil {
				r.becomeFollower(0)
			}
		}
	}
}

// elect makes id the leader, delivering only its phase-1 traffic with the given
// acceptors (and its own).
func (c *simCluster) elect(id uint64, acceptors ...uint64) {
	c.t.Helper()
	var links []func(Message) bool
	for _, a := range acceptors {
		links = append(links, between(id, a))
	}
	// A refused campaign teaches the candidate the ballot to beat; the second
	// campaign then outbids it.
	for try := 0; try < 2 && !c.replicas[id].IsLeader(); try++ {
		c.replicas[id].Campaign()
		c.process(id)
		c.deliverWhere(func(m Message) bool {
			return anyOf(links...)(m) && isType(MsgPrepare, MsgPromise)(m)
		})
	}
	if !c.replicas[id].IsLeader() {
		c.fatalf("replica %d did not win the election", id)
	}
}

func (c *simCluster) propose(id uint64, v string) uint64 {
	c.t.Helper()
	s, err := c.replicas[id].Propose([]byte(v))
	if err != nil {
		c.fatalf("propose %q at %d: %v", v, id, err)
	}
	c.process(id)
	return s
}

// settle heals everything and lets the cluster run until every replica has applied
// up to slot.
func (c *simCluster) settle(slot uint64) {
	c.t.Helper()
	c.runUntil(300, "every replica applying the slot", func() bool {
		for _, id := range c.ids {
			if c.disks[id].appliedS < slot {
				return false
			}
		}
		return true
	})
}

func (c *simCluster) wantChosen(slot uint64, v string) {
	c.t.Helper()
	c.checkInvariants()
	got, ok := c.chosen[slot]
	if !ok || !bytes.Equal(got, []byte(v)) {
		c.fatalf("slot %d: chosen %q (known: %v), want %q", slot, got, ok, v)
	}
	for _, id := range c.ids {
		le := c.replicas[id].log[slot]
		if le == nil || !le.chosen || !bytes.Equal(le.Data, []byte(v)) {
			c.fatalf("replica %d does not hold %q as chosen at slot %d (holds %+v)", id, v, slot, le)
		}
	}
}

// The first proposer's value is chosen before the second proposer starts: the
// second must find it in phase 1 and keep it.
func TestFirstProposerWins(t *testing.T) {
	c := newSimCluster(t, 3, 1, nil)
	c.elect(1, 2, 3)
	slot := c.propose(1, "a")
	c.deliverWhere(all)
	c.wantChosenSoFar(slot, "a")

	c.silenceLeader()
	c.elect(2, 3)
	c.propose(2, "b")
	c.settle(slot + 1)
	c.wantChosen(slot, "a")
	c.wantChosen(slot+1, "b")
}

// The second proposer wins: it completes phase 1 with acceptors that never saw the
// first proposer's accept, which then arrives too late and is refused.
func TestSecondProposerWins(t *testing.T) {
	c := newSimCluster(t, 3, 2, nil)
	c.elect(1, 2, 3)
	slot := c.propose(1, "a")
	// Replica 1's accepts to 2 and 3 are held back while replica 2 takes over.
	held := func(m Message) bool { return m.From == 1 && m.Type == MsgAccept }
	var late []Message
	for _, m := range c.net {
		if held(m) {
			late = append(late, m)
		}
	}
	c.dropWhere(held)

	c.silenceLeader()
	c.elect(2, 3)
	if got := c.propose(2, "b"); got != slot {
		t.Fatalf("second proposer used slot %d, want %d (the first proposer's slot was open)", got, slot)
	}
	c.deliverWhere(anyOf(between(2, 3)))
	c.wantChosenSoFar(slot, "b")

	// The first proposer's accepts arrive now, at a lower ballot than the
	// acceptors promised, and before anything tells replica 1 of the new ballot.
	c.net = append(late, c.net...)
	c.deliverWhere(all)
	if c.replicas[1].IsLeader() {
		t.Fatal("replica 1 still leads after its accepts were refused")
	}
	c.settle(slot)
	c.wantChosen(slot, "b")
}

// wantChosenSoFar checks that slot is chosen with v, before every replica knows.
func (c *simCluster) wantChosenSoFar(slot uint64, v string) {
	c.t.Helper()
	c.checkInvariants()
	if got := c.chosen[slot]; !bytes.Equal(got, []byte(v)) {
		c.fatalf("slot %d: chosen %q, want %q", slot, got, v)
	}
}

// The first proposer's value reached a majority (so it is chosen) but the first
// proposer never heard back; the second proposer must adopt it rather than its own.
func TestSecondProposerAdoptsChosenValue(t *testing.T) {
	c := newSimCluster(t, 3, 3, nil)
	c.elect(1, 2, 3)
	slot := c.propose(1, "a")
	// The accept reaches acceptor 3; its answer is lost, and acceptor 2 never
	// hears of "a". Acceptors 1 and 3 are a majority: "a" is chosen.
	c.deliverWhere(func(m Message) bool { return m.From == 1 && m.To == 3 && m.Type == MsgAccept })
	c.dropWhere(all)
	c.wantChosenSoFar(slot, "a")

	c.silenceLeader()
	c.elect(2, 3)
	c.propose(2, "b")
	c.settle(slot + 1)
	c.wantChosen(slot, "a")
	c.wantChosen(slot+1, "b")
}

// The first proposer's value reached only one acceptor (not chosen). A second
// proposer whose phase-1 majority includes that acceptor must still propose it:
// it is the highest-numbered proposal reported.
func TestSecondProposerAdoptsAcceptedValue(t *testing.T) {
	c := newSimCluster(t, 5, 4, nil)
	c.elect(1, 2, 3, 4, 5)
	slot := c.propose(1, "a")
	c.deliverWhere(func(m Message) bool { return m.From == 1 && m.To == 3 && m.Type == MsgAccept })
	c.dropWhere(all)
	if _, ok := c.chosen[slot]; ok {
		t.Fatal("slot chosen with only two of five acceptors")
	}
	c.silenceLeader()
	c.elect(2, 3, 4)
	c.settle(slot)
	c.wantChosen(slot, "a")
}

// Two proposers that keep pre-empting each other never choose anything while each
// retries at once with a higher ballot; the randomised backoff of the election
// timer ends the duel.
func TestDuelingProposersEndThroughBackoff(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		c := newSimCluster(t, 3, seed, nil)
		c.elect(1, 2, 3)
		// Dueling: each proposer completes phase 1, proposes, and is pre-empted by
		// the other's next prepare before its accepts arrive.
		for round := 0; round < 5; round++ {
			for _, p := range []uint64{1, 2} {
				r := c.replicas[p]
				if !r.IsLeader() {
					c.silenceLeader()
					c.elect(p, 3)
				}
				if _, err := r.Propose([]byte("duel")); err != nil {
					t.Fatalf("seed %d: propose: %v", seed, err)
				}
				c.process(p)
				c.dropWhere(isType(MsgAccept)) // pre-empted before the accepts land
			}
		}
		c.dropWhere(all)
		for _, id := range c.ids {
			if c.replicas[id].chosen != 0 {
				t.Fatalf("seed %d: replica %d chose slot during the duel", seed, id)
			}
		}
		// Now let the replicas time out on their own, with randomised timeouts.
		c.silenceLeader()
		final := uint64(0)
		c.runUntil(100, "a value chosen after the duel", func() bool {
			for _, id := range c.ids {
				if c.replicas[id].chosen > 0 {
					final = c.replicas[id].chosen
					return true
				}
			}
			return false
		})
		if final == 0 {
			t.Fatalf("seed %d: nothing chosen", seed)
		}
	}
}

// A value once chosen is never replaced, whatever leader follows (checked after
// every step by the simulator; this replays many leader changes over one slot).
func TestChosenValueNeverReplaced(t *testing.T) {
	c := newSimCluster(t, 5, 7, nil)
	c.elect(1, 2, 3)
	slot := c.propose(1, "first")
	c.deliverWhere(all)
	for i, next := range []uint64{2, 3, 4, 5, 1, 3} {
		// A different pair of acceptors joins each new leader's majority.
		var others []uint64
		for _, id := range c.ids {
			if id != next {
				others = append(others, id)
			}
		}
		c.silenceLeader()
		c.elect(next, others[i%4], others[(i+1)%4])
		c.propose(next, "later")
		c.deliverWhere(all)
		c.wantChosenSoFar(slot, "first")
	}
	c.settle(slot)
	c.wantChosen(slot, "first")
}
