package peer

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
)

var (
	simSchedules = flag.Int("sim.schedules", envInt("BALLOT_SIM_SCHEDULES", 1000), "random schedules per cluster size (env BALLOT_SIM_SCHEDULES)")
	simSeed      = flag.Int64("sim.seed", int64(envInt("BALLOT_SIM_SEED", 0)), "run only this seed (env BALLOT_SIM_SEED; 0: seeds from sim.first)")
	simFirst     = flag.Int64("sim.first", int64(envInt("BALLOT_SIM_FIRST", 1)), "first seed of the run (env BALLOT_SIM_FIRST)")
	simSteps     = flag.Int("sim.steps", envInt("BALLOT_SIM_STEPS", 600), "steps per schedule (env BALLOT_SIM_STEPS)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// runSchedule drives n replicas through a seeded random schedule of ticks,
// proposals, deliveries, drops, duplicates, reorderings, partitions and
// crash-restarts, checking safety after every step; then heals everything and
// checks that the cluster converges and still chooses new commands.
func runSchedule(t testing.TB, n int, seed int64, steps int) uint64 {
	h, _ := runScheduleCluster(t, n, seed, steps)
	return h
}

// runScheduleCluster is runSchedule, also returning the cluster for inspection.
func runScheduleCluster(t testing.TB, n int, seed int64, steps int) (uint64, *simCluster) {
	c := newSimCluster(t, n, seed, scheduleConfig(seed))
	proposals := 0
	for c.steps = 0; c.steps < steps; c.steps++ {
		switch x := c.rng.Intn(100); {
		case x < 30 && len(c.net) > 0: // deliver a random message: reordering
			c.deliver(c.rng.Intn(len(c.net)), false)
		case x < 35 && len(c.net) > 0: // duplicate
			c.deliver(c.rng.Intn(len(c.net)), true)
		case x < 40 && len(c.net) > 0: // drop
			i := c.rng.Intn(len(c.net))
			m := c.net[i]
			c.net = append(c.net[:i], c.net[i+1:]...)
			c.logf("drop %v %d→%d", m.Type, m.From, m.To)
			if c.rng.Intn(2) == 0 {
				c.unreachable(m)
			}
		case x < 67:
			c.tick(c.ids[c.rng.Intn(n)])
		case x < 69: // compact a replica's log
			c.compact(c.ids[c.rng.Intn(n)])
		case x < 70:
			if len(c.fetches) > 0 {
				c.fetchSnapshot(c.rng.Intn(len(c.fetches)))
			}
		case x < 85:
			if l := c.leader(); l != nil {
				proposals++
				v := fmt.Sprintf("s%d-c%d", seed, proposals)
				if _, err := l.Propose([]byte(v)); err == nil {
					c.logf("propose %s at %d", v, l.id)
					c.process(l.id)
				}
			}
		case x < 90: // crash or restart one replica
			id := c.ids[c.rng.Intn(n)]
			switch {
			case c.wiped[id] != nil:
				c.rebuild(id)
			case c.down[id]:
				c.logf("restart %d", id)
				c.start(id)
			case downCount(c)+lostCount(c) < (n-1)/2 && c.rng.Intn(8) == 0:
				// Storage lost by at most a minority at once, counting the
				// replicas still rebuilding: a majority without its storage
				// could only stop, never recover what it lost.
				c.wipe(id)
			case downCount(c) < (n-1)/2 || c.rng.Intn(4) == 0:
				c.crash(id)
			}
		case x < 94: // partition: cut links around a random set
			c.cut = map[[2]uint64]bool{}
			for _, a := range c.ids {
				for _, b := range c.ids {
					if a != b && c.rng.Intn(3) == 0 {
						c.cut[[2]uint64{a, b}] = true
					}
				}
			}
			c.logf("partition %v", c.cut)
		case x < 97:
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
	// Heal and check liveness: every replica up, links whole, one more command
	// chosen and applied everywhere.
	c.cut = map[[2]uint64]bool{}
	for _, id := range c.ids {
		if c.down[id] && c.wiped[id] == nil {
			c.start(id)
		}
	}
	c.runUntil(200, "wiped replicas rebuilt", func() bool {
		for _, id := range c.ids {
			if c.wiped[id] != nil && !c.rebuild(id) {
				return false
			}
		}
		return true
	})
	c.runUntil(200, "leader after healing", func() bool { return c.leader() != nil })
	// A proposal can be lost when leadership changes before it is chosen; like a
	// client, retry it until it is applied everywhere.
	final := []byte(fmt.Sprintf("s%d-final", seed))
	tries := 0
	c.runUntil(600, "final command applied everywhere", func() bool {
		slot, ok := c.acked[string(final)]
		if ok {
			for _, id := range c.ids {
				if c.disks[id].appliedS < slot {
					return false
				}
			}
			return true
		}
		if l := c.leader(); l != nil && tries%50 == 0 {
			if _, err := l.Propose(final); err == nil {
				c.process(l.id)
			}
		}
		tries++
		return false
	})
	c.events.Write([]byte(c.dump()))
	return c.events.Sum64(), c
}

// scheduleConfig varies the replicas' settings with the seed, so that random
// schedules cover each combination, every one of which must be safe, and live
// once the faults stop: thrifty leaders on odd seeds (taking a census of their
// followers every 2 ticks, to exercise it), leaders that ask every follower on
// even ones; replicas that hold their votes for an election timeout after
// every (re)start (as ballotd's do, for leases) on half of each.
func scheduleConfig(seed int64) func(*Config) {
	return func(cfg *Config) {
		cfg.Thrifty = seed%2 != 0
		cfg.ThriftyCensusTicks = 2
		cfg.HoldVotesAfterStart = seed%4 >= 2
	}
}

// The random schedules do take the compaction paths: replicas fall behind a
// compacted log and catch up by installing snapshots, and still agree.
func TestSchedulesInstallSnapshots(t *testing.T) {
	installs := 0
	for seed := int64(1); seed <= 200; seed++ {
		_, c := runScheduleCluster(t, 3, seed, 600)
		installs += c.installs
	}
	rebuilds := 0
	for seed := int64(1); seed <= 200; seed++ {
		_, c := runScheduleCluster(t, 5, seed, 600)
		rebuilds += c.rebuilds
	}
	if rebuilds < 20 {
		t.Fatalf("only %d wiped replicas rebuilt in 200 schedules", rebuilds)
	}
	t.Logf("%d wiped replicas rebuilt", rebuilds)
	if installs < 20 {
		t.Fatalf("only %d snapshots installed in 200 schedules; the compaction paths are not exercised", installs)
	}
	t.Logf("%d snapshots installed in 200 schedules", installs)
}

// A seed replays step for step: two runs of one seed see the same events.
func TestScheduleReplays(t *testing.T) {
	for _, seed := range []int64{7, 1234} {
		a, b := runSchedule(t, 5, seed, 800), runSchedule(t, 5, seed, 800)
		if a != b {
			t.Fatalf("seed %d: two runs differ (event hashes %x, %x)", seed, a, b)
		}
	}
}

// lostCount is the number of running replicas still rebuilding lost storage.
func lostCount(c *simCluster) int {
	k := 0
	for _, id := range c.ids {
		if r := c.replicas[id]; r != nil && r.rebuilding() {
			k++
		}
	}
	return k
}

func downCount(c *simCluster) int {
	k := 0
	for _, d := range c.down {
		if d {
			k++
		}
	}
	return k
}

// TestRandomSchedules checks safety (one value per slot, applied sequences agree,
// acknowledged commands survive leader changes) under random faults, then
// liveness once faults stop. Rerun a failure with -sim.seed=N.
func TestRandomSchedules(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			if *simSeed != 0 {
				runSchedule(t, n, *simSeed, *simSteps)
				return
			}
			first := *simFirst
			for seed := first; seed < first+int64(*simSchedules); seed++ {
				runSchedule(t, n, seed, *simSteps)
				if t.Failed() {
					return
				}
			}
			t.Logf("sim: n=%d schedules=%d seeds=%d..%d steps=%d violations=0",
				n, *simSchedules, first, first+int64(*simSchedules)-1, *simSteps)
		})
	}
}
