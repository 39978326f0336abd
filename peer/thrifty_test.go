package peer

import (
	"slices"
	"testing"
)

func thrifty(cfg *Config) { cfg.Thrifty = true }

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
	c := newSimCluster(t, 5, 1, thrifty)
	c.elect(1, 2, 3, 4, 5)
	c.deliverWhere(all)

	a := c.propose(1, "a")
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{2, 3}) {
		c.fatalf("accepts went to %v, want [2 3]", got)
	}
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
	c := newSimCluster(t, 3, 1, thrifty)
	c.elect(1, 2, 3)
	c.deliverWhere(all)

	slot := c.propose(1, "a")
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{2}) {
		c.fatalf("accepts went to %v, want [2]", got)
	}
	c.dropWhere(all)
	for i := 1; i < c.cfg.withDefaults().ThriftyStaleTicks; i++ {
		c.tick(1)
		if got := c.acceptsWithEntries(1); len(got) != 0 {
			c.fatalf("after %d ticks the slot was sent again to %v; too early", i, got)
		}
		c.dropWhere(all)
	}
	c.tick(1)
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{3}) {
		c.fatalf("once replica 2 was silent the slot went to %v, want [3]", got)
	}
	c.deliverWhere(between(1, 3))
	c.wantChosenSoFar(slot, "a")
}

// A request that fails outright (the follower's port refuses) hands its slots to
// a passive follower at once, without waiting for a tick.
func TestThriftyLeaderReplacesAnUnreachableFollowerAtOnce(t *testing.T) {
	c := newSimCluster(t, 3, 1, thrifty)
	c.elect(1, 2, 3)
	c.deliverWhere(all)

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
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{3}) {
		c.fatalf("after the request to 2 failed the slot went to %v, want [3]", got)
	}
	c.deliverWhere(between(1, 3))
	c.wantChosenSoFar(slot, "a")
}

// While a configuration change is under way every follower gets every accept:
// each member must learn the configuration's last entry from the old leader.
func TestThriftyLeaderSendsAConfigurationEntryToEveryFollower(t *testing.T) {
	c := newSimCluster(t, 3, 1, thrifty)
	c.elect(1, 2, 3)
	c.deliverWhere(all)
	c.propose(1, "a")
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{2}) {
		c.fatalf("accepts went to %v, want [2]", got)
	}
	c.deliverWhere(all)

	if _, err := c.replicas[1].ProposeConfig([]byte("next")); err != nil {
		c.fatalf("propose configuration: %v", err)
	}
	c.process(1)
	if got := c.acceptsWithEntries(1); !slices.Equal(got, []uint64{2, 3}) {
		c.fatalf("the configuration entry went to %v, want [2 3]", got)
	}
}
