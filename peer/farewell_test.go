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

// A candidate whose requests go unanswered (a member still in the previous
// configuration turns them away) asks again every heartbeat interval, and so
// leads well before an election timeout would have let it try again.
func TestCandidateAsksAgainWhoDidNotAnswer(t *testing.T) {
	c := newSimCluster(t, 3, 1, func(cfg *Config) { cfg.ElectionTicks, cfg.HeartbeatTicks = 10, 2 })
	c.replicas[1].Campaign()
	c.process(1)
	c.dropWhere(isType(MsgPrepare)) // turned away: no answer reaches the core
	for i := 0; i < 2*c.cfg.HeartbeatTicks && !c.replicas[1].IsLeader(); i++ {
		c.tick(1)
		c.deliverWhere(isType(MsgPrepare, MsgPromise))
	}
	if !c.replicas[1].IsLeader() {
		t.Fatalf("replica 1 does not lead %d ticks after its first requests went unanswered (election timeout %d ticks)",
			2*c.cfg.HeartbeatTicks, c.cfg.ElectionTicks)
	}
}
