package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A thrifty leader of three sends each slot to one follower. Writes must go on
// while either follower is stopped (SIGSTOP: no error, no answer), so the
// leader has to notice the silent one and move to the other; and a follower
// that wakes up must learn every write it missed.
func TestWritesContinueWhileEitherFollowerIsStopped(t *testing.T) {
	// Calls to a stopped replica time out only after a minute, and the put
	// deadline is 10 s: far longer than moving to the other follower takes (two
	// ticks), far shorter than a leader waiting for its calls to fail would.
	c := newClusterWith(t, 3, "--peer-timeout", "60s")
	leader := c.waitLeader()
	cl := c.client(10*time.Second, leader)
	defer cl.Close()
	ctx := context.Background()
	for _, f := range others(c.ids(), leader) {
		c.pause(f)
		var last string
		for i := range 50 {
			last = fmt.Sprintf("while %d slept: %d", f, i)
			if _, err := cl.Put(ctx, fmt.Sprintf("stopped/%d", f), []byte(last)); err != nil {
				c.resume(f)
				t.Fatalf("put %d with follower %d stopped: %v", i, f, err)
			}
		}
		if got := c.waitLeader(); got != leader {
			t.Fatalf("leader changed from %d to %d while a follower slept", leader, got)
		}
		c.resume(f)
		fc := c.client(3*time.Second, f)
		waitFor(t, 20*time.Second, fmt.Sprintf("follower %d to learn the writes it slept through", f), func() error {
			v, err := fc.GetStale(ctx, fmt.Sprintf("stopped/%d", f))
			if err != nil {
				return err
			}
			if string(v) != last {
				return fmt.Errorf("it holds %q, want %q", v, last)
			}
			return nil
		})
		fc.Close()
	}
}
