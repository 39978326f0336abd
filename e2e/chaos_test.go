package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLeaderCrashUnderLoad kills the leader twice while writers keep writing, each
// to its own key with a value that counts up. Every write must succeed (a majority
// is always up), and in the end each key must hold its writer's last value on
// every replica: a lost write, or a retried write applied again after a newer one,
// would leave an older value.
func TestLeaderCrashUnderLoad(t *testing.T) {
	const (
		writers   = 16
		maxWrites = 2000 // per writer; the test stops them sooner
		crashes   = 3
	)
	c := newCluster(t, 5)
	c.waitLeader()
	cl := c.client(15 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stop atomic.Bool
	var progress atomic.Int64
	last := make([]int, writers) // last acknowledged value per writer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= maxWrites && !stop.Load(); i++ {
				if _, err := cl.Put(ctx, loadKey(w), []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("writer %d: put %d: %v", w, i, err)
					return
				}
				last[w] = i
				progress.Add(1)
			}
		}()
	}

	for crash := range crashes {
		// Let some writes through before each crash.
		from := progress.Load()
		waitFor(t, 30*time.Second, "writes to be acknowledged", func() error {
			if n := progress.Load() - from; n < 200 {
				return fmt.Errorf("%d writes since the last crash", n)
			}
			return nil
		})
		leader := c.waitLeader()
		c.kill(leader)
		next := c.waitLeader(others(c.ids(), leader)...)
		t.Logf("crash %d: leader %d killed after %d writes; replica %d leads", crash+1, leader, progress.Load(), next)
		c.start(leader)
	}
	from := progress.Load()
	waitFor(t, 30*time.Second, "writes after the last crash", func() error {
		if n := progress.Load() - from; n < 200 {
			return fmt.Errorf("%d writes since the last crash", n)
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d writes acknowledged", progress.Load())

	for w := range writers {
		v, err := cl.Get(ctx, loadKey(w))
		if err != nil || string(v) != strconv.Itoa(last[w]) {
			t.Errorf("get %s: %q, %v; want the last acknowledged value %d", loadKey(w), v, err, last[w])
		}
	}
	c.waitCaughtUp(30*time.Second, 1)
	for _, id := range c.ids() {
		local := c.client(5*time.Second, id)
		for w := range writers {
			v, err := local.GetStale(ctx, loadKey(w))
			if err != nil || string(v) != strconv.Itoa(last[w]) {
				t.Errorf("replica %d: stale get %s: %q, %v; want %d", id, loadKey(w), v, err, last[w])
			}
		}
	}
}

func loadKey(w int) string { return fmt.Sprintf("load/%02d", w) }
