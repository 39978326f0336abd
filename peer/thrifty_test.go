package peer

import (
	"fmt"
	"slices"
	"testing"
)

// newThriftyCluster returns n thrifty replicas led by replica 1, with nothing in
// flight.
func newThriftyCluster(t *testing.T, n int) *simCluster {
	c := newSimCluster(t, n, 1, func(cfg *Config) { cfg.Thrifty = true })
	ids := make([]uint64, 0, n-1)
	for id := uint64(2); id <= uint64(n); id++ {
		ids = append(ids, id)
	}
	c.elect(1, ids...)
	c.deliverWhere(all)
	return c
}

// wantAcceptsTo checks that the accept requests with entries now in flight from
// the leader (replica 1) go to exactly want.
func (c *simCluster) wantAcceptsTo(want []uint64, when string) {
	c.t.Helper()
	if got := c.acceptsWithEntries(1); !slices.Equal(got, want) {
		c.fatalf("%s the accepts went to %v, want %v", when, got, want)
	}
}

// acceptsWithEntries lists, in order, the followers that accept requests now in
// flight carry entries to.
func (c *simCluster) acceptsWithEntries(from uint64) []uint64 {
	var to []uint64
	for _, m := range c.net {
		if m.From == from && m.Type == MsgAccept && len(m.Entries) > 0 {
			to = append(to, m.To)
		}
	}
	slices.Sort(to)
	return to
}

// executesTo counts the execute requests in flight to replica id.
func (c *simCluster) executesTo(id uint64) int {
	n := 0
	for _, m := range c.net {
		if m.Type == MsgExecute && m.To == id {
			n++
		}
	}
	return n
}

// A thrifty leader of five asks two followers to accept, the two that a
// majority needs besides itself; the other two learn the chosen slots by
// execute, at most one request a tick, so that slots chosen within a tick reach
// them together.
func TestThriftyLeaderAsksOnlyAMajority(t *testing.T) {
	c := newThriftyCluster(t, 5)

	a := c.propose(1, "a")
	c.wantAcceptsTo([]uint64{2, 3}, "for the first slot")
	c.deliverWhere(isType(MsgAccept, MsgAccepted))
	c.wantChosenSoFar(a, "a")
	for _, id := range []uint64{4, 5} {
		if _, ok := c.replicas[id].log[a]; ok {
			c.fatalf("passive replica %d was sent slot %d in an accept", id, a)
		}
		if n := c.executesTo(id); n != 1 {
			c.fatalf("%d execute requests to replica %d after the first slot was chosen, want 1", n, id)
		}
	}

	b := c.propose(1, "b")
	c.deliverWhere(isType(MsgAccept, MsgAccepted))
	c.wantChosenSoFar(b, "b")
	c.deliverWhere(isType(MsgExecute, MsgExecuted))
	for _, id := range []uint64{4, 5} {
		if got := c.replicas[id].chosen; got != a {
			c.fatalf("replica %d knows slots up to %d chosen before the next tick, want %d (one execute a tick)", id, got, a)
		}
	}

	c.tick(1)
	for _, id := range []uint64{4, 5} {
		if n := c.executesTo(id); n != 1 {
			c.fatalf("%d execute requests to replica %d after a tick, want 1", n, id)
		}
	}
	c.deliverWhere(isType(MsgExecute, MsgExecuted))
	for _, id := range []uint64{4, 5} {
		if got := c.replicas[id].chosen; got != b {
			c.fatalf("replica %d knows slots up to %d chosen after a tick, want %d", id, got, b)
		}
	}
	c.settle(b)
	c.wantChosen(a, "a")
	c.wantChosen(b, "b")
}

// A follower that stops answering without an error (a pause, a lost packet) is
// replaced after ThriftyStaleTicks: the slot goes to the passive follower and is
// chosen without the silent one.
func TestThriftyLeaderReplacesASilentFollower(t *testing.T) {
	c := newThriftyCluster(t, 3)

	slot := c.propose(1, "a")
	c.wantAcceptsTo([]uint64{2}, "for the first slot")
	c.dropWhere(all)
	for i := 1; i < c.cfg.withDefaults().ThriftyStaleTicks; i++ {
		c.tick(1)
		c.wantAcceptsTo(nil, fmt.Sprintf("after %d tick(s), too early to resend,", i))
		c.dropWhere(all)
	}
	c.tick(1)
	c.wantAcceptsTo([]uint64{3}, "once replica 2 was silent")
	c.deliverWhere(between(1, 3))
	c.wantChosenSoFar(slot, "a")
}

// A request that fails outright (the follower's port refuses) hands its slots to
// a passive follower at once, without waiting for a tick.
func TestThriftyLeaderReplacesAnUnreachableFollowerAtOnce(t *testing.T) {
	c := newThriftyCluster(t, 3)

	slot := c.propose(1, "a")
	var failed []Message
	for _, m := range c.net {
		if m.Type == MsgAccept && m.To == 2 {
			failed = append(failed, m)
		}
	}
	c.dropWhere(all)
	for _, m := range failed {
		c.unreachable(m)
	}
	c.wantAcceptsTo([]uint64{3}, "after the request to 2 failed")
	c.deliverWhere(between(1, 3))
	c.wantChosenSoFar(slot, "a")
}

// While a configuration change is under way every follower gets every accept:
// each member must learn the configuration's last entry from the old leader.
func TestThriftyLeaderSendsAConfigurationEntryToEveryFollower(t *testing.T) {
	c := newThriftyCluster(t, 3)
	c.propose(1, "a")
	c.wantAcceptsTo([]uint64{2}, "for the first slot")
	c.deliverWhere(all)

	if _, err := c.replicas[1].ProposeConfig([]byte("next")); err != nil {
		c.fatalf("propose configuration: %v", err)
	}
	c.process(1)
	c.wantAcceptsTo([]uint64{2, 3}, "for the configuration entry")
}

// A thrifty leader's configuration entry that one follower missed reaches it in
// the farewell round, as a leader asking everyone's does
// (TestFarewellTeachesAFollowerThatMissedTheLastEntry): the follower is active
// by then, and its progress is not moved past the slot it lacks.
func TestThriftyFarewellTeachesAFollowerThatMissedTheLastEntry(t *testing.T) {
	c := newThriftyCluster(t, 3)
	s, err := c.replicas[1].ProposeConfig(encodeSimConfig(2, []uint64{1, 2, 3}))
	if err != nil {
		c.fatalf("propose configuration: %v", err)
	}
	c.process(1)
	c.dropWhere(func(m Message) bool { return m.To == 3 && m.Type == MsgAccept })
	c.deliverWhere(between(1, 2))
	if !c.replicas[1].ended() {
		c.fatalf("the configuration entry at slot %d is not chosen with replica 2's vote", s)
	}
	c.dropWhere(func(m Message) bool { return m.To == 3 }) // anything else to 3 is lost too
	c.replicas[1].Farewell()
	c.process(1)
	c.deliverWhere(func(m Message) bool { return m.From == 1 && m.To == 3 })
	if le := c.replicas[3].log[s]; le == nil || !le.chosen || le.Kind != KindConfig {
		c.fatalf("replica 3 does not hold slot %d as chosen after the farewell round (%+v)", s, le)
	}
}

// A census sends a slot to every follower and makes active those that accept it
// first: a thrifty leader does not keep waiting on a slow follower while a
// faster one idles.
func TestThriftyCensusPicksTheFollowersThatAnswerFirst(t *testing.T) {
	for _, first := range []uint64{2, 3} {
		c := newSimCluster(t, 3, 1, func(cfg *Config) { cfg.Thrifty, cfg.ThriftyCensusTicks = true, 1 })
		c.elect(1, 2, 3)
		c.deliverWhere(all)
		c.propose(1, "a")
		c.wantAcceptsTo([]uint64{2}, "before any census")
		c.deliverWhere(all)

		c.tick(1) // a census is due; the next slot goes to both followers
		c.deliverWhere(all)
		c.propose(1, "b")
		c.wantAcceptsTo([]uint64{2, 3}, "for the census slot")
		// Replica `first` answers first; the other's answer comes later.
		c.deliverWhere(func(m Message) bool { return m.To == first || m.From == first })
		c.deliverWhere(all)

		c.propose(1, "c")
		c.wantAcceptsTo([]uint64{first}, fmt.Sprintf("after replica %d answered the census first,", first))
		c.settle(3)
	}
}
