package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dataFile returns the largest regular file in dir: the replica's store.
func dataFile(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var size int64 = -1
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if info.Size() > size {
			best, size = filepath.Join(dir, e.Name()), info.Size()
		}
	}
	if best == "" {
		t.Fatalf("no data file in %s", dir)
	}
	return best
}

// writeKeys puts n keys with prefix through the Go client, failing on any error.
func writeKeys(t *testing.T, c *cluster, prefix string, n int) {
	t.Helper()
	cl := c.client(10 * time.Second)
	ctx := context.Background()
	for i := range n {
		if _, err := cl.Put(ctx, fmt.Sprintf("%s/%03d", prefix, i), fmt.Appendf(nil, "value %d", i)); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	cl.Close()
}

// TestCorruptStoreIsReported damages a record in the middle of a stopped
// replica's store: ballotd must refuse to start and name the file.
func TestCorruptStoreIsReported(t *testing.T) {
	c := newCluster(t, 1)
	c.waitLeader()
	writeKeys(t, c, "k", 50)
	if code, _ := c.stop(1, 5*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}

	path := dataFile(t, c.rep(1).dataDir)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// buntdb appends commands in the Redis protocol; break the header of one in
	// the middle of the file.
	i := bytes.Index(data[len(data)/2:], []byte("*3\r\n"))
	if i < 0 {
		t.Fatalf("no record header in the second half of %s", path)
	}
	i += len(data) / 2
	copy(data[i:], "#!")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	r := c.rep(1)
	stderr, code := runBallotd(t, "--id", "1", "--replicas", c.replicasFile, "--data", r.dataDir)
	if code == 0 {
		t.Fatalf("ballotd started on a corrupt store; stderr:\n%s", stderr)
	}
	if !strings.Contains(stderr, path) {
		t.Fatalf("ballotd's error does not name the corrupt file %s:\n%s", path, stderr)
	}
}

// TestTornTailRecovers kills a follower with SIGKILL, cuts its store in the middle
// of the last record (as a crash during a write can), and restarts it: it must
// start, catch up and hold every key.
func TestTornTailRecovers(t *testing.T) {
	const keys = 50
	c := newCluster(t, 3)
	leader := c.waitLeader()
	writeKeys(t, c, "k", keys)
	follower := others(c.ids(), leader)[0]
	c.waitCaughtUp(15*time.Second, 1)
	c.kill(follower)

	path := dataFile(t, c.rep(follower).dataDir)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-7); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, c, "more", 10)

	c.start(follower)
	c.waitCaughtUp(30*time.Second, 1)
	local := c.client(5*time.Second, follower)
	ctx := context.Background()
	for key, want := range map[string]string{
		"k/000":                       "value 0",
		fmt.Sprintf("k/%03d", keys-1): fmt.Sprintf("value %d", keys-1),
		"more/009":                    "value 9",
	} {
		if v, err := local.GetStale(ctx, key); err != nil || string(v) != want {
			t.Errorf("stale get %s on replica %d after its torn tail: %q, %v; want %q", key, follower, v, err, want)
		}
	}
}
