package peer

import (
	"errors"
	"testing"
)

// newTestReplica returns replica 1 of three, resumed from d.
func newTestReplica(t *testing.T, d Durable) *Replica {
	t.Helper()
	r, err := New(Config{ID: 1, Members: []uint64{1, 2, 3}, ElectionTicks: 10}, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// promiseTo steps a prepare from replica 2 asking from slot first and returns the
// promise it gets.
func promiseTo(t *testing.T, r *Replica, first uint64) Message {
	t.Helper()
	r.Step(Message{Type: MsgPrepare, From: 2, To: 1, Ballot: Ballot{Round: 50, ID: 2}, Slot: first})
	rd := r.Ready()
	r.Advance(rd)
	for _, m := range rd.Messages {
		if m.Type == MsgPromise {
			return m
		}
	}
	t.Fatalf("no promise in %+v", rd.Messages)
	return Message{}
}

func commandEntries(from, to uint64, b Ballot) []Entry {
	var es []Entry
	for s := from; s <= to; s++ {
		es = append(es, Entry{Slot: s, Ballot: b, Kind: KindCommands, Data: []byte{byte(s)}})
	}
	return es
}

// An acceptor that compacted its log refuses to promise about compacted slots
// (it could not report what it accepted there) and points the candidate at a
// snapshot; it still promises from the slot after, reporting every entry.
func TestCompactedAcceptorRefusesPrepare(t *testing.T) {
	b := Ballot{Round: 1, ID: 3}
	r := newTestReplica(t, Durable{Promised: b, Entries: commandEntries(1, 20, b), Applied: 15})
	if err := r.Compact(16); err == nil {
		t.Fatal("compacted past the applied slot")
	}
	if err := r.Compact(10); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Compacted != 10 || st.LogEntries != 10 {
		t.Fatalf("after compacting to 10: compacted %d, %d entries; want 10, 10", st.Compacted, st.LogEntries)
	}
	m := promiseTo(t, r, 10)
	if m.OK || m.Snapshot != 10 {
		t.Fatalf("prepare from slot 10: ok=%v snapshot=%d; want a refusal naming snapshot 10", m.OK, m.Snapshot)
	}
	m = promiseTo(t, r, 11)
	if !m.OK || len(m.Entries) != 10 || m.Entries[0].Slot != 11 {
		t.Fatalf("prepare from slot 11: ok=%v, %d entries; want a promise reporting slots 11..20", m.OK, len(m.Entries))
	}
}

// A leader tells a follower behind its compaction point to fetch a snapshot, and
// the follower asks its caller for one; after InstallSnapshot it carries on from
// the snapshot's slot.
func TestFollowerBehindCompactionInstallsSnapshot(t *testing.T) {
	r := newTestReplica(t, Durable{})
	b := Ballot{Round: 4, ID: 2}
	r.Step(Message{Type: MsgExecute, From: 2, To: 1, Ballot: b, Commit: 500, Snapshot: 400})
	rd := r.Ready()
	if rd.Snapshot != (SnapshotWanted{From: 2, Index: 400}) {
		t.Fatalf("snapshot wanted %+v, want from 2 at 400", rd.Snapshot)
	}
	r.Advance(rd)
	// The hint repeats with every heartbeat; the request does not.
	r.Step(Message{Type: MsgExecute, From: 2, To: 1, Ballot: b, Commit: 500, Snapshot: 400})
	if rd := r.Ready(); rd.Snapshot.Index != 0 {
		t.Fatalf("asked again at once: %+v", rd.Snapshot)
	}
	if err := r.InstallSnapshot(450); err != nil {
		t.Fatal(err)
	}
	if err := r.InstallSnapshot(450); !errors.Is(err, ErrStaleSnapshot) {
		t.Fatalf("installing the same snapshot twice: %v, want ErrStaleSnapshot", err)
	}
	st := r.Status()
	if st.Applied != 450 || st.Chosen != 450 || st.Compacted != 450 {
		t.Fatalf("after install: applied %d chosen %d compacted %d, want 450 each", st.Applied, st.Chosen, st.Compacted)
	}
	r.Step(Message{Type: MsgExecute, From: 2, To: 1, Ballot: b, Commit: 452, Entries: commandEntries(451, 452, b)})
	rd = r.Ready()
	if len(rd.Committed) != 2 || rd.Committed[0].Slot != 451 {
		t.Fatalf("after install, committed %+v, want slots 451 and 452", rd.Committed)
	}
}

// A replica rebuilding lost storage neither campaigns nor promises about slots it
// may have accepted before the loss, until it has learned them; then it votes.
func TestRebuildingReplicaAbstains(t *testing.T) {
	lead := Ballot{Round: 7, ID: 2}
	r := newTestReplica(t, Durable{Promised: lead, RebuildTo: 5})
	for range 100 {
		r.Tick()
	}
	if rd := r.Ready(); len(rd.Messages) != 0 || r.Status().RebuildTo != 5 {
		t.Fatalf("a rebuilding replica campaigned: %+v", rd.Messages)
	}
	if m := promiseTo(t, r, 3); m.OK {
		t.Fatal("promised about slots it may have accepted before losing its storage")
	}
	r.Step(Message{Type: MsgAccept, From: 2, To: 1, Ballot: lead, Entries: commandEntries(1, 5, lead), Commit: 5})
	r.Advance(r.Ready())
	if st := r.Status(); st.Chosen != 5 || st.RebuildTo != 0 {
		t.Fatalf("after learning slots 1..5: chosen %d, rebuilding to %d; want 5, 0", st.Chosen, st.RebuildTo)
	}
	if m := promiseTo(t, r, 6); !m.OK {
		t.Fatal("a rebuilt replica still refuses to promise")
	}
}

// The stop rule: a new leader re-proposes a configuration entry it finds and
// nothing after it, unless a later slot holds a value accepted at a higher ballot
// (then the entry was never chosen and becomes a no-op).
func TestStopSlot(t *testing.T) {
	b1, b2, b3 := Ballot{Round: 1, ID: 1}, Ballot{Round: 2, ID: 2}, Ballot{Round: 3, ID: 3}
	cand := func(es ...Entry) *candidacy {
		c := &candidacy{firstSlot: 5, highest: map[uint64]Entry{}}
		for _, e := range es {
			c.highest[e.Slot] = e
		}
		return c
	}
	c := cand(Entry{Slot: 5, Ballot: b2, Kind: KindCommands}, Entry{Slot: 6, Ballot: b2, Kind: KindConfig},
		Entry{Slot: 7, Ballot: b1, Kind: KindCommands})
	if got := c.stopSlot(7); got != 6 {
		t.Fatalf("stop slot %d, want 6: values after it at lower ballots cannot have been chosen", got)
	}
	c = cand(Entry{Slot: 6, Ballot: b2, Kind: KindConfig}, Entry{Slot: 8, Ballot: b3, Kind: KindCommands})
	if got := c.stopSlot(8); got != 0 || c.highest[6].Kind != KindNoop {
		t.Fatalf("stop slot %d, slot 6 %v; want none and a no-op: a higher ballot after it means it was not chosen",
			got, c.highest[6].Kind)
	}
	c = cand(Entry{Slot: 6, Ballot: b2, Kind: KindConfig}, Entry{Slot: 7, Ballot: b3, Kind: KindCommands},
		Entry{Slot: 9, Ballot: b3, Kind: KindConfig})
	if got := c.stopSlot(9); got != 9 {
		t.Fatalf("stop slot %d, want 9", got)
	}
}

// A leader that proposed a configuration change proposes nothing after it, and a
// replica that learned one chosen neither campaigns nor proposes.
func TestConfigurationEndsProposals(t *testing.T) {
	r, err := New(Config{ID: 1, Members: []uint64{1}, ElectionTicks: 2}, Durable{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10 && !r.IsLeader(); i++ {
		r.Tick()
		r.Advance(r.Ready())
	}
	if !r.IsLeader() {
		t.Fatal("a single replica did not elect itself")
	}
	slot, err := r.ProposeConfig([]byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Propose([]byte("late")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose after a configuration change: %v, want ErrStopped", err)
	}
	if _, err := r.ProposeConfig([]byte("again")); !errors.Is(err, ErrStopped) {
		t.Fatalf("a second configuration change: %v, want ErrStopped", err)
	}
	rd := r.Ready()
	r.Advance(rd)
	rd = r.Ready()
	if len(rd.Committed) == 0 || rd.Committed[len(rd.Committed)-1].Kind != KindConfig || r.Ended() != slot {
		t.Fatalf("the configuration entry was not chosen and ended: committed %+v, ended %d", rd.Committed, r.Ended())
	}
	r.Advance(rd)
}

// The compaction point keeps the slots nearest the snapshot, as many as both
// bounds allow.
func TestCompactionPoint(t *testing.T) {
	var entries []Entry
	for s := uint64(1); s <= 10; s++ {
		entries = append(entries, Entry{Slot: s, Ballot: Ballot{1, 1}, Kind: KindCommands, Data: make([]byte, 100)})
	}
	r, err := New(Config{ID: 1, Members: []uint64{1, 2, 3}}, Durable{Entries: entries, Applied: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		index, slots uint64
		bytes        int64
		want         uint64
	}{
		{10, 3, 1 << 20, 7},   // the slot bound
		{10, 100, 1 << 20, 0}, // more slots than the log holds
		{10, 100, 250, 8},     // 2 slots of 100 bytes fit in 250, not 3
		{10, 100, 200, 8},     // exactly 2
		{10, 100, 99, 10},     // not even the snapshot's own slot
		{10, 0, 1 << 20, 10},  // keep nothing
		{6, 3, 1 << 20, 3},    // a snapshot below the applied slot
	} {
		if got := r.CompactionPoint(c.index, c.slots, c.bytes); got != c.want {
			t.Errorf("CompactionPoint(%d, %d slots, %d bytes) = %d, want %d", c.index, c.slots, c.bytes, got, c.want)
		}
	}
	if err := r.Compact(5); err != nil {
		t.Fatal(err)
	}
	if got := r.CompactionPoint(10, 100, 1<<20); got != 5 {
		t.Errorf("after compacting to 5: CompactionPoint = %d, want 5", got)
	}
}
