package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDurability writes keys, kills every replica with SIGKILL, restarts them all
// and reads every acknowledged key back with its value.
func TestDurability(t *testing.T) {
	const (
		keys    = 200
		writers = 8
	)
	c := newCluster(t, 5)
	c.waitLeader()
	cl := c.client(10 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += writers {
				if _, err := cl.Put(ctx, durableKey(i), durableValue(i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("put: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	cl.Close()

	for _, id := range c.ids() {
		c.kill(id)
	}
	for _, id := range c.ids() {
		c.startNoWait(id)
	}
	for _, id := range c.ids() {
		c.waitServing(id)
	}
	c.waitLeader()

	// Linearizable reads, several at once: each waits for the leader to confirm
	// that it still leads.
	after := c.client(10 * time.Second)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += writers {
				v, err := after.Get(ctx, durableKey(i))
				switch {
				case err != nil:
					t.Errorf("get %s after restarting every replica: %v", durableKey(i), err)
				case string(v) != string(durableValue(i)):
					t.Errorf("get %s after restarting every replica: %q, want %q", durableKey(i), v, durableValue(i))
				}
			}
		}()
	}
	wg.Wait()
	// The command-line tool sees the same data.
	if got := c.mustBallot("get", durableKey(keys-1)); got != string(durableValue(keys-1))+"\n" {
		t.Errorf("ballot get %s printed %q, want %q", durableKey(keys-1), got, string(durableValue(keys-1))+"\n")
	}
	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	if l := st[c.waitLeader()]; l.Keys != keys {
		t.Errorf("leader reports %d keys, want %d", l.Keys, keys)
	}
}

func durableKey(i int) string { return fmt.Sprintf("durable/%03d", i) }

func durableValue(i int) []byte { return fmt.Appendf(nil, "value %d: %x", i, i*7919) }

// TestDurabilityKillDuringWrites kills every replica with SIGKILL while writers
// are busy, restarts them all, and reads back every write that was acknowledged
// before the kill.
func TestDurabilityKillDuringWrites(t *testing.T) {
	const (
		writers   = 16
		maxWrites = 2000 // per writer
	)
	c := newCluster(t, 5)
	c.waitLeader()
	cl := c.client(2 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex // guards acked
	var acked []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxWrites {
				key := fmt.Sprintf("w%02d/%04d", w, i)
				if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
					return // the cluster is gone
				}
				mu.Lock()
				acked = append(acked, key)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 30*time.Second, "writes to be acknowledged", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 500 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	for _, id := range c.ids() {
		c.kill(id)
	}
	wg.Wait()
	cl.Close()
	t.Logf("%d writes acknowledged before every replica was killed", len(acked))

	for _, id := range c.ids() {
		c.startNoWait(id)
	}
	for _, id := range c.ids() {
		c.waitServing(id)
	}
	c.waitLeader()
	after := c.client(10 * time.Second)
	var lost atomic.Int64
	next := atomic.Int64{}
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(acked) {
					return
				}
				v, err := after.Get(ctx, acked[i])
				if err != nil || string(v) != acked[i] {
					if lost.Add(1) <= 10 {
						t.Errorf("acknowledged write %s after restart: %q, %v", acked[i], v, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := lost.Load(); n > 0 {
		t.Errorf("%d of %d acknowledged writes missing after the restart", n, len(acked))
	}
}
