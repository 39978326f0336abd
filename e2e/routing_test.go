package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestFollowersRedirect sends writes and linearizable reads over raw Thrift to
// every follower: each either serves the request or answers NotLeader with the
// leader's id and client address. Stale reads are served by every replica.
func TestFollowersRedirect(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clientID := rand.Int64N(1<<62) + 1
	seq := int64(0)

	checkNotLeader := func(what string, id int, err error) {
		t.Helper()
		var nl *kvapi.NotLeader
		if !errors.As(err, &nl) {
			t.Errorf("%s at follower %d: %T %v, want success or NotLeader", what, id, err, err)
			return
		}
		if nl.GetLeaderID() != int64(leader) || nl.GetLeaderAddr() != c.rep(leader).clientAddr {
			t.Errorf("%s at follower %d: NotLeader names %d at %q, want %d at %q",
				what, id, nl.GetLeaderID(), nl.GetLeaderAddr(), leader, c.rep(leader).clientAddr)
		}
	}

	for _, id := range others(c.ids(), leader) {
		kv := mustDialKV(t, c.rep(id).clientAddr)
		seq++
		if _, err := kv.Put(ctx, clientID, seq, "routed", []byte("v")); err != nil {
			checkNotLeader("put", id, err)
			// The write was not proposed: the same (client id, seq) goes to the leader.
			lkv := mustDialKV(t, c.rep(leader).clientAddr)
			if _, err := lkv.Put(ctx, clientID, seq, "routed", []byte("v")); err != nil {
				t.Fatalf("put at leader %d after NotLeader: %v", leader, err)
			}
		}
		if r, err := kv.Get(ctx, "routed", kvapi.Consistency_LINEARIZABLE); err != nil {
			checkNotLeader("linearizable get", id, err)
		} else if string(r.GetValue()) != "v" {
			t.Errorf("linearizable get at follower %d: %q, want \"v\"", id, r.GetValue())
		}
	}
	c.waitCaughtUp(15*time.Second, 1)
	for _, id := range c.ids() {
		kv := mustDialKV(t, c.rep(id).clientAddr)
		r, err := kv.Get(ctx, "routed", kvapi.Consistency_STALE)
		if err != nil || string(r.GetValue()) != "v" {
			t.Errorf("stale get at replica %d: %v, %v; want \"v\"", id, r, err)
		}
		var nf *kvapi.NotFound
		if _, err := kv.Get(ctx, "never-written", kvapi.Consistency_STALE); !errors.As(err, &nf) {
			t.Errorf("stale get of a missing key at replica %d: %T %v, want NotFound", id, err, err)
		}
	}
}
