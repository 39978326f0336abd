package e2e

import (
	"testing"
	"time"
)

// TestGracefulStop sends SIGTERM to a follower and then to the leader, each
// holding an idle client connection: each must exit 0 within a few seconds, and
// come back with its data.
func TestGracefulStop(t *testing.T) {
	const grace = 5 * time.Second
	c := newCluster(t, 3)
	leader := c.waitLeader()
	c.mustBallot("put", "kept", "yes")
	follower := others(c.ids(), leader)[0]

	for _, id := range []int{follower, leader} {
		// An idle connection must not hold the shutdown up.
		idle := mustDialKV(t, c.rep(id).clientAddr)
		code, took := c.stop(id, grace)
		idle.Close()
		if code != 0 {
			t.Errorf("replica %d exited with code %d after SIGTERM, want 0:\n%s", id, code, tail(c.rep(id).logPath, 20))
		}
		t.Logf("replica %d exited %d, %s after SIGTERM", id, code, took.Round(time.Millisecond))
	}

	// With one of three left there is no majority; both come back and the data
	// written before the stop is there.
	c.start(follower)
	c.start(leader)
	c.waitLeader()
	if got := c.mustBallot("get", "kept"); got != "yes\n" {
		t.Fatalf("get kept after restarting the stopped replicas printed %q, want %q", got, "yes\n")
	}
	c.waitCaughtUp(15*time.Second, 1)
}
