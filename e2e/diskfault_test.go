package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/internal/smalldisk"
)

// faultsBuild is ballotd built with the ballotfaults tag, whose BALLOT_FAULTS can
// make its disk fail; built on first use beside the other binaries.
var faultsBuild struct {
	once sync.Once
	path string
	err  error
}

func ballotdFaultsBin(t *testing.T) string {
	t.Helper()
	faultsBuild.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			faultsBuild.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		path := filepath.Join(filepath.Dir(ballotdBin), "ballotd-faults")
		args := []string{"build", "-tags", "ballotfaults"}
		if os.Getenv("BALLOT_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "-o", path, "./server/cmd/ballotd")...)
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := cmd.CombinedOutput(); err != nil {
			faultsBuild.err = fmt.Errorf("go build -tags ballotfaults: %v\n%s", err, out)
			return
		}
		faultsBuild.path = path
	})
	if faultsBuild.err != nil {
		t.Fatal(faultsBuild.err)
	}
	return faultsBuild.path
}

// waitExit waits up to limit for replica id's process to exit by itself and
// returns its exit code.
func (c *cluster) waitExit(id int, limit time.Duration) int {
	c.t.Helper()
	r := c.rep(id)
	select {
	case <-r.done:
		return r.exitCode
	case <-time.After(limit):
		c.t.Fatalf("replica %d still runs %s after its disk failed:\n%s", id, limit, tail(r.logPath, 30))
		return 0
	}
}

// checkLogNames fails the test unless replica id's log has every one of want.
func (c *cluster) checkLogNames(id int, want ...string) {
	c.t.Helper()
	data, err := os.ReadFile(c.rep(id).logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(string(data), w) {
			c.t.Errorf("replica %d's log does not name %q:\n%s", id, w, tail(c.rep(id).logPath, 15))
		}
	}
}

// checkLogMatches fails the test unless replica id's log has a match of pattern.
func (c *cluster) checkLogMatches(id int, pattern string) {
	c.t.Helper()
	data, err := os.ReadFile(c.rep(id).logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	if !regexp.MustCompile(pattern).Match(data) {
		c.t.Errorf("replica %d's log has no match of %s:\n%s", id, pattern, tail(c.rep(id).logPath, 15))
	}
}

// ackedWrites records the writes a test had acknowledged, to read back.
type ackedWrites struct {
	t    *testing.T
	keys []string
	vals map[string][]byte
}

func newAckedWrites(t *testing.T) *ackedWrites {
	return &ackedWrites{t: t, vals: map[string][]byte{}}
}

func (a *ackedWrites) add(key string, val []byte) {
	a.keys = append(a.keys, key)
	a.vals[key] = val
}

// readBack reads every acknowledged key from the leader (a linearizable get) and
// fails the test for any that is missing or differs.
func (a *ackedWrites) readBack(c *cluster) {
	a.t.Helper()
	cl := c.client(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wrong := 0
	for _, k := range a.keys {
		v, err := cl.Get(ctx, k)
		if err != nil || string(v) != string(a.vals[k]) {
			wrong++
			if wrong <= 5 {
				a.t.Errorf("acknowledged key %s: got %d bytes, %v; want %d bytes", k, len(v), err, len(a.vals[k]))
			}
		}
	}
	if wrong > 0 {
		a.t.Errorf("%d of %d acknowledged keys lost or changed", wrong, len(a.keys))
	}
}

// TestDiskFaultStopsReplica makes one replica's store fail (an fsync or a write
// returns EIO, injected by a ballotfaults build once a trigger file exists), for
// the leader and for a follower: that replica exits with status 1 and its log
// names the store's file and the error; a client waiting on the leader is
// answered Unavailable with the same; the other two carry on taking writes; every
// acknowledged write is readable afterwards; and the replica, restarted with a
// working disk, catches up.
func TestDiskFaultStopsReplica(t *testing.T) {
	for _, tc := range []struct {
		name, fault string
		leader      bool
		errText     string
	}{
		{"leader fsync", "fsync-error-after=0", true, "fsync "},
		{"follower fsync", "fsync-error-after=0", false, "fsync "},
		{"leader write", "write-error-after=0", true, "write "},
		{"follower write", "write-error-after=0", false, "write "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := layoutCluster(t, 3)
			bin := ballotdFaultsBin(t)
			trigger := func(id int) string { return filepath.Join(c.dir, fmt.Sprintf("disk-%d-fails", id)) }
			for _, r := range c.reps {
				r.bin = bin
				r.env = []string{"BALLOT_FAULTS=" + tc.fault + ",disk-faults-armed-by=" + trigger(r.id)}
			}
			for _, id := range c.ids() {
				c.startNoWait(id)
			}
			for _, id := range c.ids() {
				c.waitServing(id)
			}
			leader := c.waitLeader()
			target := leader
			if !tc.leader {
				target = others(c.ids(), leader)[0]
			}
			cl := c.client(10 * time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			acked := newAckedWrites(t)
			put := func(i int) error {
				key, val := fmt.Sprintf("disk/%04d", i), fmt.Appendf(nil, "value %d", i)
				_, err := cl.Put(ctx, key, val)
				if err == nil {
					acked.add(key, val)
				}
				return err
			}
			for i := range 10 {
				if err := put(i); err != nil {
					t.Fatalf("put before the fault: %v", err)
				}
			}

			storeFile := filepath.Join(c.rep(target).dataDir, "ballot.db")
			armed := time.Now()
			if err := os.WriteFile(trigger(target), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			next := 10
			if tc.leader {
				// The next write makes the leader save: its client waits for it
				// and must be told why the replica stops.
				kv := mustDialKV(t, c.rep(target).clientAddr)
				wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := kv.Put(wctx, 1<<40, 1, "disk/waiting", []byte("v"))
				wcancel()
				var u *kvapi.Unavailable
				if !errors.As(err, &u) || !strings.Contains(u.Message, storeFile) ||
					!strings.Contains(u.Message, "input/output error") {
					t.Errorf("write waiting on the failing leader: %v, want Unavailable naming %s and the error", err, storeFile)
				} else {
					t.Logf("the waiting client was told: %s", u.Message)
				}
			} else {
				// Writes go on; the follower's next accept fails its store.
				for c.rep(target).running() && next < 200 {
					if err := put(next); err != nil {
						t.Fatalf("put while the follower's disk fails: %v", err)
					}
					next++
				}
			}
			code := c.waitExit(target, 20*time.Second)
			t.Logf("replica %d (%s) exited with status %d %v after its disk began to fail",
				target, map[bool]string{true: "leader", false: "follower"}[tc.leader], code, time.Since(armed).Round(time.Millisecond))
			if code != 1 {
				t.Errorf("replica %d exited with status %d, want 1", target, code)
			}
			c.checkLogNames(target, "replica stops: stable storage failed",
				tc.errText+storeFile, "input/output error")
			// ballotd's last words, on stderr, say why it stopped: the failed
			// operation (a save or an apply, whichever met the disk first),
			// then the store's error naming the file.
			c.checkLogMatches(target, `(?m)^ballotd: .*disk write failed; store stopped: .*`+regexp.QuoteMeta(tc.errText+storeFile))
			t.Logf("the last lines of replica %d's log:\n%s", target, tail(c.rep(target).logPath, 4))

			// The others carry on.
			for range 20 {
				if err := put(next); err != nil {
					t.Fatalf("put after replica %d stopped: %v", target, err)
				}
				next++
			}
			acked.readBack(c)

			// With its disk working again, the replica rejoins and catches up.
			if err := os.Remove(trigger(target)); err != nil {
				t.Fatal(err)
			}
			c.start(target)
			c.waitCaughtUp(30*time.Second, 0)
			c.waitSameDigest(c.ids())
		})
	}
}

// fillDisk puts values of valueBytes under new keys, one after another through
// the Go client, until stop reports true or a put fails (returned). It fails the
// test if maxPuts puts or limit pass first. Acknowledged puts go to acked.
func fillDisk(t *testing.T, c *cluster, acked *ackedWrites, valueBytes, maxPuts int, limit time.Duration, stop func() bool) (puts int, err error) {
	t.Helper()
	cl := c.client(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	value := make([]byte, valueBytes)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for ; !stop(); puts++ {
		if puts == maxPuts || ctx.Err() != nil {
			t.Fatalf("%d puts of %d bytes in %s did not fill the disk", puts, valueBytes, limit)
		}
		key := fmt.Sprintf("fill/%05d", puts)
		if _, err := cl.Put(ctx, key, value); err != nil {
			return puts, err
		}
		acked.add(key, value)
	}
	return puts, nil
}

// putMore puts n small values under keys of their own, each of which must succeed.
func putMore(t *testing.T, c *cluster, acked *ackedWrites, prefix string, n int) {
	t.Helper()
	cl := c.client(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		key, val := fmt.Sprintf("%s/%03d", prefix, i), fmt.Appendf(nil, "value %d", i)
		if _, err := cl.Put(ctx, key, val); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		acked.add(key, val)
	}
}

// TestFullDiskOneReplica runs a one-replica cluster on an 8 MiB tmpfs, with
// snapshots and rewrites frequent enough to need their second copies, and puts
// until the disk is full: the failing write is answered Unavailable naming the
// data directory and "no space left on device", the replica exits with status 1
// saying the same, and after the disk grows it starts again with every
// acknowledged write and takes new ones.
func TestFullDiskOneReplica(t *testing.T) {
	disk := smalldisk.Mount(t, "8m")
	c := layoutCluster(t, 1, "--snapshot-every-slots", "200", "--snapshot-retain-slots", "20",
		"--rewrite-min-bytes", "1048576")
	r := c.rep(1)
	r.dataDir = filepath.Join(disk, "data")
	c.start(1)
	c.waitLeader()

	// Raw Thrift, so that the replica's own answer to the failing write is seen
	// (the Go client would retry until its deadline).
	kv := mustDialKV(t, r.clientAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	acked := newAckedWrites(t)
	value := make([]byte, 4<<10)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	start := time.Now()
	var err error
	puts := 0
	for ; err == nil; puts++ {
		if puts == 20_000 || ctx.Err() != nil {
			t.Fatalf("%d puts of 4 KiB in %v did not fill an 8 MiB disk", puts, time.Since(start))
		}
		key := fmt.Sprintf("fill/%05d", puts)
		if _, err = kv.Put(ctx, 1, int64(puts+1), key, value); err == nil {
			acked.add(key, value)
		}
	}
	t.Logf("the 8 MiB disk was full after %d acknowledged puts of 4 KiB (%v); the failing put was told: %v",
		len(acked.keys), time.Since(start).Round(time.Millisecond), err)
	var u *kvapi.Unavailable
	if !errors.As(err, &u) || !strings.Contains(u.Message, "data directory "+r.dataDir+" is full") ||
		!strings.Contains(u.Message, "no space left on device") {
		t.Errorf("put on a full disk: %v, want Unavailable naming data directory %s and no space left on device", err, r.dataDir)
	}
	if code := c.waitExit(1, 20*time.Second); code != 1 {
		t.Errorf("replica on a full disk exited with status %d, want 1", code)
	}
	c.checkLogNames(1, "replica stops: stable storage failed", "no space left on device",
		"the disk of data directory "+r.dataDir+" is full")

	smalldisk.Resize(t, disk, "64m")
	c.start(1)
	c.waitLeader()
	acked.readBack(c)
	putMore(t, c, acked, "after", 20)
}

// TestFullDiskOneOfThree puts one replica of three on an 8 MiB tmpfs and puts
// until it runs out of space: it exits with status 1 naming its data directory
// and "no space left on device", while every put, before and after, succeeds on
// the other two; after its disk grows it restarts, catches up to the same data,
// and every acknowledged write is readable.
func TestFullDiskOneOfThree(t *testing.T) {
	disk := smalldisk.Mount(t, "8m")
	c := layoutCluster(t, 3)
	small := c.rep(3)
	small.dataDir = filepath.Join(disk, "data")
	for _, id := range c.ids() {
		c.startNoWait(id)
	}
	for _, id := range c.ids() {
		c.waitServing(id)
	}
	c.waitLeader()

	acked := newAckedWrites(t)
	start := time.Now()
	puts, err := fillDisk(t, c, acked, 4<<10, 20_000, 2*time.Minute, func() bool { return !small.running() })
	if err != nil {
		t.Fatalf("put %d while replica 3's disk fills: %v", puts, err)
	}
	t.Logf("replica 3's 8 MiB disk was full after %d puts of 4 KiB (%v); it exited with status %d",
		puts, time.Since(start).Round(time.Millisecond), small.exitCode)
	if small.exitCode != 1 {
		t.Errorf("replica 3 exited with status %d, want 1", small.exitCode)
	}
	c.checkLogNames(3, "replica stops: stable storage failed", "no space left on device",
		"the disk of data directory "+small.dataDir+" is full")
	// The other two carry on.
	putMore(t, c, acked, "after", 20)

	smalldisk.Resize(t, disk, "64m")
	c.start(3)
	c.waitCaughtUp(60*time.Second, 0)
	c.waitSameDigest(c.ids())
	acked.readBack(c)
}
