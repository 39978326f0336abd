package peer

import "testing"

// benchCluster is three replicas wired by hand, without the simulator's checks,
// so that a benchmark measures the core alone: no disk, no network, no clock.
type benchCluster struct {
	b        *testing.B
	replicas map[uint64]*Replica
	queue    []Message
}

func newBenchCluster(b *testing.B) *benchCluster {
	c := &benchCluster{b: b, replicas: make(map[uint64]*Replica)}
	for _, id := range []uint64{1, 2, 3} {
		r, err := New(Config{ID: id, Members: []uint64{1, 2, 3}, Seed: int64(id)}, Durable{})
		if err != nil {
			b.Fatal(err)
		}
		c.replicas[id] = r
	}
	c.replicas[1].Campaign()
	c.settle()
	if !c.replicas[1].IsLeader() {
		b.Fatal("replica 1 did not win the election")
	}
	return c
}

// settle hands every replica its Ready, as a runtime would after saving it, and
// delivers every message, until nothing moves.
func (c *benchCluster) settle() {
	for {
		moved := false
		for _, id := range []uint64{1, 2, 3} {
			r := c.replicas[id]
			for r.HasReady() {
				rd := r.Ready()
				c.queue = append(c.queue, rd.Messages...)
				r.Advance(rd)
				moved = true
			}
		}
		if len(c.queue) == 0 && !moved {
			return
		}
		msgs := c.queue
		c.queue = nil
		for _, m := range msgs {
			c.replicas[m.To].Step(m)
		}
	}
}

// benchBatch is the data of a slot of 64 puts of 100 bytes, about the size of the
// command batch the store's benchmarks use.
var benchBatch = make([]byte, 64*130)

// BenchmarkSlotChosen is the core's CPU for one slot, summed over three replicas:
// the leader proposes, both followers accept, the leader counts the slot chosen
// and every replica learns it.
func BenchmarkSlotChosen(b *testing.B) {
	c := newBenchCluster(b)
	lead := c.replicas[1]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lead.Propose(benchBatch); err != nil {
			b.Fatal(err)
		}
		c.settle()
	}
	b.StopTimer()
	if lead.Status().Chosen < uint64(b.N) {
		b.Fatalf("chosen %d after %d proposals", lead.Status().Chosen, b.N)
	}
}

// BenchmarkAcceptorStep is a follower taking in one accept request carrying one
// slot and the commit point of the slot before: the step, its Ready and Advance.
func BenchmarkAcceptorStep(b *testing.B) {
	c := newBenchCluster(b)
	f := c.replicas[2]
	ballot := c.replicas[1].Status().Promised
	next := c.replicas[1].Status().Chosen + 1
	b.ReportAllocs()
	for b.Loop() {
		f.Step(Message{Type: MsgAccept, From: 1, To: 2, Ballot: ballot, Commit: next - 1, RoundTrip: next,
			Entries: []Entry{{Slot: next, Ballot: ballot, Kind: KindCommands, Data: benchBatch}}})
		rd := f.Ready()
		if len(rd.Messages) != 1 || !rd.Messages[0].OK {
			b.Fatalf("slot %d: accept not answered OK: %+v", next, rd.Messages)
		}
		f.Advance(rd)
		next++
	}
}
