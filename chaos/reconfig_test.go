package chaos

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestReconfigureAgainBehindProxies asks the leader twice for the same members,
// with the addresses the configuration records, as the reconfigure fault does
// when an answer left the outcome unknown. The IDL says asking for the members
// the cluster already has changes nothing. Here every replica's file gives the
// proxies of its own links as the others' peer addresses, which is what the
// chaos cluster (and NAT) looks like.
func TestReconfigureAgainBehindProxies(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	c, err := StartCluster(ClusterConfig{Binary: ballotd, Replicas: 3, Spares: 1, Dir: t.TempDir(), Seed: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitServing(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	target := []int{1, 2, 3, 4}
	deadline := time.Now().Add(20 * time.Second)
	first, err := c.Reconfigure(ctx, target, deadline)
	if err != nil {
		t.Fatal(err)
	}
	if first.Epoch != 2 {
		t.Fatalf("adding replica 4 committed %s, want epoch 2", first)
	}
	leader, err := c.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, leader, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	recorded := slices.Clone(st.MemberAddresses)
	slices.SortFunc(recorded, func(a, b *kvapi.ReplicaAddress) int { return int(a.ID - b.ID) })
	for i, id := range target {
		r := c.Replica(id)
		if want := (kvapi.ReplicaAddress{ID: int64(id), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr}); i >= len(recorded) || *recorded[i] != want {
			t.Fatalf("leader %d's member_addresses %v; want the addresses the change gave, %+v for replica %d", leader, recorded, want, id)
		}
	}
	res, err := c.reconfigureAt(ctx, leader, recorded)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch != first.Epoch || res.Slot != 0 {
		t.Errorf("asking again for the members in force, %v, returned epoch %d at slot %d; want epoch %d and slot 0 (nothing to change)",
			target, res.Epoch, res.Slot, first.Epoch)
	}
}
