package peer

import (
	"fmt"
	"testing"
)

// A linearizable read needs one heartbeat round to a majority, answered after the
// read arrived, and nothing more: no waiting for the next scheduled heartbeat.
// (Raft thesis, section 6.4: the leader "sends a new round of heartbeats ... once
// it receives acknowledgments from a majority", it may serve the read.)
func TestReadConfirmedByOneRound(t *testing.T) {
	for _, n := range []int{1, 3, 5, 7} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			c := newSimCluster(t, n, 1, nil)
			lead := c.ids[0]
			c.elect(lead, c.ids[1:]...)
			c.deliverWhere(all)
			if err := c.replicas[lead].ReadIndex(99); err != nil {
				t.Fatal(err)
			}
			c.process(lead)
			c.deliverWhere(all) // no replica ticks
			got := c.reads[lead]
			if len(got) != 1 || got[0].Token != 99 {
				t.Fatalf("reads released without a tick: %+v; want token 99", got)
			}
		})
	}
}

// A leader that a majority no longer answers never confirms a read.
func TestReadNotConfirmedWithoutMajority(t *testing.T) {
	c := newSimCluster(t, 5, 2, nil)
	c.elect(1, 2, 3, 4, 5)
	c.deliverWhere(all)
	if err := c.replicas[1].ReadIndex(7); err != nil {
		t.Fatal(err)
	}
	c.process(1)
	// Only one follower answers; the others are cut off.
	c.deliverWhere(anyOf(between(1, 2)))
	c.dropWhere(all)
	if got := c.reads[1]; len(got) != 0 {
		t.Fatalf("read confirmed by 2 of 5: %+v", got)
	}
	// Once a third replica answers a round sent after the read, it is released.
	c.replicas[1].Tick()
	c.replicas[1].Tick()
	c.replicas[1].Tick()
	c.process(1)
	c.deliverWhere(anyOf(between(1, 2), between(1, 3)))
	if got := c.reads[1]; len(got) != 1 || got[0].Token != 7 {
		t.Fatalf("reads after a majority answered: %+v; want token 7", got)
	}
}
