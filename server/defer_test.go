package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/peer"
)

func TestMayDefer(t *testing.T) {
	commands := []peer.Entry{{Slot: 5, Kind: peer.KindCommands}, {Slot: 6, Kind: peer.KindNoop}}
	withConfig := []peer.Entry{{Slot: 5, Kind: peer.KindCommands}, {Slot: 6, Kind: peer.KindConfig}}
	cases := []struct {
		name  string
		rd    peer.Ready
		setup func(n *node)
		want  bool
	}{
		{"follower, commands", peer.Ready{Committed: commands}, nil, true},
		{"follower, nothing chosen", peer.Ready{}, nil, true},
		{"leader", peer.Ready{Committed: commands, IsLeader: true}, nil, false},
		{"leadership changes", peer.Ready{Committed: commands, LeaderChanged: true}, nil, false},
		{"a configuration entry", peer.Ready{Committed: withConfig}, nil, false},
		{"a snapshot is wanted", peer.Ready{Committed: commands, Snapshot: peer.SnapshotWanted{Index: 9}}, nil, false},
		{"rebuilding lost state", peer.Ready{Committed: commands}, func(n *node) { n.rebuilding = true }, false},
		{"not voting", peer.Ready{Committed: commands}, func(n *node) { n.retired = true }, false},
		{"reads waiting for apply", peer.Ready{Committed: commands},
			func(n *node) { n.readsAfter = []*readRequest{{index: 6}} }, false},
	}
	for _, c := range cases {
		n := &node{}
		if c.setup != nil {
			c.setup(n)
		}
		if got := n.mayDefer(c.rd); got != c.want {
			t.Errorf("%s: mayDefer = %v, want %v", c.name, got, c.want)
		}
	}
}

// Followers hold chosen slots back to apply several at once, but never past a
// tick: after a few writes and no more traffic, every replica's store has them.
func TestFollowersApplyHeldBackSlotsAtTheNextTick(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last uint64
	for i := range maxDeferredSlots / 2 {
		res, err := cl.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Slot
	}
	deadline := time.Now().Add(5 * time.Second)
	for id, addr := range c.addrs {
		for {
			st, err := rawStatus(addr)
			if err == nil && uint64(st.Applied) >= last {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: applied %v (err %v) 5s after slot %d was chosen", id, st.GetApplied(), err, last)
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
	}
}

func TestOverlap(t *testing.T) {
	entries := func(slots ...uint64) []peer.Entry {
		es := make([]peer.Entry, len(slots))
		for i, s := range slots {
			es[i] = peer.Entry{Slot: s}
		}
		return es
	}
	cases := []struct {
		committed, saving []peer.Entry
		want              bool
	}{
		{entries(4, 5, 6), entries(7, 8), false},
		{entries(4, 5, 6), entries(6, 7), true},
		{entries(4, 5, 6), entries(9, 5), true},
		{entries(4, 5, 6), entries(2, 3), false},
		{nil, entries(1), false},
		{entries(1), nil, false},
	}
	for _, c := range cases {
		if got := overlap(c.committed, c.saving); got != c.want {
			t.Errorf("overlap(%v, %v) = %v, want %v", c.committed, c.saving, got, c.want)
		}
	}
}
