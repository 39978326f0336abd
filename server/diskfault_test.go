package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/internal/smalldisk"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
)

// failingSaves is a store whose Save fails, once armed, as the store's does after
// a failed fsync.
type failingSaves struct {
	*store.Store
	armed atomic.Bool
}

func (f *failingSaves) Save(savePromised bool, promised peer.Ballot, entries []peer.Entry) error {
	if f.armed.Load() {
		return fmt.Errorf("%w: save: sync %s: %w", store.ErrDiskFailed, f.Path(), syscall.EIO)
	}
	return f.Store.Save(savePromised, promised, entries)
}

// TestStorageFailureAnswersWaitingClients fails the store of a lone replica while
// writes wait for it: the loop stops with the store's error, every waiting write
// and every later request is answered at once with errStorageFailed naming the
// file (as Unavailable through the client handler), and none waits out its
// deadline.
func TestStorageFailureAnswersWaitingClients(t *testing.T) {
	st := &failingSaves{Store: openStoreT(t, t.TempDir())}
	durable, err := st.Durable()
	if err != nil {
		t.Fatal(err)
	}
	core, err := peer.New(peer.Config{ID: 1, Members: []uint64{1}, ElectionTicks: 2, HeartbeatTicks: 1, Seed: 1}, durable)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(core, st, noSender{t}, time.Millisecond, 2, testLogger(t))
	done := make(chan error, 1)
	go func() { done <- n.run(context.Background()) }()
	h := &kvHandler{node: n, self: replicas.Replica{ID: 1}, store: st,
		timeout: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 20*time.Second)
		}}
	put := func(key string) error {
		_, err := h.Put(context.Background(), 1, int64(len(key)), key, []byte("v"))
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := put("a"); err != nil; err = put("a") {
		if time.Now().After(deadline) {
			t.Fatalf("a lone replica did not take a write within 10s: %v", err)
		}
	}

	st.armed.Store(true)
	start := time.Now()
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = put(strings.Repeat("k", i+2))
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		var u *kvapi.Unavailable
		if !errors.As(err, &u) || !strings.Contains(u.Message, st.Path()) ||
			!strings.Contains(u.Message, errStorageFailed.Error()) || !strings.Contains(u.Message, "input/output error") {
			t.Errorf("write %d after the store failed: %v, want Unavailable naming %s and the error", i, err, st.Path())
		}
	}
	if took > 5*time.Second {
		t.Errorf("the writes waiting on the failed store were answered after %v", took)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrDiskFailed) {
			t.Errorf("node loop ended with %v, want ErrDiskFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node loop still runs 10s after its store failed")
	}
	// Later requests get the same answer at once.
	if _, _, err := n.read(context.Background(), "a"); !errors.Is(err, errStorageFailed) || !strings.Contains(err.Error(), st.Path()) {
		t.Errorf("read after the loop stopped: %v", err)
	}
	if _, err := n.propose(context.Background(), command.Command{Op: command.OpPut, Key: "b"}); !errors.Is(err, errStorageFailed) {
		t.Errorf("write after the loop stopped: %v", err)
	}
}

// TestSnapshotFailureIsRetriedLater makes snapshots fail (their directory is gone
// and a file stands in its way): the replica goes on taking writes, logs the
// failure, and tries again only after the back-off; once the directory is back,
// the next try succeeds.
func TestSnapshotFailureIsRetriedLater(t *testing.T) {
	policy := snapshotPolicy{everySlots: 1, everyBytes: 1 << 30, retainSlots: 1, retainBytes: 1 << 30, rewriteBytes: 1 << 30}
	dir := t.TempDir()
	n, _, files := startLoneNode(t, dir, policy)
	put := func(i int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := n.propose(ctx, command.Command{ClientID: 1, Seq: uint64(i), Op: command.OpPut, Key: "k", Value: []byte("v")}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	put(1)
	settle(t, n)
	if err := os.RemoveAll(files.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	put(2)
	settle(t, n)
	c := compactionState(t, n)
	if c.retryDelay != minSnapshotRetry || c.retryAt.IsZero() {
		t.Fatalf("after a failed snapshot: retry in %v at %v, want %v", c.retryDelay, c.retryAt, minSnapshotRetry)
	}
	// Within the back-off, applies start no snapshot.
	for i := 3; i < 10; i++ {
		put(i)
	}
	if c := compactionState(t, n); c.taking || c.retryDelay != minSnapshotRetry {
		t.Errorf("within the back-off: taking %v, retry delay %v; want no new attempt", c.taking, c.retryDelay)
	}
	if err := os.Remove(files.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(files.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The back-off ends (as if its time had passed); the next apply snapshots.
	cleared := make(chan struct{})
	n.post(func() { n.compact.retryAt = time.Time{}; close(cleared) })
	<-cleared
	put(10)
	settle(t, n)
	if c := compactionState(t, n); c.retryDelay != 0 || c.lastSnapshot != 10 {
		t.Errorf("after the back-off, with the directory back: last snapshot %d, retry delay %v; want 10, 0",
			c.lastSnapshot, c.retryDelay)
	}
}

// TestFetchOnFullDiskRemovesPartFile receives a snapshot larger than the disk:
// the transfer fails naming the part file and ENOSPC, and removes the part file
// so that the store's own writes find room again.
func TestFetchOnFullDiskRemovesPartFile(t *testing.T) {
	src, _ := sourceSnapshot(t, 4, 600<<10)
	disk := smalldisk.Mount(t, "1m")
	files, err := openSnapshotFiles(disk, openStoreT(t, t.TempDir()), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = files.fetch(context.Background(), 1, &fakeSource{t: t, snap: src})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), files.partPath(src.Index)) {
		t.Fatalf("fetch of %d bytes onto a 1 MiB disk: %v, want ENOSPC naming the part file", src.Size, err)
	}
	mustNotExist(t, files.partPath(src.Index))
}
