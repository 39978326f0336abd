package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// measure skips the test unless BALLOT_MEASURE=1.
func measure(t *testing.T) {
	t.Helper()
	if os.Getenv("BALLOT_MEASURE") != "1" {
		t.Skip("a measurement, not a check: set BALLOT_MEASURE=1 to run it")
	}
}

// TestMeasureFailover reports the time from SIGKILL of the leader of five replicas
// to the first write acknowledged by the survivors, over five trials.
func TestMeasureFailover(t *testing.T) {
	measure(t)
	const trials = 5
	c := newCluster(t, 5)
	var times []time.Duration
	for trial := range trials {
		leader := c.waitLeader()
		c.waitCaughtUp(30*time.Second, 0)
		survivors := others(c.ids(), leader)
		cl := c.client(500*time.Millisecond, survivors...)

		begin := time.Now()
		c.kill(leader)
		var took time.Duration
		waitFor(t, 30*time.Second, "a put through the survivors", func() error {
			_, err := cl.Put(context.Background(), "failover", fmt.Appendf(nil, "trial %d", trial))
			took = time.Since(begin)
			return err
		})
		cl.Close()
		times = append(times, took)
		t.Logf("trial %d: leader %d killed, first put acknowledged after %s", trial+1, leader, took.Round(time.Millisecond))
		c.start(leader)
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	t.Logf("failover after SIGKILL of the leader: median %s over %d trials; all: %v",
		sorted[len(sorted)/2].Round(time.Millisecond), trials, roundAll(times))
}

// TestMeasureCatchUp reports how long a replica killed with SIGKILL takes, once
// restarted, to apply the 10,000 writes it missed.
func TestMeasureCatchUp(t *testing.T) {
	measure(t)
	const (
		writes  = 10000
		writers = 32
	)
	c := newCluster(t, 5)
	leader := c.waitLeader()
	lagger := others(c.ids(), leader)[0]
	c.kill(lagger)

	cl := c.client(10*time.Second, others(c.ids(), lagger)...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= writes || ctx.Err() != nil {
					return
				}
				if _, err := cl.Put(ctx, fmt.Sprintf("catchup/%05d", i), fmt.Appendf(nil, "value %d", i)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	wrote := time.Since(begin)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d puts failed", n, writes)
	}
	t.Logf("%d puts by %d writers in %s (%.0f/s) with replica %d down",
		writes, writers, wrote.Round(time.Millisecond), writes/wrote.Seconds(), lagger)

	leader = c.waitLeader(others(c.ids(), lagger)...)
	target, err := rawStatus(c.rep(leader).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	c.startNoWait(lagger)
	var caught time.Duration
	waitFor(t, 5*time.Minute, fmt.Sprintf("replica %d to apply slot %d", lagger, target.Applied), func() error {
		st, err := rawStatus(c.rep(lagger).clientAddr)
		if err != nil {
			return err
		}
		if st.Applied < target.Applied {
			return fmt.Errorf("applied %d of %d", st.Applied, target.Applied)
		}
		caught = time.Since(restart)
		return nil
	})
	t.Logf("replica %d caught up to slot %d (%d writes missed) %s after its restart (process start included)",
		lagger, target.Applied, writes, caught.Round(time.Millisecond))
	v, err := c.client(5*time.Second, lagger).GetStale(ctx, fmt.Sprintf("catchup/%05d", writes-1))
	if err != nil || string(v) != fmt.Sprintf("value %d", writes-1) {
		t.Errorf("stale get of the last key on the caught-up replica: %q, %v", v, err)
	}
}

// TestMeasureReadLatency reports the latency of sequential linearizable gets and
// puts on idle clusters of three and five replicas.
func TestMeasureReadLatency(t *testing.T) {
	measure(t)
	const ops = 41
	for _, n := range []int{3, 5} {
		c := newCluster(t, n)
		c.waitLeader()
		cl := c.client(5 * time.Second)
		ctx := context.Background()
		timeOps := func(op func() error) time.Duration {
			var lat []time.Duration
			for range ops {
				begin := time.Now()
				if err := op(); err != nil {
					t.Fatal(err)
				}
				lat = append(lat, time.Since(begin))
			}
			slices.Sort(lat)
			return lat[len(lat)/2]
		}
		put := timeOps(func() error { _, err := cl.Put(ctx, "latency", []byte("x")); return err })
		get := timeOps(func() error { _, err := cl.Get(ctx, "latency"); return err })
		stale := timeOps(func() error { _, err := cl.GetStale(ctx, "latency"); return err })
		t.Logf("%d replicas, idle, median of %d sequential calls: put %s, linearizable get %s, stale get %s",
			n, ops, put.Round(time.Microsecond), get.Round(time.Microsecond), stale.Round(time.Microsecond))
	}
}

// TestMeasureFollowerPause reports what stopping one follower of three (SIGSTOP,
// for a second) costs a writer: the longest put that began while it was stopped,
// against the longest before. A thrifty leader sends each slot to one follower;
// when that one stops answering it moves to the other.
func TestMeasureFollowerPause(t *testing.T) {
	measure(t)
	c := newCluster(t, 3)
	leader := c.waitLeader()
	cl := c.client(5*time.Second, leader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type sample struct {
		at, took time.Duration
	}
	var (
		mu      sync.Mutex
		samples []sample
		failed  int
	)
	begin := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1_000_000 && ctx.Err() == nil; i++ {
			at := time.Since(begin)
			_, err := cl.Put(ctx, "pause", fmt.Appendf(nil, "%d", i))
			mu.Lock()
			samples = append(samples, sample{at, time.Since(begin) - at})
			if err != nil && ctx.Err() == nil {
				failed++
			}
			mu.Unlock()
		}
	}()
	longest := func(from, to time.Duration) (time.Duration, int) {
		mu.Lock()
		defer mu.Unlock()
		var worst time.Duration
		n := 0
		for _, s := range samples {
			if s.at >= from && s.at < to {
				worst = max(worst, s.took)
				n++
			}
		}
		return worst, n
	}
	const window = time.Second
	time.Sleep(window) // the baseline: a measured period, not a wait for a condition
	base, baseN := longest(0, window)
	t.Logf("no follower stopped: longest of %d puts %s", baseN, base.Round(time.Microsecond))
	for _, f := range others(c.ids(), leader) {
		from := time.Since(begin)
		c.pause(f)
		time.Sleep(window) // the measured period with the follower stopped
		c.resume(f)
		worst, n := longest(from, time.Since(begin))
		t.Logf("follower %d stopped for %s: longest of %d puts %s", f, window, n, worst.Round(time.Microsecond))
		// Writes go on: wait until the follower has applied what the leader
		// had when it woke, not for every replica to stand at one slot.
		target, err := rawStatus(c.rep(leader).clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, fmt.Sprintf("follower %d to apply slot %d", f, target.Applied), func() error {
			st, err := rawStatus(c.rep(f).clientAddr)
			if err != nil {
				return err
			}
			if st.Applied < target.Applied {
				return fmt.Errorf("applied %d", st.Applied)
			}
			return nil
		})
	}
	cancel()
	<-done
	if failed > 0 {
		t.Errorf("%d puts failed", failed)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// TestMeasureRestartLargeStore reports how long a replica holding 1,000,000 keys
// of 100 bytes takes, after SIGKILL, to start again: to answer status, and to
// report the applied slot it had before.
func TestMeasureRestartLargeStore(t *testing.T) {
	measure(t)
	const keys = 1_000_000
	c := newCluster(t, 3)
	leader := c.waitLeader()
	sum := c.bench(15*time.Minute, nil, "--keys", strconv.Itoa(keys), "--value-size", "100",
		"--mix", "get=100", "--ops", "1", "--warmup", "0", "--clients", "64")
	if sum.Preload == nil {
		t.Fatal("ballot bench did not preload the keys")
	}
	t.Logf("loaded %d keys of 100 bytes by 64 clients in %.1fs (%.0f puts/s), %d puts failed",
		keys, sum.Preload.Seconds, float64(keys)/sum.Preload.Seconds, sum.Preload.Errors)
	applied := c.waitCaughtUp(5*time.Minute, 1)

	victim := others(c.ids(), leader)[0]
	r := c.rep(victim)
	before, err := rawStatus(r.clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	size, err := dirSize(r.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rss, err := c.rssBytes(victim)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(victim)
	begin := time.Now()
	c.startNoWait(victim)
	var serving, caught time.Duration
	waitFor(t, 10*time.Minute, fmt.Sprintf("replica %d to apply slot %d again", victim, applied), func() error {
		st, err := rawStatus(r.clientAddr)
		if err != nil {
			return err
		}
		if serving == 0 {
			serving = time.Since(begin)
		}
		if st.Applied < before.Applied {
			return fmt.Errorf("applied %d of %d", st.Applied, before.Applied)
		}
		caught = time.Since(begin)
		return nil
	})
	after, err := c.rssBytes(victim)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replica %d with %d keys (data directory %s, RSS %s before the kill, %s after the restart): restarted after SIGKILL, answered status after %s, applied slot %d again after %s",
		victim, before.Keys, mib(size), mib(rss), mib(after), serving.Round(time.Millisecond), before.Applied, caught.Round(time.Millisecond))
}
