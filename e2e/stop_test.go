package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGracefulStop sends SIGTERM to an idle follower holding an idle client
// connection, then to the leader while writers are busy: each must exit 0 within a
// few seconds, the writes must carry on at a new leader, and both replicas must
// come back with their data.
func TestGracefulStop(t *testing.T) {
	const grace = 5 * time.Second
	c := newCluster(t, 3)
	leader := c.waitLeader()
	c.mustBallot("put", "kept", "yes")
	follower := others(c.ids(), leader)[0]

	// An idle connection must not hold the shutdown up.
	idle := mustDialKV(t, c.rep(follower).clientAddr)
	code, took := c.stop(follower, grace)
	idle.Close()
	if code != 0 {
		t.Errorf("follower %d exited with code %d after SIGTERM, want 0:\n%s", follower, code, tail(c.rep(follower).logPath, 20))
	}
	t.Logf("follower %d exited %d, %s after SIGTERM", follower, code, took.Round(time.Millisecond))
	c.start(follower)
	c.waitCaughtUp(15*time.Second, 1)

	// Now the leader, under load. The writers keep going through the others.
	const writers, maxWrites = 4, 5000
	cl := c.client(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stop atomic.Bool
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxWrites && !stop.Load(); i++ {
				if _, err := cl.Put(ctx, fmt.Sprintf("during-stop/%d/%d", w, i), []byte("x")); err != nil {
					t.Errorf("writer %d: put %d while the leader stops: %v", w, i, err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	waitFor(t, 15*time.Second, "writes before the leader stops", func() error {
		if n := acked.Load(); n < 50 {
			return fmt.Errorf("%d writes", n)
		}
		return nil
	})
	code, took = c.stop(leader, grace)
	if code != 0 {
		t.Errorf("leader %d exited with code %d after SIGTERM under load, want 0:\n%s", leader, code, tail(c.rep(leader).logPath, 20))
	}
	t.Logf("leader %d exited %d, %s after SIGTERM under load", leader, code, took.Round(time.Millisecond))
	from := acked.Load()
	waitFor(t, 15*time.Second, "writes after the leader stopped", func() error {
		if n := acked.Load() - from; n < 50 {
			return fmt.Errorf("%d writes since the stop", n)
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()

	c.start(leader)
	c.waitLeader()
	if got := c.mustBallot("get", "kept"); got != "yes\n" {
		t.Fatalf("get kept after restarting the stopped replicas printed %q, want %q", got, "yes\n")
	}
	c.waitCaughtUp(15*time.Second, 1)
}
