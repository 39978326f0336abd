package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"
)

// TestFailover kills replicas of a five-replica cluster with SIGKILL: with two
// gone (the leader among them) the survivors elect a leader and serve; with three
// gone a write fails promptly instead of hanging; once all three are back every
// replica catches up.
func TestFailover(t *testing.T) {
	c := newCluster(t, 5)
	first := c.waitLeader()
	c.mustBallot("put", "before", "1")

	follower := others(c.ids(), first)[0]
	c.kill(first)
	c.kill(follower)
	survivors := others(c.ids(), first, follower)

	second := c.waitLeader(survivors...)
	t.Logf("replicas %d (leader) and %d killed; replica %d leads", first, follower, second)
	c.mustBallot("put", "after-failover", "2")
	if got := c.mustBallot("get", "after-failover"); got != "2\n" {
		t.Fatalf("get after-failover printed %q, want %q", got, "2\n")
	}
	if got := c.mustBallot("get", "before"); got != "1\n" {
		t.Fatalf("get before printed %q after failover, want %q", got, "1\n")
	}

	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{first, follower} {
		if s := st[id]; s.Up || s.Error == "" {
			t.Errorf("status of killed replica %d: up=%v error=%q, want down with an error", id, s.Up, s.Error)
		}
	}
	for _, id := range survivors {
		if s := st[id]; !s.Up {
			t.Errorf("status of live replica %d: down (%s)", id, s.Error)
		}
	}

	// A third replica down leaves no majority: a write must fail within its
	// timeout, saying why, rather than hang.
	third := others(survivors, second)[0]
	before, err := rawStatus(c.rep(second).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(third)
	res := c.ballot("put", "no-quorum", "x")
	if res.code == 0 {
		t.Fatalf("put with 2 of 5 replicas up succeeded (stdout %q)", res.stdout)
	}
	if !regexp.MustCompile(`(?i)unavailable|quorum`).MatchString(res.stderr) {
		t.Errorf("put with 2 of 5 replicas up: stderr %q names neither Unavailable nor quorum", res.stderr)
	}
	if limit := cliTimeout + 2*time.Second; res.took > limit {
		t.Errorf("put with 2 of 5 replicas up took %s, want under %s (--timeout %s)", res.took, limit, cliTimeout)
	}
	t.Logf("put without a majority failed after %s with exit %d: %s", res.took.Round(time.Millisecond), res.code, res.stderr)

	for _, id := range []int{first, follower, third} {
		c.start(id)
	}
	// Catch-up must finish on an idle cluster, without a new write to push it.
	idle := c.waitCaughtUp(30*time.Second, before.Applied)
	t.Logf("idle cluster: all five replicas applied slot %d (leader had applied %d)", idle, before.Applied)

	c.waitLeader()
	cl := c.client(10 * time.Second)
	ctx := context.Background()
	wr, err := cl.Put(ctx, "after-restart", []byte("3"))
	if err != nil {
		t.Fatalf("put after restarting the killed replicas: %v", err)
	}
	applied := c.waitCaughtUp(30*time.Second, int64(wr.Slot))
	t.Logf("all five replicas applied slot %d", applied)

	// The replicas that were down hold the write made in their absence.
	for _, id := range []int{first, follower, third} {
		local := c.client(5*time.Second, id)
		v, err := local.GetStale(ctx, "after-failover")
		if err != nil || string(v) != "2" {
			t.Errorf("stale get of after-failover on restarted replica %d: %q, %v; want \"2\"", id, v, err)
		}
	}
}
