package peer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Configuration changes in the simulator. A configuration entry's data is
// "config <epoch> <id> <id> ...". A replica that applies one starts a new core
// for the next configuration from the slot after it, or leaves; replicas in
// different configurations exchange no prepare or accept traffic, and one that
// hears from a later configuration fetches a snapshot from the sender, which is
// also how a new member joins. This is what package server does.

func encodeSimConfig(epoch uint64, members []uint64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "config %d", epoch)
	for _, m := range members {
		fmt.Fprintf(&b, " %d", m)
	}
	return []byte(b.String())
}

func decodeSimConfig(data []byte) (uint64, []uint64) {
	f := strings.Fields(string(data))
	epoch, _ := strconv.ParseUint(f[1], 10, 64)
	var members []uint64
	for _, x := range f[2:] {
		m, _ := strconv.ParseUint(x, 10, 64)
		members = append(members, m)
	}
	return epoch, members
}

// sameConfig says whether m may be delivered: prepare and accept traffic only
// between replicas in the same configuration; execute traffic (chosen values) to
// any replica that runs a core. A replica that hears from a later configuration,
// or is refused by a replica in one, asks that replica for a snapshot.
func (c *simCluster) sameConfig(m Message) bool {
	to := c.disks[m.To]
	switch {
	case m.Epoch > to.epoch:
		c.wantFrom(m.To, m.From)
	case m.Epoch < to.epoch && m.Type != MsgExecute && m.Type != MsgExecuted:
		// The refusal names the later configuration: the sender catches up.
		c.wantFrom(m.From, m.To)
	}
	if c.replicas[m.To] == nil {
		c.logf("refused %v %d→%d: receiver takes no part", m.Type, m.From, m.To)
		return false
	}
	if m.Type == MsgExecute || m.Type == MsgExecuted || m.Epoch == to.epoch {
		return true
	}
	c.logf("refused %v %d→%d: configuration %d, receiver in %d", m.Type, m.From, m.To, m.Epoch, to.epoch)
	return false
}

// wantFrom queues a snapshot request from replica to to replica from, once.
func (c *simCluster) wantFrom(to, from uint64) {
	for _, f := range c.fetches {
		if f.to == to && f.want.From == from {
			return
		}
	}
	c.fetches = append(c.fetches, snapshotFetch{to: to, want: SnapshotWanted{From: from}})
}

// restartInConfig starts replica id afresh in the configuration its disk holds,
// from its applied slot: the log of the previous configuration is dropped (what
// was chosen is applied; what was not can never be chosen after the
// configuration entry). A replica that is not a member leaves.
func (c *simCluster) restartInConfig(id uint64) {
	d := c.disks[id]
	for s, e := range d.entries {
		delete(d.entries, s)
		if h := c.holders[acceptKey{s, e.Ballot}]; h != nil {
			delete(h, id)
		}
	}
	d.compacted = d.appliedS
	if !slices.Contains(d.members, id) {
		c.logf("replica %d leaves: configuration %d %v", id, d.epoch, d.members)
		c.retired[id] = true
		c.replicas[id] = nil
		return
	}
	c.retired[id] = false
	c.logf("replica %d runs configuration %d %v from slot %d", id, d.epoch, d.members, d.appliedS+1)
	c.start(id)
}

// newReconfigCluster returns n members and spare replicas that are not members
// yet (ids n+1...).
func newReconfigCluster(t testing.TB, n, spare int, seed int64) *simCluster {
	c := newSimCluster(t, n, seed, scheduleConfig(seed))
	c.reconfig = true
	for i := n + 1; i <= n+spare; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		c.disks[id] = &simDisk{entries: map[uint64]Entry{}}
		c.down[id] = false
	}
	return c
}

// proposeConfig has the leader (if any) propose a change of one member: add a
// replica that is not a member, remove one (the leader too), or replace one.
func (c *simCluster) proposeConfig() {
	l := c.leader()
	if l == nil {
		return
	}
	d := c.disks[l.id]
	members := slices.Clone(d.members)
	var outside []uint64
	for _, id := range c.ids {
		if !slices.Contains(members, id) {
			outside = append(outside, id)
		}
	}
	switch x := c.rng.Intn(3); {
	case x == 0 && len(outside) > 0 && len(members) < 5:
		members = append(members, outside[c.rng.Intn(len(outside))])
	case x == 1 && len(members) > 2:
		i := c.rng.Intn(len(members))
		members = slices.Delete(members, i, i+1)
	case len(outside) > 0:
		members[c.rng.Intn(len(members))] = outside[c.rng.Intn(len(outside))]
	default:
		return
	}
	slices.Sort(members)
	data := encodeSimConfig(d.epoch+1, members)
	if slot, err := l.ProposeConfig(data); err == nil {
		c.logf("propose %s at %d, slot %d", data, l.id, slot)
		c.process(l.id)
	}
}

// runReconfigSchedule is runSchedule with configuration changes among the
// faults. After the faults it heals everything and checks that the members of
// the latest configuration elect a leader and all apply a new command.
func runReconfigSchedule(t testing.TB, n int, seed int64, steps int) *simCluster {
	c := newReconfigCluster(t, n, 2, seed)
	proposals := 0
	for c.steps = 0; c.steps < steps; c.steps++ {
		switch x := c.rng.Intn(100); {
		case x < 30 && len(c.net) > 0:
			c.deliver(c.rng.Intn(len(c.net)), false)
		case x < 33 && len(c.net) > 0:
			c.deliver(c.rng.Intn(len(c.net)), true)
		case x < 38 && len(c.net) > 0:
			i := c.rng.Intn(len(c.net))
			m := c.net[i]
			c.net = append(c.net[:i], c.net[i+1:]...)
			c.logf("drop %v %d→%d", m.Type, m.From, m.To)
			if c.rng.Intn(2) == 0 {
				c.unreachable(m)
			}
		case x < 64:
			c.tick(c.ids[c.rng.Intn(len(c.ids))])
		case x < 66:
			c.compact(c.ids[c.rng.Intn(len(c.ids))])
		case x < 69:
			if len(c.fetches) > 0 {
				c.fetchSnapshot(c.rng.Intn(len(c.fetches)))
			}
		case x < 80:
			if l := c.leader(); l != nil {
				proposals++
				v := fmt.Sprintf("s%d-c%d", seed, proposals)
				if _, err := l.Propose([]byte(v)); err == nil {
					c.logf("propose %s at %d", v, l.id)
					c.process(l.id)
				}
			}
		case x < 83:
			c.proposeConfig()
		case x < 88:
			id := c.ids[c.rng.Intn(len(c.ids))]
			if c.down[id] {
				c.logf("restart %d", id)
				c.start(id)
			} else if c.replicas[id] != nil && (downCount(c) < 1 || c.rng.Intn(4) == 0) {
				c.crash(id)
			}
		case x < 92:
			c.cut = map[[2]uint64]bool{}
			for _, a := range c.ids {
				for _, b := range c.ids {
					if a != b && c.rng.Intn(3) == 0 {
						c.cut[[2]uint64{a, b}] = true
					}
				}
			}
			c.logf("partition %v", c.cut)
		case x < 96:
			c.cut = map[[2]uint64]bool{}
			c.logf("heal")
		default:
			if l := c.leader(); l != nil {
				if err := l.ReadIndex(uint64(c.steps)); err == nil {
					c.process(l.id)
				}
			}
		}
	}
	c.checkInvariants()
	c.cut = map[[2]uint64]bool{}
	for _, id := range c.ids {
		if c.down[id] {
			c.start(id)
		}
	}
	// The latest configuration: the highest epoch any replica applied.
	latest := func() (uint64, []uint64) {
		var e uint64
		var m []uint64
		for _, id := range c.ids {
			if d := c.disks[id]; d.epoch > e {
				e, m = d.epoch, d.members
			}
		}
		return e, m
	}
	final := []byte(fmt.Sprintf("s%d-final", seed))
	tries := 0
	c.runUntil(1500, "final command applied by every member of the latest configuration", func() bool {
		epoch, members := latest()
		if slot, ok := c.acked[string(final)]; ok {
			for _, id := range members {
				if d := c.disks[id]; d.epoch != epoch || d.appliedS < slot {
					return false
				}
			}
			return true
		}
		if l := c.leader(); l != nil && tries%50 == 0 && c.disks[l.id].epoch == epoch {
			if _, err := l.Propose(final); err == nil {
				c.process(l.id)
			}
		}
		tries++
		return false
	})
	return c
}

// TestReconfigSchedules checks safety (one value per slot, applied sequences
// agree, configuration entries included) while members are added, removed
// (the leader too) and replaced amid message loss, partitions and crashes; then
// liveness of the latest configuration. Rerun a failure with -sim.seed=N.
func TestReconfigSchedules(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			if *simSeed != 0 {
				runReconfigSchedule(t, n, *simSeed, *simSteps)
				return
			}
			switches, installs := 0, 0
			first := *simFirst
			for seed := first; seed < first+int64(*simSchedules); seed++ {
				c := runReconfigSchedule(t, n, seed, *simSteps)
				if t.Failed() {
					return
				}
				switches += c.switches
				installs += c.installs
			}
			if switches < *simSchedules/4 {
				t.Fatalf("only %d configuration changes carried out in %d schedules", switches, *simSchedules)
			}
			t.Logf("sim: reconfiguration n=%d schedules=%d switches=%d snapshot-joins=%d violations=0",
				n, *simSchedules, switches, installs)
		})
	}
}
