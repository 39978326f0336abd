package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestExactlyOnceAcrossLeaderCrash sends put(C, 1, k, "a") over raw Thrift, kills
// the leader, lets another client overwrite k with "b", then retries the same
// (C, 1) on the new leader. The retry must be answered with the recorded result
// and must not apply again: k still holds "b".
func TestExactlyOnceAcrossLeaderCrash(t *testing.T) {
	const key = "counter-key"
	c := newCluster(t, 3)
	leader := c.waitLeader()
	clientID := rand.Int64N(1<<62) + 1

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv := mustDialKV(t, c.rep(leader).clientAddr)
	first, err := kv.Put(ctx, clientID, 1, key, []byte("a"))
	if err != nil {
		t.Fatalf("put(%d, 1, %s, a) at leader %d: %v", clientID, key, leader, err)
	}
	kv.Close()

	c.kill(leader)
	survivors := others(c.ids(), leader)
	next := c.waitLeader(survivors...)
	t.Logf("leader %d killed after put in slot %d; replica %d leads", leader, first.Slot, next)

	other := c.client(10*time.Second, survivors...)
	overwrite, err := other.Put(ctx, key, []byte("b"))
	if err != nil {
		t.Fatalf("put %s=b by another client: %v", key, err)
	}
	if overwrite.Slot <= uint64(first.Slot) {
		t.Fatalf("overwrite chosen in slot %d, not after the first put's slot %d", overwrite.Slot, first.Slot)
	}

	retry := putFollowingLeader(t, c.clientAddrs(survivors...), clientID, 1, key, []byte("a"), 20*time.Second)
	if retry.Slot != first.Slot || retry.Existed != first.Existed {
		t.Errorf("retried put(%d, 1) answered slot=%d existed=%v, want the recorded slot=%d existed=%v",
			clientID, retry.Slot, retry.Existed, first.Slot, first.Existed)
	}
	if v, err := other.Get(ctx, key); err != nil || string(v) != "b" {
		t.Fatalf("get %s after the retry: %q, %v; want \"b\" (the retry was applied twice)", key, v, err)
	}

	// The next seq of the same client is a new write and takes effect.
	third := putFollowingLeader(t, c.clientAddrs(survivors...), clientID, 2, key, []byte("c"))
	if third.Slot <= int64(overwrite.Slot) || !third.Existed {
		t.Errorf("put(%d, 2) answered slot=%d existed=%v, want a slot after %d and existed=true",
			clientID, third.Slot, third.Existed, overwrite.Slot)
	}
	if v, err := other.Get(ctx, key); err != nil || string(v) != "c" {
		t.Fatalf("get %s after put(%d, 2): %q, %v; want \"c\"", key, clientID, v, err)
	}

	// The crashed leader comes back with the same history, and still answers the
	// old request from its de-duplication table rather than applying it.
	c.start(leader)
	c.waitCaughtUp(30*time.Second, third.Slot)
	back := c.client(5*time.Second, leader)
	if v, err := back.GetStale(ctx, key); err != nil || string(v) != "c" {
		t.Errorf("stale get %s on the restarted replica %d: %q, %v; want \"c\"", key, leader, v, err)
	}
	again := putFollowingLeader(t, c.clientAddrs(), clientID, 2, key, []byte("c"))
	if again.Slot != third.Slot {
		t.Errorf("second retry of put(%d, 2) answered slot %d, want the recorded %d", clientID, again.Slot, third.Slot)
	}
	if v, err := other.Get(ctx, key); err != nil || string(v) != "c" {
		t.Fatalf("get %s at the end: %q, %v; want \"c\"", key, v, err)
	}
}

// putFollowingLeader sends put(clientID, seq, key, value) over raw Thrift until a
// replica answers it: it follows NotLeader to the named leader and moves to the
// next address on Unavailable or a connection failure. It fails the test if no
// attempt succeeds within the timeout (default 15s).
func putFollowingLeader(t testing.TB, addrs []string, clientID, seq int64, key string, value []byte, timeout ...time.Duration) *kvapi.WriteResult_ {
	t.Helper()
	limit := 15 * time.Second
	if len(timeout) > 0 {
		limit = timeout[0]
	}
	var res *kvapi.WriteResult_
	i := 0
	addr := addrs[0]
	waitFor(t, limit, fmt.Sprintf("put(%d, %d, %s) to succeed", clientID, seq, key), func() error {
		kv, err := dialKV(addr)
		if err != nil {
			i++
			addr = addrs[i%len(addrs)]
			return err
		}
		defer kv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := kv.Put(ctx, clientID, seq, key, value)
		at := addr
		var notLeader *kvapi.NotLeader
		var invalid *kvapi.InvalidArgument
		switch {
		case err == nil:
			res = r
			return nil
		case errors.As(err, &invalid):
			t.Fatalf("put(%d, %d, %s) at %s: InvalidArgument: %v", clientID, seq, key, addr, err)
		case errors.As(err, &notLeader) && notLeader.GetLeaderAddr() != "":
			addr = notLeader.GetLeaderAddr()
		default:
			i++
			addr = addrs[i%len(addrs)]
		}
		return fmt.Errorf("at %s: %w", at, err)
	})
	return res
}
