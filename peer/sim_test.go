package peer

import (
	"bytes"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand"
	"slices"
	"testing"
)

// simDisk is what one replica has on stable storage.
type simDisk struct {
	promised Ballot
	entries  map[uint64]Entry
	applied  [][]byte // the values applied, slot order (no-ops skipped); its length is not the slot
	slots    []uint64 // the slot of each value in applied
	appliedS uint64
	// compacted: entries up to it are gone, and applies up to it are durable (a
	// store syncs before it compacts).
	compacted uint64
	// rebuildTo: the replica was wiped and is rebuilding (Durable.RebuildTo); kept
	// on disk so that a crash during the rebuild does not forget it.
	rebuildTo uint64
	// epoch and members: the configuration the replica's applied state is in (0
	// and nil for a replica that has never learned one).
	epoch   uint64
	members []uint64
}

// snapshotFetch is a snapshot a replica asked for and has not installed yet.
type snapshotFetch struct {
	to   uint64
	want SnapshotWanted
}

// simCluster runs replicas in one process over a simulated network that the test
// controls message by message. It checks the safety invariants after every step.
type simCluster struct {
	t        testing.TB
	seed     int64
	cfg      Config
	ids      []uint64
	replicas map[uint64]*Replica
	disks    map[uint64]*simDisk
	down     map[uint64]bool
	cut      map[[2]uint64]bool // directed links that drop everything
	net      []Message
	rng      *rand.Rand
	steps    int

	chosen      map[uint64][]byte // slot → the value known chosen (from any evidence)
	holders     map[acceptKey]map[uint64]bool
	reads       map[uint64][]ReadState // reads each replica released
	acked       map[string]uint64      // value → slot at which some replica applied it
	leaderTerms []Ballot
	fetches     []snapshotFetch
	installs    int                       // snapshots installed, so tests can tell the path was taken
	reconfig    bool                      // replicas change configurations (reconfig_test.go)
	retired     map[uint64]bool           // removed from the configuration: serve snapshots only
	switches    int                       // configuration changes replicas carried out
	ticks       map[uint64]int            // ticks each replica has taken
	wiped       map[uint64]map[uint64]int // wiped replica → others' ticks at the wipe
	rebuilds    int                       // wiped replicas rebuilt
	trace       []string
	events      hash.Hash64 // every event of the run, to check that a seed replays exactly
}

func newSimCluster(t testing.TB, n int, seed int64, tune func(*Config)) *simCluster {
	c := &simCluster{
		t: t, seed: seed,
		replicas: map[uint64]*Replica{},
		disks:    map[uint64]*simDisk{},
		down:     map[uint64]bool{},
		cut:      map[[2]uint64]bool{},
		rng:      rand.New(rand.NewSource(seed)),
		chosen:   map[uint64][]byte{},
		holders:  map[acceptKey]map[uint64]bool{},
		reads:    map[uint64][]ReadState{},
		acked:    map[string]uint64{},
		events:   fnv.New64a(),
		ticks:    map[uint64]int{},
		retired:  map[uint64]bool{},
		wiped:    map[uint64]map[uint64]int{},
	}
	for i := 1; i <= n; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	c.cfg = Config{Members: c.ids, ElectionTicks: 10, HeartbeatTicks: 2, Seed: seed, MaxEntriesPerMessage: 4}
	if tune != nil {
		tune(&c.cfg)
	}
	for _, id := range c.ids {
		c.disks[id] = &simDisk{entries: map[uint64]Entry{}, epoch: 1, members: slices.Clone(c.ids)}
		c.start(id)
	}
	return c
}

func (c *simCluster) fatalf(format string, args ...any) {
	c.t.Helper()
	tail := c.trace
	if len(tail) > 60 {
		tail = tail[len(tail)-60:]
	}
	c.t.Fatalf("seed %d, step %d: %s\nreplay: go test ./peer -run %s -sim.seed=%d\nlast events:\n  %s\nreplicas:\n%s",
		c.seed, c.steps, fmt.Sprintf(format, args...), c.t.Name(), c.seed, bytesJoin(tail), c.dump())
}

func (c *simCluster) dump() string {
	var b bytes.Buffer
	for _, id := range c.ids {
		r := c.replicas[id]
		if r == nil {
			fmt.Fprintf(&b, "  %d down\n", id)
			continue
		}
		fmt.Fprintf(&b, "  %d %v leader=%d promised=%v chosen=%d applied=%d log=%d disk.applied=%d epoch=%d members=%v\n",
			id, r.role, r.leader, r.promised, r.chosen, r.applied, len(r.log), c.disks[id].appliedS,
			c.disks[id].epoch, c.disks[id].members)
		if r.lead != nil {
			for _, f := range r.members {
				p := r.lead.followers[f]
				if p == nil {
					continue
				}
				fmt.Fprintf(&b, "    follower %d next=%d chosen=%d executing=%v paused=%v inflight=%d\n",
					f, p.next, p.chosen, p.executing, p.paused, len(p.inflight))
			}
		}
	}
	return b.String()
}

func bytesJoin(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(x)
	}
	return b.String()
}

func (c *simCluster) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	c.events.Write([]byte(line))
	c.events.Write([]byte{'\n'})
	c.trace = append(c.trace, line)
	if len(c.trace) > 400 {
		c.trace = c.trace[200:]
	}
}

// start (re)creates replica id from its disk alone.
func (c *simCluster) start(id uint64) {
	d := c.disks[id]
	if d.epoch == 0 || c.retired[id] {
		// A replica that never learned a configuration, or left one, does not
		// take part: it only answers snapshot requests.
		c.replicas[id] = nil
		c.down[id] = false
		return
	}
	cfg := c.cfg
	cfg.ID = id
	cfg.Members = d.members
	cfg.Seed = c.seed + int64(c.steps)
	var entries []Entry
	for _, e := range d.entries {
		entries = append(entries, e)
	}
	r, err := New(cfg, Durable{Promised: d.promised, Entries: entries, Applied: d.appliedS, Compacted: d.compacted, RebuildTo: d.rebuildTo})
	if err != nil {
		c.t.Fatal(err)
	}
	c.replicas[id] = r
	c.down[id] = false
}

// crash loses everything replica id had in memory, including messages it had not
// yet sent; what Ready handed it and it saved survives.
func (c *simCluster) crash(id uint64) {
	c.logf("crash %d", id)
	if d := c.disks[id]; c.rng.Intn(3) == 0 && d.appliedS > d.compacted {
		// The store does not sync its applies (the log it applies from is
		// durable), so a crash may take the applied slot back, though not below
		// what it compacted.
		d.appliedS = d.compacted + uint64(c.rng.Int63n(int64(d.appliedS-d.compacted)))
		k := len(d.slots)
		for k > 0 && d.slots[k-1] > d.appliedS {
			k--
		}
		d.applied, d.slots = d.applied[:k], d.slots[:k]
		c.logf("replica %d lost applies after slot %d", id, d.appliedS)
	}
	c.down[id] = true
	c.replicas[id] = nil
}

// process carries out every Ready of replica id, in the order the package
// documents: save, send, apply, advance.
func (c *simCluster) process(id uint64) {
	r := c.replicas[id]
	if r == nil {
		return
	}
	for r.HasReady() {
		rd := r.Ready()
		d := c.disks[id]
		if rd.SavePromised {
			if rd.Promised.Less(d.promised) {
				c.fatalf("replica %d saves promise %v below saved %v", id, rd.Promised, d.promised)
			}
			d.promised = rd.Promised
		}
		for _, e := range rd.Entries {
			old, hadOld := d.entries[e.Slot]
			d.entries[e.Slot] = e
			c.recordAccepted(id, old, hadOld, e)
		}
		for _, m := range rd.Messages {
			m.Epoch = d.epoch
			c.net = append(c.net, m)
		}
		c.reads[id] = append(c.reads[id], rd.Reads...)
		if rd.Snapshot.Index != 0 {
			c.logf("replica %d wants a snapshot of slot %d from %d", id, rd.Snapshot.Index, rd.Snapshot.From)
			c.fetches = append(c.fetches, snapshotFetch{to: id, want: rd.Snapshot})
		}
		for _, e := range rd.Committed {
			if e.Slot != d.appliedS+1 {
				c.fatalf("replica %d applies slot %d after %d", id, e.Slot, d.appliedS)
			}
			d.appliedS = e.Slot
			c.noteChosen(e.Slot, valueOf(e), fmt.Sprintf("applied by %d", id))
			if e.Kind == KindCommands || e.Kind == KindConfig {
				d.applied = append(d.applied, e.Data)
				d.slots = append(d.slots, e.Slot)
				c.checkApplied(id, len(d.applied)-1)
				if _, ok := c.acked[string(e.Data)]; !ok && e.Kind == KindCommands {
					c.acked[string(e.Data)] = e.Slot
				}
			}
			if e.Kind == KindConfig {
				epoch, members := decodeSimConfig(e.Data)
				d.epoch, d.members = epoch, members
				c.logf("replica %d applies configuration %d %v at slot %d", id, epoch, members, e.Slot)
			}
		}
		if rd.IsLeader && rd.LeaderChanged {
			c.logf("%d leads at %v", id, r.currentBallot())
		}
		r.Advance(rd)
		if d.rebuildTo != 0 && !r.rebuilding() {
			// The rebuild is over: recorded as a server does (SetRebuildTo(0)),
			// or a restart would take it up again with its chosen prefix back
			// at the applied slot, after the wipe guard let another replica
			// lose its storage.
			d.rebuildTo = 0
		}
		if r.IsLeader() {
			c.checkLeaderLog(r)
		}
		if c.reconfig && r.Ended() != 0 && r.Ended() <= d.appliedS {
			// The configuration this core ran is over and applied: go on in
			// the next one, as a server does.
			c.switches++
			c.restartInConfig(id)
			c.process(id)
			return
		}
	}
}

func valueOf(e Entry) []byte {
	if e.Kind == KindNoop {
		return []byte("<noop>")
	}
	return e.Data
}

// noteChosen records evidence that slot holds value; any disagreement is a safety
// violation.
func (c *simCluster) noteChosen(slot uint64, v []byte, how string) {
	if old, ok := c.chosen[slot]; ok {
		if !bytes.Equal(old, v) {
			c.fatalf("slot %d chosen twice: %q then %q (%s)", slot, old, v, how)
		}
		return
	}
	c.chosen[slot] = slices.Clone(v)
}

// acceptKey names one accepted proposal: a slot and the ballot it was accepted at.
type acceptKey struct {
	slot uint64
	b    Ballot
}

// recordAccepted notes that replica id durably holds e, replacing old (if any),
// and checks at once whether that makes e's value chosen by a majority.
func (c *simCluster) recordAccepted(id uint64, old Entry, hadOld bool, e Entry) {
	if hadOld {
		k := acceptKey{old.Slot, old.Ballot}
		delete(c.holders[k], id)
	}
	k := acceptKey{e.Slot, e.Ballot}
	if c.holders[k] == nil {
		c.holders[k] = map[uint64]bool{}
	}
	c.holders[k][id] = true
	if len(c.holders[k]) >= majority(len(c.ids)) {
		c.noteChosen(e.Slot, valueOf(e), fmt.Sprintf("accepted by a majority at %v", e.Ballot))
	}
}

// checkApplied checks that what replica id just applied as its i-th command
// agrees with what every other replica applied there: applied sequences are
// prefixes of one another.
func (c *simCluster) checkApplied(id uint64, i int) {
	v := c.disks[id].applied[i]
	for other, d := range c.disks {
		if other != id && i < len(d.applied) && !bytes.Equal(d.applied[i], v) {
			c.fatalf("replica %d applied %q as command %d, replica %d applied %q", id, v, i, other, d.applied[i])
		}
	}
}

// checkInvariants re-checks every invariant from scratch: at most one value chosen
// per slot, applied sequences agreeing. The simulator also checks both
// incrementally as each replica saves and applies, so this full pass is a
// cross-check for the scripted tests.
func (c *simCluster) checkInvariants() {
	count := map[acceptKey]int{}
	val := map[acceptKey][]byte{}
	for _, d := range c.disks {
		for _, e := range d.entries {
			k := acceptKey{e.Slot, e.Ballot}
			count[k]++
			val[k] = valueOf(e)
		}
	}
	for k, n := range count {
		if n >= majority(len(c.ids)) {
			c.noteChosen(k.slot, val[k], fmt.Sprintf("accepted by a majority at %v", k.b))
		}
	}
	for id, d := range c.disks {
		for i := range d.applied {
			c.checkApplied(id, i)
		}
	}
}

// checkLeaderLog checks that a leader's log holds every acknowledged command that it
// has not itself applied yet: an acknowledged write survives every change of
// leader.
func (c *simCluster) checkLeaderLog(r *Replica) {
	if r.cand != nil {
		return
	}
	for v, slot := range c.acked {
		if slot <= r.applied || (r.lead != nil && r.lead.stopAt != 0 && slot > r.lead.stopAt) {
			// Applied already, or after the last slot of this leader's
			// configuration: it can choose nothing there.
			continue
		}
		le, ok := r.log[slot]
		if !ok {
			c.fatalf("leader %d lacks acknowledged %q at slot %d", r.id, v, slot)
		}
		if !bytes.Equal(le.Data, []byte(v)) {
			c.fatalf("leader %d holds %q at slot %d where %q was acknowledged", r.id, le.Data, slot, v)
		}
	}
}

// deliver hands message i to its destination, unless the destination is down or
// the link is cut. keep leaves a copy in flight (a duplicate).
func (c *simCluster) deliver(i int, keep bool) {
	m := c.net[i]
	if !keep {
		c.net = slices.Delete(c.net, i, i+1)
	}
	if c.down[m.To] || c.cut[[2]uint64{m.From, m.To}] {
		c.logf("lost %v %d→%d", m.Type, m.From, m.To)
		c.unreachable(m)
		return
	}
	if c.reconfig && !c.sameConfig(m) {
		c.unreachable(m)
		return
	}
	c.logf("deliver %v %d→%d b=%v ok=%v n=%d commit=%d", m.Type, m.From, m.To, m.Ballot, m.OK, len(m.Entries), m.Commit)
	c.replicas[m.To].Step(m)
	c.process(m.To)
}

// unreachable tells a request's sender that it failed, as a transport would.
func (c *simCluster) unreachable(m Message) {
	if m.Type.IsReply() || c.down[m.From] || c.replicas[m.From] == nil || m.Type == MsgUnreachable {
		return
	}
	c.replicas[m.From].Step(Message{Type: MsgUnreachable, From: m.To, To: m.From, RoundTrip: m.RoundTrip})
	c.process(m.From)
}

func (c *simCluster) tick(id uint64) {
	if c.down[id] || c.replicas[id] == nil {
		return
	}
	c.ticks[id]++
	c.replicas[id].Tick()
	c.process(id)
}

func (c *simCluster) leader() *Replica {
	var best *Replica
	for _, id := range c.ids {
		r := c.replicas[id]
		if r != nil && r.IsLeader() && (best == nil || best.currentBallot().Less(r.currentBallot())) {
			best = r
		}
	}
	return best
}

// wipe crashes replica id and deletes its stable storage, as a lost disk or a
// deleted data directory would.
func (c *simCluster) wipe(id uint64) {
	c.crash(id)
	c.logf("wipe %d", id)
	// The members are fixed in these schedules; a real replica finds them in the
	// replicas file.
	old := c.disks[id]
	c.disks[id] = &simDisk{entries: map[uint64]Entry{}, epoch: old.epoch, members: old.members}
	for k, h := range c.holders {
		delete(h, id)
		if len(h) == 0 {
			delete(c.holders, k)
		}
	}
	at := map[uint64]int{}
	for _, o := range c.ids {
		at[o] = c.ticks[o]
	}
	c.wiped[id] = at
}

// rebuild restarts a wiped replica the way a server does: once every other
// running replica has ticked through two election timeouts since the wipe (so no
// candidate still counts a promise, and no leader a vote, from before it), it asks
// a majority of the others for their promised ballot and highest accepted,
// applied or rebuild slot (Replica.Inquire), saves the highest ballot as its promise, and starts rebuilding up
// to the highest slot. It returns false, leaving the replica down, when it must
// wait.
func (c *simCluster) rebuild(id uint64) bool {
	at := c.wiped[id]
	var others []uint64
	for _, o := range c.ids {
		if o == id || c.down[o] {
			continue
		}
		if c.ticks[o]-at[o] < 2*c.cfg.ElectionTicks {
			return false
		}
		others = append(others, o)
	}
	need := majority(len(c.ids))
	if len(c.ids) == 1 {
		need = 0
	}
	if len(others) < need {
		return false
	}
	c.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	var promised Ballot
	var highest uint64
	for _, o := range others[:need] {
		p, h := c.replicas[o].Inquire()
		promised = maxBallot(promised, p)
		highest = max(highest, h)
	}
	delete(c.wiped, id)
	c.disks[id].promised = promised
	c.disks[id].rebuildTo = highest
	c.rebuilds++
	c.logf("rebuild %d: promised %v, rebuild to slot %d", id, promised, highest)
	c.start(id)
	return true
}

// compact compacts replica id's log (memory and disk) up to a random applied slot.
func (c *simCluster) compact(id uint64) {
	r, d := c.replicas[id], c.disks[id]
	if r == nil || r.applied <= r.compacted {
		return
	}
	upTo := r.compacted + 1 + uint64(c.rng.Int63n(int64(r.applied-r.compacted)))
	if err := r.Compact(upTo); err != nil {
		c.fatalf("replica %d: %v", id, err)
	}
	for s := range d.entries {
		if s <= upTo {
			delete(d.entries, s)
		}
	}
	d.compacted = upTo
	c.logf("replica %d compacted to %d", id, upTo)
}

// fetchSnapshot carries out snapshot request i: the receiver copies the sender's
// durable state machine, as a transfer of the sender's latest snapshot would, if
// both are up, the link works and the snapshot is newer than what it applied.
func (c *simCluster) fetchSnapshot(i int) {
	f := c.fetches[i]
	c.fetches = slices.Delete(c.fetches, i, i+1)
	r, src := c.replicas[f.to], c.disks[f.want.From]
	if (r == nil && !c.reconfig) || c.down[f.to] || c.down[f.want.From] || c.cut[[2]uint64{f.to, f.want.From}] || c.cut[[2]uint64{f.want.From, f.to}] {
		c.logf("snapshot %d→%d failed", f.want.From, f.to)
		return
	}
	// The sender's latest state, which may be older than the hint if the sender
	// lost its storage since: any applied prefix is chosen, so it is still good
	// if it is newer than the receiver's.
	index := src.appliedS
	d := c.disks[f.to]
	if index <= d.appliedS || (r != nil && index <= r.applied) {
		c.logf("snapshot %d→%d of slot %d is stale", f.want.From, f.to, index)
		return
	}
	for i, v := range d.applied {
		if i >= len(src.applied) || !bytes.Equal(src.applied[i], v) {
			c.fatalf("replica %d installs a snapshot from %d that does not extend what it applied", f.to, f.want.From)
		}
	}
	d.applied = slices.Clone(src.applied)
	d.slots = slices.Clone(src.slots)
	d.appliedS = index
	newConfig := src.epoch != d.epoch
	d.epoch, d.members = src.epoch, slices.Clone(src.members)
	d.compacted = max(d.compacted, index)
	for s := range d.entries {
		if s <= index {
			delete(d.entries, s)
		}
	}
	if newConfig || r == nil {
		// The snapshot comes from a later configuration: the replica goes on in
		// that one (or leaves, if it is not a member), from the snapshot's slot.
		for s := range d.entries {
			delete(d.entries, s)
		}
		d.compacted = index
		c.installs++
		c.logf("replica %d installed a snapshot of slot %d from %d, configuration %d %v", f.to, index, f.want.From, d.epoch, d.members)
		for i := range d.applied {
			c.checkApplied(f.to, i)
		}
		c.restartInConfig(f.to)
		return
	}
	if err := r.InstallSnapshot(index); err != nil {
		c.fatalf("replica %d: %v", f.to, err)
	}
	c.installs++
	c.logf("replica %d installed a snapshot of slot %d from %d", f.to, index, f.want.From)
	for i := range d.applied {
		c.checkApplied(f.to, i)
	}
	c.process(f.to)
}

// fetchAll carries out every snapshot request.
func (c *simCluster) fetchAll() {
	for len(c.fetches) > 0 {
		c.fetchSnapshot(0)
	}
}

// deliverAll delivers messages until none are in flight (bounded).
func (c *simCluster) deliverAll() {
	for i := 0; len(c.net) > 0 && i < 100000; i++ {
		c.deliver(0, false)
	}
}

// runUntil ticks every replica and delivers everything until cond holds, failing
// after maxTicks rounds.
func (c *simCluster) runUntil(maxTicks int, what string, cond func() bool) {
	c.t.Helper()
	for i := 0; i < maxTicks; i++ {
		if cond() {
			return
		}
		for _, id := range c.ids {
			c.tick(id)
		}
		c.deliverAll()
		c.fetchAll()
	}
	if !cond() {
		c.fatalf("no %s after %d ticks", what, maxTicks)
	}
}
