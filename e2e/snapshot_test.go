package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/client"
)

// Tests of snapshots, log compaction, store rewrites, snapshot transfer between
// replicas, the rebuild of a replica that lost its disk, and backup and restore.

// TestBoundedDisk checks that a replica's disk use and log follow its live data,
// not its history: 200,000 puts over 1,000 keys, with snapshots every 500 slots,
// 50 slots kept below them and store rewrites above 2 MB, leave every data
// directory about as large as after the first 50,000.
func TestBoundedDisk(t *testing.T) {
	const (
		everySlots   = 500
		retainSlots  = 50
		rewriteBytes = 2_000_000
		keys         = 1000
		valueSize    = 100
		rounds       = 4
		putsPerRound = 50_000
	)
	c := newClusterWith(t, 3,
		"--snapshot-every-slots", strconv.Itoa(everySlots),
		"--snapshot-retain-slots", strconv.Itoa(retainSlots),
		"--rewrite-min-bytes", strconv.Itoa(rewriteBytes))
	c.waitLeader()

	// The bound. A data directory holds the store file, the temporary file of a
	// rewrite in progress, and two snapshots of the live keys. The store file
	// holds the live keys and the log kept below the snapshot; it is rewritten
	// to that once it is larger than the threshold and twice its rewritten size,
	// which is checked at each compaction, every everySlots slots, so it grows
	// at most by what that many slots append. A put appends at most its log
	// entry, its data record, its client's de-duplication record and the
	// entry's removal: 4 records of at most valueSize+80 bytes. None of this
	// depends on the number of puts before, only on how many share a slot,
	// which depends on the load of the machine: it is measured in each round.
	boundFor := func(putsPerSlot float64) int64 {
		slotBytes := int64(putsPerSlot * 4 * (valueSize + 80))
		live := int64(keys * (valueSize + 80))
		rewritten := live + retainSlots*slotBytes
		file := max(rewriteBytes, 2*rewritten) + everySlots*slotBytes
		return file + rewritten + 2*live
	}

	s := startDiskSampler(c, rounds)
	var took time.Duration
	var applied int64
	perSlot := make([]float64, rounds)
	for round := range rounds {
		s.setRound(round)
		sum := c.bench(2*time.Minute, nil, "--ops", strconv.Itoa(putsPerRound), "--clients", "64",
			"--keys", strconv.Itoa(keys), "--value-size", strconv.Itoa(valueSize), "--mix", "put=100", "--warmup", "0")
		if sum.Total.Ops != putsPerRound || sum.Total.Errors != 0 {
			t.Fatalf("round %d: %d puts succeeded and %d failed, want %d and none; first errors: %v",
				round+1, sum.Total.Ops, sum.Total.Errors, putsPerRound, sum.Total.FirstErrors)
		}
		took += time.Duration(sum.WallSeconds * float64(time.Second))
		before := applied
		applied = c.waitCaughtUp(30*time.Second, applied+1)
		perSlot[round] = float64(putsPerRound) / float64(applied-before)
	}
	s.stop()
	t.Logf("%d puts by 64 clients over %d keys in %s (%.0f/s); every replica applied slot %d; puts per slot by round %.1f",
		rounds*putsPerRound, keys, took.Round(time.Millisecond), float64(rounds*putsPerRound)/took.Seconds(), applied, perSlot)
	if err := s.err(); err != nil {
		t.Fatal(err)
	}

	bounds := make([]int64, rounds)
	for round := range rounds {
		bounds[round] = boundFor(perSlot[round])
	}
	t.Logf("bound on a data directory by round: %v bytes", bounds)
	for _, id := range c.ids() {
		peaks := s.peakBytes(id)
		t.Logf("replica %d: peak data directory by round of %d puts %v; peak log entries %d",
			id, putsPerRound, peaks, s.peakEntries(id))
		for round, p := range peaks {
			if p > bounds[round] {
				t.Errorf("replica %d: data directory reached %d bytes in round %d, bound %d (%.1f puts per slot)",
					id, p, round+1, bounds[round], perSlot[round])
			}
		}
		// Without compaction each round would add about as much as the whole
		// first round holds. The peak follows the puts per slot.
		first, last := peaks[0], peaks[rounds-1]
		if limit := int64(float64(first) * 1.5 * max(1, perSlot[rounds-1]/perSlot[0])); last > limit {
			t.Errorf("replica %d: data directory peaked at %d bytes in the last %d puts, %d in the first (limit %d): it grows with the history",
				id, last, putsPerRound, first, limit)
		}
		if e := s.peakEntries(id); e > everySlots+retainSlots+100 {
			t.Errorf("replica %d: %d log entries, want at most %d (every-slots %d + retain %d + 100)",
				id, e, everySlots+retainSlots+100, everySlots, retainSlots)
		}
	}

	st, err := c.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids() {
		size, err := dirSize(c.rep(id).dataDir)
		if err != nil {
			t.Fatal(err)
		}
		rss, err := c.rssBytes(id)
		if err != nil {
			t.Fatal(err)
		}
		r := st[id]
		t.Logf("replica %d after %d puts: data directory %s (status says %s), RSS %s, %d log entries, snapshot at slot %d, compacted to %d",
			id, rounds*putsPerRound, mib(size), mib(r.DiskBytes), mib(rss), r.LogEntries, r.SnapshotIndex, r.Compacted)
		if size > bounds[rounds-1] {
			t.Errorf("replica %d: data directory holds %d bytes at rest, bound %d", id, size, bounds[rounds-1])
		}
		if r.SnapshotIndex == 0 || r.Compacted == 0 {
			t.Errorf("replica %d: snapshot at slot %d, compacted to %d: no compaction happened", id, r.SnapshotIndex, r.Compacted)
		}
	}
	d := c.waitConverged(30*time.Second, c.ids()...)
	if d.Keys != keys {
		t.Errorf("digest counts %d keys, want %d", d.Keys, keys)
	}
}

// TestCatchUpThroughSnapshot stops a replica with SIGKILL, writes until the
// others have compacted their logs past it, and restarts it: it must catch up by
// installing a snapshot, then the log after it, and hold the same data. With
// BALLOT_MEASURE=1 it misses 100,000 writes instead of 20,000.
func TestCatchUpThroughSnapshot(t *testing.T) {
	const (
		everySlots  = 200
		retainSlots = 20
	)
	writes := 20_000
	if os.Getenv("BALLOT_MEASURE") == "1" {
		writes = 100_000
	}
	c := newClusterWith(t, 3,
		"--snapshot-every-slots", strconv.Itoa(everySlots),
		"--snapshot-retain-slots", strconv.Itoa(retainSlots))
	leader := c.waitLeader()
	lagger := others(c.ids(), leader)[0]
	c.mustBallot("put", "catchup/before", "written before the kill")
	c.waitCaughtUp(10*time.Second, 1)
	before, err := rawStatus(c.rep(lagger).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(lagger)

	live := others(c.ids(), lagger)
	// As many keys as writes: most writes leave a key of their own, which the
	// snapshot must carry.
	sum := c.bench(5*time.Minute, live, "--ops", strconv.Itoa(writes), "--clients", "32",
		"--keys", strconv.Itoa(writes), "--value-size", "100", "--mix", "put=100", "--warmup", "0")
	if sum.Total.Ops != uint64(writes) || sum.Total.Errors != 0 {
		t.Fatalf("%d puts succeeded and %d failed with replica %d down, want %d and none; first errors: %v",
			sum.Total.Ops, sum.Total.Errors, lagger, writes, sum.Total.FirstErrors)
	}
	t.Logf("%d puts by 32 clients in %.1fs (%.0f/s) with replica %d down", writes, sum.WallSeconds, sum.Total.OpsPerSec, lagger)

	leader = c.waitLeader(live...)
	target, err := rawStatus(c.rep(leader).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	if target.Compacted <= before.Applied {
		t.Fatalf("leader %d compacted its log to slot %d only, replica %d stopped at %d: the test needs more writes",
			leader, target.Compacted, lagger, before.Applied)
	}
	installs := len(c.logLines(lagger, "snapshot installed"))
	restart := time.Now()
	c.startNoWait(lagger)
	var caught time.Duration
	waitFor(t, 2*time.Minute, fmt.Sprintf("replica %d to apply slot %d", lagger, target.Applied), func() error {
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
	line := c.waitLog(lagger, 5*time.Second, "snapshot installed", installs)
	t.Logf("replica %d caught up from slot %d to slot %d (%d writes missed, leader compacted to %d) %s after its restart; %s",
		lagger, before.Applied, target.Applied, writes, target.Compacted, caught.Round(time.Millisecond), line)
	if slot, _ := strconv.ParseInt(logField(line, "slot"), 10, 64); slot <= before.Applied {
		t.Errorf("replica %d installed a snapshot of slot %d, at or below the slot %d it stopped at", lagger, slot, before.Applied)
	}
	d := c.waitConverged(30*time.Second, c.ids()...)
	if d.Applied < target.Applied {
		t.Errorf("replicas converged at slot %d, below the leader's %d", d.Applied, target.Applied)
	}
	v, err := c.client(5*time.Second, lagger).GetStale(context.Background(), "catchup/before")
	if err != nil || string(v) != "written before the kill" {
		t.Errorf("stale get on replica %d of a key written before its kill: %q, %v", lagger, v, err)
	}
}

// TestWipedReplicaRejoins kills a follower with SIGKILL, deletes its data
// directory and restarts it while clients write: it must rebuild its acceptor
// state from the others before it votes, catch up, hold the same data, and then
// form a majority with one other replica once the leader is killed. The writes
// must not fail at any point.
func TestWipedReplicaRejoins(t *testing.T) {
	c := newClusterWith(t, 3, "--snapshot-every-slots", "200", "--snapshot-retain-slots", "20")
	leader := c.waitLeader()
	wiped := others(c.ids(), leader)[0]
	sum := c.bench(time.Minute, nil, "--ops", "10000", "--clients", "32", "--keys", "2000", "--mix", "put=100", "--warmup", "0")
	if sum.Total.Errors != 0 {
		t.Fatalf("%d of the first puts failed: %v", sum.Total.Errors, sum.Total.FirstErrors)
	}
	c.waitCaughtUp(30*time.Second, 1)

	c.kill(wiped)
	c.wipe(wiped)
	w := startWriters(c.client(5*time.Second), "wiped", 4, 5000, 2*time.Minute)
	defer w.stop()
	w.waitAcked(t, 200)
	c.startNoWait(wiped)
	c.waitServing(wiped)
	c.waitLog(wiped, 30*time.Second, "rebuilding lost acceptor state", 0)
	line := c.waitLog(wiped, time.Minute, "lost acceptor state rebuilt: voting again", 0)
	t.Logf("replica %d: %s", wiped, line)
	w.waitAcked(t, w.ackedCount()+500)
	acked, failed, gap := w.stop()
	if len(failed) > 0 {
		t.Errorf("%d puts failed while replica %d was wiped and rebuilt; first: %v", len(failed), wiped, failed[0])
	}
	t.Logf("%d puts acknowledged while replica %d was down, rebuilt and caught up; longest wait between acknowledgements %s",
		len(acked), wiped, gap.Round(time.Millisecond))
	d := c.waitConverged(time.Minute, c.ids()...)
	t.Logf("replicas converged at slot %d with %d keys", d.Applied, d.Keys)

	// The rebuilt replica must vote: with the leader killed, it and the last
	// replica are the only majority.
	victim := c.waitLeader()
	if victim == wiped {
		victim = others(c.ids(), wiped, leader)[0]
	}
	c.kill(victim)
	pair := others(c.ids(), victim)
	c.waitLeader(pair...)
	cl := c.client(5*time.Second, pair...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 100 {
		key := fmt.Sprintf("wiped/pair/%03d", i)
		if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("put %s with replica %d killed and replicas %v left: %v", key, victim, pair, err)
		}
	}
	for _, key := range acked {
		v, err := cl.Get(ctx, key)
		if err != nil || string(v) != key {
			t.Fatalf("get %s from replicas %v: %q, %v", key, pair, v, err)
		}
	}
	c.waitConverged(30*time.Second, pair...)
}

// TestSnapshotTransferFaults interrupts the transfer of a 200 MB snapshot to a
// replica that fell behind the others' compaction point, three ways: (a) the
// receiver is killed with SIGKILL, (b) the sender is killed with SIGKILL, (c)
// the sender is stopped with SIGSTOP, so the link stalls, and continued. Each
// time the receiver must end with the others' data, and must never expose or
// install a partial snapshot: every status it answers while catching up shows
// either the keys it had or all of them.
func TestSnapshotTransferFaults(t *testing.T) {
	const (
		keys       = 3000
		valueBytes = 64 << 10
		everySlots = 250
	)
	c := newClusterWith(t, 3,
		"--snapshot-every-slots", strconv.Itoa(everySlots), "--snapshot-retain-slots", "10",
		// Snapshots by slots only, and no store rewrite: the test is about
		// transfers, and rewriting a store of this size holds writers back.
		"--snapshot-every-bytes", strconv.Itoa(1<<30), "--rewrite-min-bytes", strconv.Itoa(1<<32))
	leader := c.waitLeader()
	recv := others(c.ids(), leader)[0]
	st, err := rawStatus(c.rep(recv).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(recv)
	x := &transferTest{keysBefore: st.Keys, t: t, c: c, recv: recv, keys: keys, valueBytes: valueBytes, everySlots: everySlots}

	begin := time.Now()
	x.load(others(c.ids(), recv))
	t.Logf("loaded %d keys of %d KiB in %s", keys, valueBytes>>10, time.Since(begin).Round(time.Millisecond))
	x.fill(others(c.ids(), recv), 0)

	// (a) The receiver is killed part-way through, and restarted.
	begin = time.Now()
	x.restartUntilMidTransfer()
	c.kill(recv)
	x.checkPartial()
	c.startNoWait(recv)
	x.waitInstalled(0)
	x.converged()
	t.Logf("(a) receiver killed mid-transfer: converged %s after its restart", time.Since(begin).Round(time.Millisecond))

	// (b) The sender, the leader, is killed part-way through: the receiver
	// must complete from the new leader.
	x.fallBehind()
	begin = time.Now()
	sender := x.restartUntilMidTransfer()
	c.kill(sender)
	x.checkPartial()
	c.waitLeader(others(c.ids(), sender)...)
	x.waitInstalled(sender)
	c.start(sender)
	x.converged()
	t.Logf("(b) sender %d killed mid-transfer: converged %s after the receiver's restart", sender, time.Since(begin).Round(time.Millisecond))

	// (c) The sender stops for a while (SIGSTOP): to the receiver its link
	// stalls, with the connection still open; then it continues.
	x.fallBehind()
	begin = time.Now()
	sender = x.restartUntilMidTransfer()
	c.pause(sender)
	// The fault lasts three times the replicas' peer timeout (1s): long enough
	// for the others to elect a new leader and for any call to time out.
	stall := time.NewTimer(3 * time.Second)
	<-stall.C
	c.resume(sender)
	x.waitInstalled(0)
	x.converged()
	t.Logf("(c) sender %d stopped for 3s mid-transfer: converged %s after the receiver's restart", sender, time.Since(begin).Round(time.Millisecond))

	x.checkLogs()
}

// transferTest is the state of TestSnapshotTransferFaults.
type transferTest struct {
	t          testing.TB
	c          *cluster
	recv       int // the replica that receives snapshots
	keys       int
	valueBytes int
	everySlots int

	sum        string // the digest of the loaded data, which never changes
	keysBefore int64  // keys the receiver held when it was stopped
	installs   int    // "snapshot installed" lines in the receiver's log before this case
	sampler    *keySampler
}

// value is key i's value: valueBytes pseudo-random bytes.
func (x *transferTest) value(i int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	v := make([]byte, x.valueBytes)
	rand.NewChaCha8(seed).Read(v)
	return v
}

func (x *transferTest) key(i int) string { return fmt.Sprintf("xfer/%05d", i) }

// load puts every key through the replicas ids.
func (x *transferTest) load(ids []int) {
	t, c := x.t, x.c
	t.Helper()
	cl := c.client(10*time.Second, ids...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= x.keys {
					return
				}
				if err := putRetrying(ctx, cl, x.key(i), x.value(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// putRetrying puts until the put is acknowledged, at most five times.
func putRetrying(ctx context.Context, cl *client.Client, key string, value []byte) error {
	var err error
	for range 5 {
		if _, err = cl.Put(ctx, key, value); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("put %s: 5 attempts failed, last: %w", key, err)
}

// fill writes key 0's value again, one put at a time, which leaves the data
// unchanged, until every replica in ids has a snapshot taken after the load and
// has compacted its log past slot behind.
func (x *transferTest) fill(ids []int, behind int64) {
	t, c := x.t, x.c
	t.Helper()
	cl := c.client(10*time.Second, ids...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := rawStatus(c.rep(c.waitLeader(ids...)).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	loaded := st.Applied
	v := x.value(0)
	puts := 0
	for {
		done := true
		for _, id := range ids {
			s, err := rawStatus(c.rep(id).clientAddr)
			if err != nil || s.SnapshotIndex <= loaded || s.Compacted <= behind {
				done = false
			}
		}
		if done {
			break
		}
		if puts > 3*x.everySlots {
			t.Fatalf("%d puts after slot %d and replicas %v have not all snapshotted after it and compacted past %d",
				puts, loaded, ids, behind)
		}
		if err := putRetrying(ctx, cl, x.key(0), v); err != nil {
			t.Fatal(err)
		}
		puts++
	}
	d := c.waitConverged(time.Minute, ids...)
	if d.Keys != int64(x.keys) {
		t.Fatalf("replicas %v hold %d keys, want %d", ids, d.Keys, x.keys)
	}
	if x.sum != "" && d.Digest != x.sum {
		t.Fatalf("the data changed: digest %s, was %s", d.Digest, x.sum)
	}
	x.sum = d.Digest
}

// fallBehind kills the receiver, which has caught up, and writes until the
// others have compacted their logs past it.
func (x *transferTest) fallBehind() {
	x.t.Helper()
	st, err := rawStatus(x.c.rep(x.recv).clientAddr)
	if err != nil {
		x.t.Fatal(err)
	}
	x.keysBefore = st.Keys
	x.c.kill(x.recv)
	x.fill(others(x.c.ids(), x.recv), st.Applied)
}

// restartUntilMidTransfer starts the receiver and waits until it has received
// a few MiB of a snapshot, and returns the sender.
func (x *transferTest) restartUntilMidTransfer() int {
	t, c := x.t, x.c
	t.Helper()
	x.installs = len(c.logLines(x.recv, "snapshot installed"))
	started := len(c.logLines(x.recv, "snapshot transfer started"))
	c.startNoWait(x.recv)
	x.sampler = startKeySampler(c.rep(x.recv).clientAddr, x.keysBefore, int64(x.keys))
	line := c.waitLog(x.recv, 30*time.Second, "snapshot transfer started", started)
	sender, err := strconv.Atoi(logField(line, "from"))
	if err != nil {
		t.Fatalf("no sender in %q", line)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("replica %d to receive 4 MiB of a snapshot", x.recv), func() error {
		if n := len(c.logLines(x.recv, "snapshot installed")); n > x.installs {
			t.Fatalf("replica %d installed the snapshot before the test could interrupt it", x.recv)
		}
		_, size := x.part()
		if size < 4<<20 {
			return fmt.Errorf("%d bytes received", size)
		}
		return nil
	})
	return sender
}

// part returns the path and size of the receiver's partial snapshot, if any.
func (x *transferTest) part() (string, int64) {
	parts, _ := filepath.Glob(filepath.Join(x.c.rep(x.recv).dataDir, "snapshots", "incoming-*.part"))
	if len(parts) == 0 {
		return "", 0
	}
	fi, err := os.Stat(parts[0])
	if err != nil {
		return "", 0
	}
	return parts[0], fi.Size()
}

// checkPartial checks, once the transfer was interrupted, that the receiver
// holds part of a snapshot and has not installed it.
func (x *transferTest) checkPartial() {
	t, c := x.t, x.c
	t.Helper()
	path, size := x.part()
	slot := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "incoming-"), ".part")
	var full int64
	for _, id := range others(c.ids(), x.recv) {
		if fi, err := os.Stat(filepath.Join(c.rep(id).dataDir, "snapshots", slot+".snap")); err == nil {
			full = fi.Size()
		}
	}
	switch {
	case path == "":
		t.Fatalf("replica %d holds no partial snapshot after the interruption", x.recv)
	case full == 0:
		t.Fatalf("no replica holds snapshot %s, which replica %d was receiving", slot, x.recv)
	case size >= full:
		t.Fatalf("replica %d had received all %d bytes of snapshot %s when it was interrupted", x.recv, full, slot)
	}
	if n := len(c.logLines(x.recv, "snapshot installed")); n > x.installs {
		t.Fatalf("replica %d installed a snapshot before the interrupted transfer could finish", x.recv)
	}
	t.Logf("interrupted after %s of the %s of snapshot %s", mib(size), mib(full), slot)
}

// waitInstalled waits until the receiver installs a snapshot from a replica
// other than not, and checks that what it installed is complete.
func (x *transferTest) waitInstalled(not int) {
	t, c := x.t, x.c
	t.Helper()
	begin := time.Now()
	line := c.waitLog(x.recv, 2*time.Minute, "snapshot installed", x.installs)
	t.Logf("installed %s after the interruption: %s", time.Since(begin).Round(time.Millisecond), line)
	if from, _ := strconv.Atoi(logField(line, "from")); from == not {
		t.Errorf("replica %d installed a snapshot from replica %d, which was killed", x.recv, from)
	}
	if k, _ := strconv.Atoi(logField(line, "keys")); k != x.keys {
		t.Errorf("replica %d installed a snapshot of %d keys, want %d", x.recv, k, x.keys)
	}
}

// converged waits until every replica holds the loaded data at one slot, and
// checks every status the receiver answered meanwhile.
func (x *transferTest) converged() {
	t, c := x.t, x.c
	t.Helper()
	d := c.waitConverged(time.Minute, c.ids()...)
	if d.Digest != x.sum || d.Keys != int64(x.keys) {
		t.Errorf("replicas hold %d keys with digest %s at slot %d, want %d keys with digest %s",
			d.Keys, d.Digest, d.Applied, x.keys, x.sum)
	}
	seen, bad := x.sampler.stop()
	if bad != "" {
		t.Errorf("replica %d exposed a partial state while catching up: %s", x.recv, bad)
	}
	t.Logf("replica %d answered %d status calls while catching up, all with complete data", x.recv, seen)
	if n := len(c.logLines(x.recv, "snapshot installed")); n != x.installs+1 {
		t.Errorf("replica %d logged %d snapshot installs in this case, want 1", x.recv, n-x.installs)
	}
}

// checkLogs checks, in every replica's log, that no snapshot was installed
// after its transfer was discarded without being fetched again.
func (x *transferTest) checkLogs() {
	t, c := x.t, x.c
	for _, id := range c.ids() {
		// Set by a discarded transfer, cleared when a transfer starts.
		discardedLast := false
		installed, discarded := 0, 0
		for _, line := range c.logLines(id, "snapshot") {
			switch {
			case strings.Contains(line, "snapshot transfer started"):
				discardedLast = false
			case strings.Contains(line, "discarded") || strings.Contains(line, "snapshot not installed"):
				discarded++
				discardedLast = true
			case strings.Contains(line, "snapshot installed"):
				installed++
				if discardedLast {
					t.Errorf("replica %d installed a snapshot after discarding one, without fetching again: %s", id, line)
				}
			}
		}
		t.Logf("replica %d: %d snapshots installed, %d discarded; %d transfers failed", id, installed, discarded,
			len(c.logLines(id, "snapshot transfer failed")))
	}
}

// keySampler asks a replica for its status every 20 ms and records any
// answer whose key count is neither the count it held before nor the full one.
type keySampler struct {
	quit chan struct{}
	done chan struct{}
	seen int
	bad  string
}

func startKeySampler(addr string, before, full int64) *keySampler {
	s := &keySampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := rawStatus(addr); err == nil {
				s.seen++
				if st.Keys != before && st.Keys != full && s.bad == "" {
					s.bad = fmt.Sprintf("%d keys at applied slot %d (before: %d, complete: %d)", st.Keys, st.Applied, before, full)
				}
			}
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop stops the sampler and returns how many answers it saw and the first
// bad one ("" if none).
func (s *keySampler) stop() (int, string) {
	close(s.quit)
	<-s.done
	return s.seen, s.bad
}

// TestBackupRestoreInPlace saves a backup with `ballot snapshot save`, loses
// every replica's data directory, and starts each replica again on its own
// addresses with --restore: the cluster must hold exactly the backed-up data
// and take writes. A restore into a data directory that already holds a store
// must then fail, name the directory, and leave the store as it was.
func TestBackupRestoreInPlace(t *testing.T) {
	a := newCluster(t, 3)
	file, want := backup(t, a)
	for _, id := range a.ids() {
		a.kill(id)
		a.wipe(id)
	}
	checkRestore(t, a, file, want)
	checkRestoreRefused(t, a, file)
}

// backup loads the cluster, saves a backup of it while it is idle, checks the
// file against what ballot printed, and writes once more. It returns the file
// and the digest of the cluster at the backup's slot.
func backup(t *testing.T, a *cluster) (string, digestRow) {
	t.Helper()
	a.waitLeader()
	sum := a.bench(time.Minute, nil, "--ops", "5000", "--clients", "16", "--keys", "2000",
		"--mix", "put=80,delete=20", "--warmup", "0")
	if sum.Total.Errors != 0 {
		t.Fatalf("%d operations failed: %v", sum.Total.Errors, sum.Total.FirstErrors)
	}
	a.waitCaughtUp(30*time.Second, 1)
	want := a.waitConverged(30*time.Second, a.ids()...)

	file := filepath.Join(t.TempDir(), "backup.snap")
	out := a.mustBallot("snapshot", "save", file)
	var slot, size int64
	var printed string
	if _, err := fmt.Sscanf(out, "saved snapshot at slot %d: %d bytes, sha256 %s", &slot, &size, &printed); err != nil {
		t.Fatalf("ballot snapshot save printed %q: %v", out, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(data)); int64(len(data)) != size || got != printed {
		t.Fatalf("backup file: %d bytes with sha256 %s; ballot printed %d bytes, sha256 %s", len(data), got, size, printed)
	}
	if slot != want.Applied {
		t.Fatalf("backup of slot %d, but the idle cluster applied slot %d", slot, want.Applied)
	}
	t.Logf("backup of slot %d: %d keys, %d bytes", slot, want.Keys, size)
	// A change after the backup, which the restored cluster must not hold.
	a.mustBallot("put", "backup/after", "written after the backup")
	return file, want
}

// checkRestore starts every replica of b, which have no data directories, with
// --restore file, and checks that the cluster holds the data of the backup,
// digest want, and takes writes.
func checkRestore(t *testing.T, b *cluster, file string, want digestRow) {
	t.Helper()
	for _, id := range b.ids() {
		b.startNoWaitWith(id, "--restore", file)
	}
	for _, id := range b.ids() {
		b.waitServing(id)
		if lines := b.logLines(id, "data directory restored from a snapshot"); len(lines) != 1 {
			t.Errorf("replica %d of the restored cluster logged %d restores, want 1", id, len(lines))
		}
	}
	b.waitLeader()
	got := b.waitConverged(30*time.Second, b.ids()...)
	if got.Applied != want.Applied || got.Digest != want.Digest || got.Keys != want.Keys {
		t.Fatalf("restored cluster: slot %d, %d keys, digest %s; backup: slot %d, %d keys, digest %s",
			got.Applied, got.Keys, got.Digest, want.Applied, want.Keys, want.Digest)
	}
	if res := b.ballot("get", "backup/after"); res.code != 1 {
		t.Errorf("get of a key written after the backup, on the restored cluster: exit %d, %q, want exit 1 (not found)", res.code, res.stdout)
	}
	b.mustBallot("put", "restored/new", "written after the restore")
	if v := b.mustBallot("get", "restored/new"); v != "written after the restore\n" {
		t.Errorf("get after a put on the restored cluster: %q", v)
	}
	after := b.waitConverged(30*time.Second, b.ids()...)
	if after.Applied <= want.Applied || after.Keys != want.Keys+1 {
		t.Errorf("restored cluster after one put: slot %d, %d keys; want a slot above %d and %d keys",
			after.Applied, after.Keys, want.Applied, want.Keys+1)
	}
}

// checkRestoreRefused starts replica 1 of b, which holds a store, with
// --restore: it must fail, name its data directory, and leave the store as it
// was.
func checkRestoreRefused(t *testing.T, b *cluster, file string) {
	t.Helper()
	before := b.waitConverged(30*time.Second, b.ids()...)
	r := b.rep(1)
	b.stop(1, 10*time.Second)
	b.startNoWaitWith(1, "--restore", file)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("ballotd --restore into a used data directory still runs after 15s:\n%s", tail(r.logPath, 20))
	}
	last := tail(r.logPath, 3)
	if r.exitCode == 0 || !strings.Contains(last, r.dataDir) {
		t.Errorf("ballotd --restore into a used data directory: exit %d, want a failure naming %s; log:\n%s", r.exitCode, r.dataDir, last)
	}
	b.start(1)
	if d := b.waitConverged(30*time.Second, b.ids()...); d.Digest != before.Digest || d.Applied < before.Applied {
		t.Errorf("after a refused restore: slot %d, digest %s; before: slot %d, digest %s", d.Applied, d.Digest, before.Applied, before.Digest)
	}
}

// writers are goroutines that put distinct keys through one client until told
// to stop, or until a count or a time limit, and record what was acknowledged.
type writers struct {
	quit chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	acked    []string
	failed   []error
	lastAck  time.Time
	longest  time.Duration
	stopped  bool
	ackCount atomic.Int64
}

// startWriters starts n writers putting keys prefix/<writer>/<i>, each at most
// perWriter of them, for at most limit.
func startWriters(cl *client.Client, prefix string, n, perWriter int, limit time.Duration) *writers {
	w := &writers{quit: make(chan struct{}), lastAck: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	for id := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := range perWriter {
				select {
				case <-w.quit:
					return
				default:
				}
				if ctx.Err() != nil {
					return
				}
				key := fmt.Sprintf("%s/%d/%05d", prefix, id, i)
				_, err := cl.Put(ctx, key, []byte(key))
				now := time.Now()
				w.mu.Lock()
				if err != nil {
					w.failed = append(w.failed, fmt.Errorf("put %s at %s: %w", key, now.Format(time.StampMilli), err))
				} else {
					w.acked = append(w.acked, key)
					w.longest = max(w.longest, now.Sub(w.lastAck))
					w.lastAck = now
					w.ackCount.Add(1)
				}
				w.mu.Unlock()
			}
		}()
	}
	go func() {
		w.wg.Wait()
		cancel()
	}()
	return w
}

func (w *writers) ackedCount() int { return int(w.ackCount.Load()) }

// waitAcked waits until at least n puts have been acknowledged.
func (w *writers) waitAcked(t testing.TB, n int) {
	t.Helper()
	waitFor(t, time.Minute, fmt.Sprintf("%d acknowledged puts", n), func() error {
		if got := w.ackedCount(); got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// stop stops the writers, waits for them, and returns the acknowledged keys,
// the failures and the longest time between two acknowledgements.
func (w *writers) stop() (acked []string, failed []error, longest time.Duration) {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		close(w.quit)
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked, w.failed, w.longest
}

// diskSampler samples, while a test loads the cluster, each replica's data
// directory size (walking it) and its log entries (from status), by round.
type diskSampler struct {
	c     *cluster
	round atomic.Int64
	quit  chan struct{}
	done  chan struct{}

	mu      sync.Mutex // guards the fields below
	bytes   map[int][]int64
	entries map[int]int64
	errs    []error
}

func startDiskSampler(c *cluster, rounds int) *diskSampler {
	s := &diskSampler{c: c, quit: make(chan struct{}), done: make(chan struct{}),
		bytes: make(map[int][]int64), entries: make(map[int]int64)}
	for _, id := range c.ids() {
		s.bytes[id] = make([]int64, rounds)
	}
	addrs := make(map[int]string)
	dirs := make(map[int]string)
	for _, id := range c.ids() {
		addrs[id], dirs[id] = c.rep(id).clientAddr, c.rep(id).dataDir
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			round := int(s.round.Load())
			for id, dir := range dirs {
				size, err := dirSize(dir)
				s.mu.Lock()
				if err != nil {
					s.errs = append(s.errs, err)
				}
				s.bytes[id][round] = max(s.bytes[id][round], size)
				s.mu.Unlock()
			}
			if n%4 == 0 {
				for id, addr := range addrs {
					if st, err := rawStatus(addr); err == nil {
						s.mu.Lock()
						s.entries[id] = max(s.entries[id], st.LogEntries)
						s.mu.Unlock()
					}
				}
			}
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *diskSampler) setRound(r int) { s.round.Store(int64(r)) }

func (s *diskSampler) stop() {
	close(s.quit)
	<-s.done
}

func (s *diskSampler) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func (s *diskSampler) peakBytes(id int) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.bytes[id]...)
}

func (s *diskSampler) peakEntries(id int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[id]
}

// dirSize is the total size of the regular files under dir. Files removed while
// it walks (a rewrite renaming its temporary file) are skipped.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}

// rssBytes is the resident set size of replica id's process (VmRSS).
func (c *cluster) rssBytes(id int) (int64, error) {
	r := c.rep(id)
	if !r.running() {
		return 0, fmt.Errorf("replica %d is not running", id)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of replica %d: %q: %w", id, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS line in /proc/%d/status", r.cmd.Process.Pid)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// bench runs `ballot bench --json` with args against the replicas ids (all if
// none), within limit, and returns its summary. It fails the test if bench
// fails or prints no summary.
func (c *cluster) bench(limit time.Duration, ids []int, args ...string) bench.Summary {
	c.t.Helper()
	full := append([]string{"--endpoints", strings.Join(c.clientAddrs(ids...), ","), "--timeout", cliTimeout.String(),
		"bench", "--json", "--time-limit", limit.String()}, args...)
	res := runCLIWithin(c.t, limit+time.Minute, nil, full...)
	var sum bench.Summary
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil || res.code != 0 {
		c.t.Fatalf("ballot bench %s: exit %d, %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, err, res.stdout, res.stderr)
	}
	return sum
}

// digestRow is one replica's entry in `ballot digest --json`.
type digestRow struct {
	ID      int64  `json:"id"`
	Up      bool   `json:"up"`
	Applied int64  `json:"applied"`
	Keys    int64  `json:"keys"`
	Digest  string `json:"digest"`
	Error   string `json:"error"`
}

// digests runs `ballot digest --json` and returns the rows by replica id. It
// fails the test at once if ballot says two replicas at one slot differ.
func (c *cluster) digests() (map[int]digestRow, error) {
	c.t.Helper()
	res := c.ballot("digest", "--json")
	if strings.Contains(res.stderr, "differ at applied slot") {
		c.t.Fatalf("ballot digest: exit %d: %s%s", res.code, res.stderr, res.stdout)
	}
	var rows []digestRow
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
		return nil, fmt.Errorf("ballot digest --json: exit %d, output %q: %v; stderr: %s", res.code, res.stdout, err, res.stderr)
	}
	byID := make(map[int]digestRow, len(rows))
	for _, r := range rows {
		byID[int(r.ID)] = r
	}
	return byID, nil
}

// waitConverged waits until the replicas ids report their digest at one applied
// slot, and returns it; replicas at one slot with different digests fail the
// test at once.
func (c *cluster) waitConverged(timeout time.Duration, ids ...int) digestRow {
	c.t.Helper()
	var got digestRow
	waitFor(c.t, timeout, fmt.Sprintf("replicas %v to reach one applied slot", ids), func() error {
		rows, err := c.digests()
		if err != nil {
			return err
		}
		first, ok := rows[ids[0]]
		if !ok || !first.Up {
			return fmt.Errorf("replica %d: no digest: %s", ids[0], first.Error)
		}
		for _, id := range ids[1:] {
			r := rows[id]
			switch {
			case !r.Up:
				return fmt.Errorf("replica %d: no digest: %s", id, r.Error)
			case r.Applied != first.Applied:
				return fmt.Errorf("replica %d applied slot %d, replica %d slot %d", ids[0], first.Applied, id, r.Applied)
			case r.Digest != first.Digest || r.Keys != first.Keys:
				c.t.Fatalf("at applied slot %d replica %d holds %d keys with digest %s, replica %d %d keys with digest %s",
					r.Applied, ids[0], first.Keys, first.Digest, id, r.Keys, r.Digest)
			}
		}
		got = first
		return nil
	})
	return got
}

// logLines returns the lines of replica id's log that contain substr.
func (c *cluster) logLines(id int, substr string) []string {
	c.t.Helper()
	data, err := os.ReadFile(c.rep(id).logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// waitLog waits until replica id's log holds more than after lines containing
// substr, and returns the newest.
func (c *cluster) waitLog(id int, timeout time.Duration, substr string, after int) string {
	c.t.Helper()
	var line string
	waitFor(c.t, timeout, fmt.Sprintf("replica %d to log %q", id, substr), func() error {
		lines := c.logLines(id, substr)
		if len(lines) <= after {
			return fmt.Errorf("%d such lines, waiting for more than %d", len(lines), after)
		}
		line = lines[len(lines)-1]
		return nil
	})
	return line
}

// logField returns the value of key=value in a log line, unquoted.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// TestBackupRestore saves a backup with `ballot snapshot save`, starts a new
// cluster on other addresses whose replicas are all created from it with
// --restore, and checks that it holds exactly the backed-up data and takes
// writes, while the original cluster goes on. A restore into a data directory
// that already holds a store must fail and name it.
func TestBackupRestore(t *testing.T) {
	a := newCluster(t, 3)
	file, want := backup(t, a)
	b := layoutCluster(t, 3)
	checkRestore(t, b, file, want)
	checkRestoreRefused(t, b, file)
}
