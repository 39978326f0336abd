package peer

import "testing"

// A follower whose accept request for the last slot was lost (or overtaken by
// the heartbeat that follows it) cannot learn that the slot is chosen from a
// commit point alone, and the leader's core, replaced once its configuration
// ends, is not there to answer its report with the entries. Farewell sends them
// with the commit point; a plain heartbeat does not.
func TestFarewellTeachesAFollowerThatMissedTheLastEntry(t *testing.T) {
	for _, farewell := range []bool{false, true} {
		c := newSimCluster(t, 3, 1, nil)
		c.elect(1, 2, 3)
		c.deliverWhere(all)
		s := c.propose(1, "last")
		c.dropWhere(func(m Message) bool { return m.To == 3 && m.Type == MsgAccept })
		c.deliverWhere(between(1, 2))
		if le := c.replicas[1].log[s]; le == nil || !le.chosen {
			t.Fatalf("slot %d not chosen at the leader with replica 2's vote", s)
		}
		if farewell {
			c.replicas[1].Farewell()
		} else {
			c.replicas[1].lead.heartbeatDue = true // a bare heartbeat round
		}
		c.process(1)
		// The leader's core is replaced right after (the runtime starts the next
		// configuration): replica 3's answers reach nobody who could follow up.
		c.deliverWhere(func(m Message) bool { return m.From == 1 && m.To == 3 })
		le := c.replicas[3].log[s]
		learned := le != nil && le.chosen && string(le.Data) == "last"
		if learned != farewell {
			t.Errorf("farewell %v: replica 3 holds slot %d as chosen: %v (%+v)", farewell, s, learned, le)
		}
	}
}
