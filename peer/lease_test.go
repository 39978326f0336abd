package peer

import "testing"

func prepareFrom(candidate uint64, b Ballot, probe bool) Message {
	return Message{Type: MsgPrepare, From: candidate, Ballot: b, Slot: 1, Probe: probe}
}

// promised reports whether r answered its last prepare with a promise.
func promised(t *testing.T, r *Replica) bool {
	t.Helper()
	rd := r.Ready()
	r.Advance(rd)
	for _, m := range rd.Messages {
		if m.Type == MsgPromise {
			return m.OK
		}
	}
	t.Fatal("no answer to a prepare")
	return false
}

// With HoldVotesAfterStart a replica that knows no leader refuses every other
// candidate, for pre-votes and prepares alike, for ElectionTicks after it starts;
// without it, it promises at once.
func TestHoldVotesAfterStart(t *testing.T) {
	for _, hold := range []bool{false, true} {
		cfg := Config{ID: 1, Members: []uint64{1, 2, 3}, ElectionTicks: 10, HoldVotesAfterStart: hold}
		r, err := New(cfg, Durable{})
		if err != nil {
			t.Fatal(err)
		}
		round := uint64(1)
		for tick := 0; tick <= cfg.ElectionTicks; tick++ {
			for _, probe := range []bool{true, false} {
				round++
				r.Step(prepareFrom(2, Ballot{Round: round, ID: 2}, probe))
				got := promised(t, r)
				want := !hold || tick >= cfg.ElectionTicks
				if got != want {
					t.Fatalf("hold=%v, after %d ticks, probe=%v: promised %v, want %v", hold, tick, probe, got, want)
				}
				if got && !probe {
					// A real promise makes it follow nobody; start again.
					if r, err = New(cfg, Durable{}); err != nil {
						t.Fatal(err)
					}
					for range tick {
						r.Tick()
					}
				}
			}
			r.Tick()
		}
	}
}

// A replica starting a configuration with AssumeLeader promises that leader at
// once, and still refuses everyone else for an election timeout.
func TestAssumeLeader(t *testing.T) {
	cfg := Config{ID: 1, Members: []uint64{1, 2, 3}, ElectionTicks: 10, HoldVotesAfterStart: true}
	r, err := New(cfg, Durable{})
	if err != nil {
		t.Fatal(err)
	}
	r.AssumeLeader(2)
	r.Step(prepareFrom(3, Ballot{Round: 5, ID: 3}, true))
	if promised(t, r) {
		t.Fatal("a replica following leader 2 promised candidate 3")
	}
	r.Step(prepareFrom(2, Ballot{Round: 5, ID: 2}, false))
	if !promised(t, r) {
		t.Fatal("a replica told to follow 2 refused 2's prepare")
	}
	r.Step(Message{Type: MsgAccept, From: 2, To: 1, Ballot: Ballot{Round: 5, ID: 2}})
	r.Advance(r.Ready())
	r.AssumeLeader(3)
	if r.Leader() != 2 {
		t.Fatalf("AssumeLeader(3) on a replica following 2 made it follow %d", r.Leader())
	}
	// Not a member, itself, or a replica that already follows someone: no effect.
	other, err := New(cfg, Durable{})
	if err != nil {
		t.Fatal(err)
	}
	other.AssumeLeader(9)
	other.AssumeLeader(1)
	if other.Leader() != 0 {
		t.Fatalf("AssumeLeader of a non-member or itself set leader %d", other.Leader())
	}
}

// LeaseRound names the highest round a majority answered at the leader's ballot,
// and only while the leader may serve reads: it is ready, its configuration is
// not ending, and it still leads.
func TestLeaseRound(t *testing.T) {
	c := newSimCluster(t, 3, 1, func(cfg *Config) { cfg.HoldVotesAfterStart = true })
	for range c.cfg.ElectionTicks {
		for _, id := range c.ids {
			c.replicas[id].Tick()
		}
	}
	c.elect(1, 2, 3)
	lead := c.replicas[1]
	if _, _, _, ok := lead.LeaseRound(); ok {
		t.Fatal("lease before any round was answered")
	}
	c.deliverWhere(all)
	b, round, index, ok := lead.LeaseRound()
	if !ok || b != lead.Status().Promised || round == 0 || index != lead.Status().Chosen {
		t.Fatalf("after a round answered by all: ballot %v round %d index %d ok %v; status %+v", b, round, index, ok, lead.Status())
	}

	// Only follower 2 answers the next rounds: a majority (1 and 2) still has.
	s := c.propose(1, "x")
	c.deliverWhere(anyOf(between(1, 2)))
	c.dropWhere(all)
	_, round2, index2, ok := lead.LeaseRound()
	if !ok || round2 <= round || index2 < s {
		t.Fatalf("after follower 2 answered slot %d: round %d (before %d) index %d ok %v", s, round2, round, index2, ok)
	}

	// A configuration change ends the lease: the next configuration may elect
	// another leader.
	if _, err := lead.ProposeConfig([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := lead.LeaseRound(); ok {
		t.Fatal("lease while a configuration change is pending")
	}
}

// The only member of a configuration needs no round.
func TestLeaseRoundAlone(t *testing.T) {
	c := newSimCluster(t, 1, 3, nil)
	c.elect(1)
	c.deliverWhere(all)
	b, round, index, ok := c.replicas[1].LeaseRound()
	if !ok || round != 0 || b != c.replicas[1].Status().Promised || index != c.replicas[1].Status().Chosen {
		t.Fatalf("alone: ballot %v round %d index %d ok %v", b, round, index, ok)
	}
	if _, err := c.replicas[1].ProposeConfig([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := c.replicas[1].LeaseRound(); ok {
		t.Fatal("alone, with a configuration change pending: still a lease")
	}
}

// A leader that steps down has no lease.
func TestLeaseRoundEndsWithLeadership(t *testing.T) {
	c := newSimCluster(t, 3, 2, nil)
	c.elect(1, 2, 3)
	c.deliverWhere(all)
	if _, _, _, ok := c.replicas[1].LeaseRound(); !ok {
		t.Fatal("no lease after a round answered by all")
	}
	// Replica 3 stops hearing from 1 for an election timeout; 2 wins with it.
	for range 2 * c.cfg.ElectionTicks {
		c.replicas[3].Tick()
	}
	c.dropWhere(all)
	c.elect(2, 3)
	c.deliverWhere(all) // 1 hears of the higher ballot
	if c.replicas[1].IsLeader() {
		t.Fatal("replica 1 still leads")
	}
	if _, _, _, ok := c.replicas[1].LeaseRound(); ok {
		t.Fatal("a deposed leader still has a lease")
	}
}
