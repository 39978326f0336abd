package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
	"github.com/ballot-kv/ballot/transport"
)

// testLogger sends a replica's log to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// openStoreT opens a store in dir, closed when the test ends.
func openStoreT(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// applySlots applies the slots after the store's applied slot up to slot, each
// putting a value of valueBytes under a key of its own and overwriting key "x".
func applySlots(t *testing.T, st *store.Store, to uint64, valueBytes int) {
	t.Helper()
	for slot := st.Applied() + 1; slot <= to; slot++ {
		value := bytes.Repeat([]byte{byte('a' + slot%26)}, valueBytes)
		data, err := command.EncodeBatch([]command.Command{
			{ClientID: 1, Seq: 2 * slot, Op: command.OpPut, Key: fmt.Sprintf("k%d", slot), Value: value},
			{ClientID: 2, Seq: slot, Op: command.OpPut, Key: "x", Value: []byte(fmt.Sprint(slot))},
		})
		if err != nil {
			t.Fatal(err)
		}
		e := peer.Entry{Slot: slot, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindCommands, Data: data}
		if _, err := st.Apply([]peer.Entry{e}); err != nil {
			t.Fatalf("apply slot %d: %v", slot, err)
		}
	}
}

// sourceSnapshot writes a snapshot of a new store with slots 1 to slot applied,
// and returns it with the file's bytes.
func sourceSnapshot(t *testing.T, slot uint64, valueBytes int) (store.SnapshotInfo, []byte) {
	t.Helper()
	st := openStoreT(t, t.TempDir())
	applySlots(t, st, slot, valueBytes)
	return writeSnapshotT(t, st)
}

func writeSnapshotT(t *testing.T, st *store.Store) (store.SnapshotInfo, []byte) {
	t.Helper()
	info, err := st.WriteSnapshot(filepath.Join(t.TempDir(), "source.snap"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	return info, b
}

// receiver opens the snapshot files of a new replica, with its own store.
func receiver(t *testing.T) (*snapshotFiles, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := openSnapshotFiles(dir, openStoreT(t, filepath.Join(dir, "store")), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return f, dir
}

type fetchCall struct {
	index    uint64
	offset   int64
	maxBytes int
}

// fakeSource answers fetch_snapshot from one snapshot file, as a peer would (see
// snapshotFiles.SnapshotChunk): a request for another index gets the file from
// offset 0. It is called from one goroutine at a time.
type fakeSource struct {
	t     *testing.T
	snap  store.SnapshotInfo
	chunk int // most bytes per answer; 0: as many as asked for
	// failFrom, if positive, makes call number failFrom (counting from 1) and
	// every later one fail, as a peer that went away.
	failFrom int
	// flipAt, if positive, flips the bits of the byte at this offset in transit.
	flipAt int64
	// before, if set, runs before each call is answered, with its number.
	before func(call int)
	calls  []fetchCall
}

var errPeerGone = errors.New("peer unreachable")

func (s *fakeSource) FetchSnapshot(ctx context.Context, from, index uint64, offset int64, maxBytes int) (transport.SnapshotChunk, error) {
	s.calls = append(s.calls, fetchCall{index, offset, maxBytes})
	n := len(s.calls)
	if s.before != nil {
		s.before(n)
	}
	if s.failFrom > 0 && n >= s.failFrom {
		return transport.SnapshotChunk{}, errPeerGone
	}
	if maxBytes < 1 {
		s.t.Errorf("call %d asked for %d bytes", n, maxBytes)
	}
	if s.chunk > 0 {
		maxBytes = min(maxBytes, s.chunk)
	}
	if index != s.snap.Index {
		offset = 0
	}
	ch, err := readChunk(s.snap, offset, maxBytes)
	if err != nil {
		// What the peer's handler answers reaches the caller as an
		// application exception.
		return transport.SnapshotChunk{}, thrift.NewTApplicationException(thrift.INTERNAL_ERROR, err.Error())
	}
	if s.flipAt > 0 && s.flipAt >= ch.Offset && s.flipAt < ch.Offset+int64(len(ch.Data)) {
		ch.Data[s.flipAt-ch.Offset] ^= 0xff
	}
	ch.From = 2
	return ch, nil
}

// offsets lists the (index, offset) of each call from the nth on.
func (s *fakeSource) offsets(from int) []fetchCall {
	var out []fetchCall
	for _, c := range s.calls[from:] {
		out = append(out, fetchCall{index: c.index, offset: c.offset})
	}
	return out
}

// sameSnapshot reports how got differs from want, ignoring the path.
func sameSnapshot(got, want store.SnapshotInfo) error {
	if got.Index != want.Index || got.Keys != want.Keys || got.Size != want.Size || got.Sum != want.Sum {
		return fmt.Errorf("got snapshot %d (%d keys, %d bytes, sum %x), want %d (%d keys, %d bytes, sum %x)",
			got.Index, got.Keys, got.Size, got.Sum[:4], want.Index, want.Keys, want.Size, want.Sum[:4])
	}
	return nil
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v; want it removed", filepath.Base(path), err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A snapshot larger than one fetch_snapshot answer arrives in chunks of the size
// fetch asks for, and what fetch returns is the source's snapshot, verified.
func TestFetchInChunks(t *testing.T) {
	src, want := sourceSnapshot(t, 5, 600<<10)
	if src.Size <= 2*fetchChunk {
		t.Fatalf("source snapshot of %d bytes fits in two chunks", src.Size)
	}
	files, _ := receiver(t)
	fake := &fakeSource{t: t, snap: src}
	got, err := files.fetch(context.Background(), 1, fake)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameSnapshot(got, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, got.Path), want) {
		t.Fatal("received file differs from the source's")
	}
	chunks := int((src.Size + fetchChunk - 1) / fetchChunk)
	if len(fake.calls) != chunks {
		t.Fatalf("%d calls for %d bytes; want %d", len(fake.calls), src.Size, chunks)
	}
	for i, c := range fake.calls {
		want := fetchCall{index: src.Index, offset: int64(i) * fetchChunk, maxBytes: fetchChunk}
		if i == 0 {
			want.index = 0 // nothing received yet: whatever the peer has
		}
		if c != want {
			t.Errorf("call %d: %+v, want %+v", i, c, want)
		}
	}
}

// A transfer that fails part-way keeps what arrived, and the next fetch asks for
// the rest only.
func TestFetchResumes(t *testing.T) {
	src, want := sourceSnapshot(t, 20, 300)
	const chunk, k = 1000, 3
	if src.Size <= (k+2)*chunk {
		t.Fatalf("source snapshot of %d bytes is too small for the test", src.Size)
	}
	files, _ := receiver(t)
	fake := &fakeSource{t: t, snap: src, chunk: chunk, failFrom: k + 1}
	if _, err := files.fetch(context.Background(), 1, fake); !errors.Is(err, errPeerGone) {
		t.Fatalf("fetch from a peer that fails: %v; want %v", err, errPeerGone)
	}
	part := files.partPath(src.Index)
	if size := fileSize(t, part); size != k*chunk {
		t.Fatalf("part file holds %d bytes after %d chunks of %d", size, k, chunk)
	}

	fake.failFrom = 0
	done := len(fake.calls)
	got, err := files.fetch(context.Background(), 1, fake)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameSnapshot(got, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, got.Path), want) {
		t.Fatal("resumed file differs from the source's")
	}
	resumed := fake.offsets(done)
	for i, c := range resumed {
		if w := (fetchCall{src.Index, int64(k+i) * chunk, 0}); c != w {
			t.Fatalf("resumed calls %+v: call %d is %+v, want %+v", resumed, i, c, w)
		}
	}
}

// A replica that restarts part-way through a transfer resumes it from the part
// file its previous run left.
func TestFetchResumesAfterRestart(t *testing.T) {
	src, want := sourceSnapshot(t, 20, 300)
	const chunk, k = 1000, 2
	files, dir := receiver(t)
	fake := &fakeSource{t: t, snap: src, chunk: chunk, failFrom: k + 1}
	if _, err := files.fetch(context.Background(), 1, fake); err == nil {
		t.Fatal("fetch from a failing peer succeeded")
	}

	reopened, err := openSnapshotFiles(dir, files.store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Latest().Index != 0 {
		t.Fatalf("a part file was taken for a complete snapshot: %+v", reopened.Latest())
	}
	fake.failFrom = 0
	done := len(fake.calls)
	got, err := reopened.fetch(context.Background(), 1, fake)
	if err != nil {
		t.Fatal(err)
	}
	if first := fake.offsets(done)[0]; first != (fetchCall{src.Index, k * chunk, 0}) {
		t.Fatalf("after a restart the transfer asked for %+v; want snapshot %d from %d", first, src.Index, k*chunk)
	}
	if err := sameSnapshot(got, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, got.Path), want) {
		t.Fatal("resumed file differs from the source's")
	}
}

// When the peer moves on to a newer snapshot mid-transfer, the transfer starts
// again from offset 0 of the new one and the old part is removed.
func TestFetchRestartsOnNewerSnapshot(t *testing.T) {
	st := openStoreT(t, t.TempDir())
	applySlots(t, st, 20, 300)
	old, _ := writeSnapshotT(t, st)
	applySlots(t, st, 30, 300)
	newer, want := writeSnapshotT(t, st)

	const chunk, k = 1000, 2
	files, _ := receiver(t)
	oldPart := files.partPath(old.Index)
	fake := &fakeSource{t: t, snap: old, chunk: chunk}
	fake.before = func(call int) {
		if call == k+1 {
			if size := fileSize(t, oldPart); size != k*chunk {
				t.Errorf("part of snapshot %d holds %d bytes after %d chunks", old.Index, size, k)
			}
			fake.snap = newer
		}
	}
	got, err := files.fetch(context.Background(), 1, fake)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameSnapshot(got, newer); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileBytes(t, got.Path), want) {
		t.Fatal("received file differs from the newer snapshot")
	}
	mustNotExist(t, oldPart)
	after := fake.offsets(k)
	if after[0] != (fetchCall{old.Index, k * chunk, 0}) {
		t.Fatalf("call %d: %+v; want the old snapshot at %d", k+1, after[0], k*chunk)
	}
	for i, c := range after[1:] {
		if w := (fetchCall{newer.Index, int64(i+1) * chunk, 0}); c != w {
			t.Fatalf("calls after the switch %+v: %+v, want %+v", after, c, w)
		}
	}
}

// A file that does not match the SHA-256 its sender announced, or that matches
// it but is no valid snapshot, is removed and not returned.
func TestFetchRejectsDamage(t *testing.T) {
	src, data := sourceSnapshot(t, 20, 300)

	// A file whose checksum its sender computed after it was damaged: the SHA-256
	// matches, the snapshot's own checksum does not.
	damaged := append([]byte(nil), data...)
	damaged[len(damaged)/2] ^= 0xff
	badPath := filepath.Join(t.TempDir(), "damaged.snap")
	if err := os.WriteFile(badPath, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := src
	bad.Path, bad.Sum = badPath, sha256.Sum256(damaged)

	// A valid snapshot announced under another slot.
	relabelled := src
	relabelled.Index = src.Index + 5

	cases := []struct {
		name string
		fake *fakeSource
		want string
	}{
		{"bits flipped in transit", &fakeSource{snap: src, chunk: 1000, flipAt: 1500}, "SHA-256"},
		{"damaged at the sender", &fakeSource{snap: bad, chunk: 1000}, store.ErrCorrupt.Error()},
		{"announced as another slot", &fakeSource{snap: relabelled, chunk: 1000}, "holds slot"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files, _ := receiver(t)
			tc.fake.t = t
			got, err := files.fetch(context.Background(), 1, tc.fake)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fetch: %v; want an error mentioning %q", err, tc.want)
			}
			if got != (store.SnapshotInfo{}) {
				t.Errorf("fetch returned %+v with its error", got)
			}
			mustNotExist(t, files.partPath(tc.fake.snap.Index))
			if index, size := files.partial(); index != 0 || size != 0 {
				t.Errorf("a transfer to resume is left: snapshot %d, %d bytes", index, size)
			}
		})
	}
}

// takeAt applies slots up to slot and writes a snapshot straight into the
// snapshot directory, as an earlier run would have left it.
func takeAt(t *testing.T, st *store.Store, dir string, slot uint64) store.SnapshotInfo {
	t.Helper()
	applySlots(t, st, slot, 100)
	info, err := st.WriteSnapshot(snapPath(dir, slot))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Opening the snapshot directory keeps the two newest complete snapshots and a
// transfer to resume, and removes older snapshots, temporary files and a
// damaged snapshot, which it logs.
func TestOpenSnapshotFiles(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, snapshotDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := openStoreT(t, filepath.Join(dataDir, "store"))
	s3 := takeAt(t, st, dir, 3)
	s5 := takeAt(t, st, dir, 5)
	s8 := takeAt(t, st, dir, 8)
	s9 := takeAt(t, st, dir, 9)
	// The newest by name is damaged: it must not become the latest.
	damaged := snapPath(dir, 12)
	b := fileBytes(t, s9.Path)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stray := []string{"writing.snap.new", "writing.snap.new.tmp", "notes.txt"}
	for _, name := range stray {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	part := filepath.Join(dir, fmt.Sprintf("%s%020d%s", partPrefix, 40, partSuffix))
	if err := os.WriteFile(part, []byte("first bytes"), 0o644); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	f, err := openSnapshotFiles(dataDir, st, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Latest(); got != s9 {
		t.Errorf("latest %+v, want %+v", got, s9)
	}
	if got := f.lookup(8); got != s8 {
		t.Errorf("previous %+v, want %+v", got, s8)
	}
	want := []string{filepath.Base(s8.Path), filepath.Base(s9.Path), filepath.Base(part)}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want %q", got, want)
	}
	for _, old := range []store.SnapshotInfo{s3, s5} {
		if got := f.lookup(old.Index); got.Index == old.Index {
			t.Errorf("snapshot %d is still served", old.Index)
		}
	}
	if !strings.Contains(logs.String(), "damaged") || !strings.Contains(logs.String(), damaged) {
		t.Errorf("log does not name the damaged snapshot %s:\n%s", damaged, logs.String())
	}
	if index, size := f.partial(); index != 40 || size != int64(len("first bytes")) {
		t.Errorf("transfer to resume: snapshot %d, %d bytes; want 40, %d", index, size, len("first bytes"))
	}
}

// SnapshotChunk serves peers: index 0 and an index no longer held get the latest
// from offset 0, the previous snapshot is still served where asked, and a
// replica with no snapshot takes one.
func TestSnapshotChunk(t *testing.T) {
	dataDir := t.TempDir()
	st := openStoreT(t, filepath.Join(dataDir, "store"))
	applySlots(t, st, 4, 200)
	f, err := openSnapshotFiles(dataDir, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(what string, ch transport.SnapshotChunk, want store.SnapshotInfo, offset int64, n int) {
		t.Helper()
		data := fileBytes(t, want.Path)
		end := min(offset+int64(n), want.Size)
		if ch.Index != want.Index || ch.Size != want.Size || ch.Sum != want.Sum || ch.Offset != offset ||
			!bytes.Equal(ch.Data, data[offset:end]) {
			t.Fatalf("%s: snapshot %d, %d bytes at %d of %d; want snapshot %d, bytes %d to %d of %d",
				what, ch.Index, len(ch.Data), ch.Offset, ch.Size, want.Index, offset, end, want.Size)
		}
	}

	if f.Latest().Index != 0 {
		t.Fatalf("a new directory has snapshot %d", f.Latest().Index)
	}
	ch, err := f.SnapshotChunk(ctx, 2, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	first := f.Latest()
	if first.Index != 4 {
		t.Fatalf("no snapshot taken for the first request: latest %+v", first)
	}
	check("first request", ch, first, 0, 100)

	applySlots(t, st, 7, 200)
	second, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	ch, err = f.SnapshotChunk(ctx, 2, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("index 0", ch, second, 0, 100)
	ch, err = f.SnapshotChunk(ctx, 2, first.Index, 150, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("previous snapshot", ch, first, 150, 100)
	ch, err = f.SnapshotChunk(ctx, 2, second.Index, second.Size-10, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("last bytes", ch, second, second.Size-10, 100)
	ch, err = f.SnapshotChunk(ctx, 2, second.Index, second.Size, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("end of file", ch, second, second.Size, 100)

	applySlots(t, st, 9, 200)
	third, err := f.take()
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, first.Path)
	ch, err = f.SnapshotChunk(ctx, 2, first.Index, 150, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("snapshot no longer held", ch, third, 0, 100)
	ch, err = f.SnapshotChunk(ctx, 2, 12345, 150, 100)
	if err != nil {
		t.Fatal(err)
	}
	check("unknown snapshot", ch, third, 0, 100)
}

// backupHandler is a client handler with what Backup needs.
func backupHandler(t *testing.T) (*kvHandler, *store.Store) {
	t.Helper()
	dataDir := t.TempDir()
	st := openStoreT(t, filepath.Join(dataDir, "store"))
	applySlots(t, st, 6, 500)
	f, err := openSnapshotFiles(dataDir, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return &kvHandler{self: replicas.Replica{ID: 1}, snaps: f, store: st, dataDir: dataDir}, st
}

func TestBackupArguments(t *testing.T) {
	h, _ := backupHandler(t)
	ctx := context.Background()
	first, err := h.Backup(ctx, 0, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		index, offset int64
		maxBytes      int32
		field         string
		limit         int64
	}{
		{"negative index", -1, 0, 10, "index", 0},
		{"negative offset", first.Index, -5, 10, "offset", 0},
		{"index 0 past the start", 0, 10, 10, "offset", 0},
		{"zero max_bytes", first.Index, 0, 0, "max_bytes", 1},
		{"negative max_bytes", 0, 0, -3, "max_bytes", 1},
		{"offset beyond the file", first.Index, first.Size + 1, 10, "offset", first.Size},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Backup(ctx, tc.index, tc.offset, tc.maxBytes)
			var ia *kvapi.InvalidArgument
			if !errors.As(err, &ia) || ia.Field != tc.field || ia.Limit != tc.limit {
				t.Fatalf("got %v; want InvalidArgument on %s with limit %d", err, tc.field, tc.limit)
			}
		})
	}

	// Snapshots taken since push the first out: it is gone, and the client must
	// start again.
	for range 2 {
		applySlots(t, h.snaps.store, h.snaps.store.Applied()+1, 10)
		if _, err := h.Backup(ctx, 0, 0, 10); err != nil {
			t.Fatal(err)
		}
	}
	for _, index := range []int64{first.Index, 999} {
		_, err = h.Backup(ctx, index, 10, 10)
		var un *kvapi.Unavailable
		if !errors.As(err, &un) || !strings.Contains(un.Message, "index 0") {
			t.Errorf("backup of snapshot %d, no longer held: %v; want Unavailable telling to start with index 0", index, err)
		}
	}
}

// A backup read chunk by chunk through Backup is the snapshot file, and its
// checksum is the file's SHA-256.
func TestBackupReadsWholeSnapshot(t *testing.T) {
	h, st := backupHandler(t)
	ctx := context.Background()
	const maxBytes = 97
	ch, err := h.Backup(ctx, 0, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Index != int64(st.Applied()) || ch.Offset != 0 {
		t.Fatalf("first chunk: snapshot %d at %d; want snapshot %d at 0", ch.Index, ch.Offset, st.Applied())
	}
	var got []byte
	for {
		if len(ch.Data) > maxBytes {
			t.Fatalf("chunk of %d bytes; asked for at most %d", len(ch.Data), maxBytes)
		}
		got = append(got, ch.Data...)
		if int64(len(got)) >= ch.Size {
			break
		}
		next, err := h.Backup(ctx, ch.Index, int64(len(got)), maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if next.Index != ch.Index || next.Size != ch.Size || !bytes.Equal(next.Checksum, ch.Checksum) ||
			next.Offset != int64(len(got)) || len(next.Data) == 0 {
			t.Fatalf("chunk at %d: snapshot %d at %d with %d bytes", len(got), next.Index, next.Offset, len(next.Data))
		}
		ch = next
	}
	want := fileBytes(t, h.snaps.Latest().Path)
	if !bytes.Equal(got, want) {
		t.Fatalf("backup of %d bytes differs from the %d-byte snapshot file", len(got), len(want))
	}
	if sum := sha256.Sum256(got); !bytes.Equal(sum[:], ch.Checksum) {
		t.Fatalf("checksum %x, the data's SHA-256 is %x", ch.Checksum, sum)
	}
	if info, err := store.ReadSnapshotInfo(h.snaps.Latest().Path); err != nil || info.Index != st.Applied() {
		t.Fatalf("backup file: %+v, %v", info, err)
	}
}

// rewriteRecorder is a store that records the file size before and after each
// rewrite.
type rewriteRecorder struct {
	*store.Store
	mu       sync.Mutex // guards rewrites
	rewrites [][2]int64
}

func (r *rewriteRecorder) Rewrite() error {
	before := r.FileSize()
	err := r.Store.Rewrite()
	if err == nil {
		r.mu.Lock()
		r.rewrites = append(r.rewrites, [2]int64{before, r.FileSize()})
		r.mu.Unlock()
	}
	return err
}

func (r *rewriteRecorder) done() [][2]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]int64(nil), r.rewrites...)
}

// noSender is the network of a cluster of one.
type noSender struct{ t *testing.T }

func (s noSender) Send(m peer.Message) { s.t.Errorf("a replica alone sent %v to %d", m.Type, m.To) }

// startLoneNode runs the node of a one-replica cluster on a store in dataDir with
// policy, and waits until it leads.
func startLoneNode(t *testing.T, dataDir string, policy snapshotPolicy) (*node, *rewriteRecorder, *snapshotFiles) {
	t.Helper()
	return startLoneNodeWith(t, dataDir, policy, func(*node) {})
}

// startLoneNodeWith is startLoneNode with configure run on the node before its
// loop starts.
func startLoneNodeWith(t *testing.T, dataDir string, policy snapshotPolicy,
	configure func(*node)) (*node, *rewriteRecorder, *snapshotFiles) {
	t.Helper()
	st := &rewriteRecorder{Store: openStoreT(t, filepath.Join(dataDir, "store"))}
	durable, err := st.Durable()
	if err != nil {
		t.Fatal(err)
	}
	core, err := peer.New(peer.Config{ID: 1, Members: []uint64{1}, ElectionTicks: 2, HeartbeatTicks: 1, Seed: 1}, durable)
	if err != nil {
		t.Fatal(err)
	}
	files, err := openSnapshotFiles(dataDir, st.Store, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(core, st, noSender{t}, time.Millisecond, 2, testLogger(t))
	n.compact = &compaction{
		policy:       policy,
		files:        files,
		lastSnapshot: max(files.Latest().Index, durable.Compacted),
		rewrittenAt:  st.FileSize(),
		fetcher:      func(uint64) snapshotFetcher { return nil },
	}
	configure(n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node loop: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !n.status().IsLeader {
		if time.Now().After(deadline) {
			t.Fatal("a replica alone did not lead within 10s")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return n, st, files
}

// compactionState reads the node's compaction state on its loop.
func compactionState(t *testing.T, n *node) compaction {
	t.Helper()
	ch := make(chan compaction, 1)
	n.post(func() { ch <- *n.compact })
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the node loop did not answer within 10s")
		return compaction{}
	}
}

// settle waits until no snapshot is being taken.
func settle(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for compactionState(t, n).taking {
		if time.Now().After(deadline) {
			t.Fatal("a snapshot was still being taken after 10s")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// As writes go on, a replica snapshots every few slots, keeps the two latest
// snapshots, compacts its log to a few slots below the latest, and rewrites its
// store file once it has grown, so the log and the file stay small.
func TestCompactionPolicy(t *testing.T) {
	policy := snapshotPolicy{everySlots: 5, everyBytes: 1 << 30, retainSlots: 2, retainBytes: 1 << 30, rewriteBytes: 32 << 10}
	dataDir := t.TempDir()
	n, st, files := startLoneNode(t, dataDir, policy)
	value := bytes.Repeat([]byte("v"), 1<<10)
	var snaps []string
	deadline := time.Now().Add(30 * time.Second)
	for writes := 1; ; writes++ {
		// A few keys overwritten: the data stays small while the file grows.
		putOverwriting(t, n, writes, value)
		// One write at a time and no snapshot running: then the log holds the
		// slots retained below the last snapshot and those applied since, fewer
		// than everySlots, or a snapshot would have been taken.
		settle(t, n)
		if got, limit := st.LogEntries(), int(policy.retainSlots+policy.everySlots); got > limit {
			t.Fatalf("after write %d the log holds %d entries (applied %d, compacted %d); want at most %d",
				writes, got, st.Applied(), st.Compacted(), limit)
		}
		snaps = nil
		for _, name := range dirNames(t, filepath.Join(dataDir, snapshotDirName)) {
			if strings.HasSuffix(name, snapSuffix) {
				snaps = append(snaps, name)
			}
		}
		if writes >= 100 && len(snaps) == 2 && len(st.done()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d writes in 30s: snapshots %q, compacted to %d of %d applied, %d rewrites",
				writes, snaps, st.Compacted(), st.Applied(), len(st.done()))
		}
	}
	latest := files.Latest()
	if want := filepath.Base(latest.Path); snaps[1] != want {
		t.Errorf("snapshot files %q; the latest is %s", snaps, want)
	}
	if info, err := store.ReadSnapshotInfo(latest.Path); err != nil || info != latest {
		t.Errorf("latest snapshot file: %+v, %v; want %+v", info, err, latest)
	}
	if c, want := st.Compacted(), latest.Index-policy.retainSlots; c != want {
		t.Errorf("compacted to %d; want %d, %d slots below snapshot %d", c, want, policy.retainSlots, latest.Index)
	}
	if c := n.status().Compacted; c != st.Compacted() {
		t.Errorf("the core compacted to %d, the store to %d", c, st.Compacted())
	}
	rewrites := st.done()
	for i, rw := range rewrites {
		if rw[0] < policy.rewriteBytes || rw[1] >= rw[0] {
			t.Errorf("rewrite from %d to %d bytes; want it only past %d bytes, and smaller after",
				rw[0], rw[1], policy.rewriteBytes)
		}
		if i > 0 && rw[0] < 2*rewrites[i-1][1] {
			t.Errorf("rewrite from %d bytes, less than twice the %d bytes the one before left", rw[0], rewrites[i-1][1])
		}
	}
}

// putOverwriting writes value as client 9's write number seq, to one of four keys.
func putOverwriting(t *testing.T, n *node, seq int, value []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := n.propose(ctx, command.Command{ClientID: 9, Seq: uint64(seq), Op: command.OpPut,
		Key: fmt.Sprintf("k%d", seq%4), Value: value})
	if err != nil {
		t.Fatalf("write %d: %v", seq, err)
	}
}

// With big entries the log kept below a snapshot is bounded by its bytes, not
// only by its slots: each rewrite of the store file copies it.
func TestCompactionKeepsNoMoreThanRetainBytes(t *testing.T) {
	const slotBytes = 1 << 10
	policy := snapshotPolicy{everySlots: 5, everyBytes: 1 << 30, retainSlots: 50, retainBytes: 3*slotBytes + slotBytes/2,
		rewriteBytes: 1 << 30}
	n, st, files := startLoneNode(t, t.TempDir(), policy)
	value := bytes.Repeat([]byte("v"), slotBytes)
	for writes := 1; files.Latest().Index < 20; writes++ {
		if writes > 200 {
			t.Fatalf("no snapshot past slot 20 after %d writes (latest %+v)", writes, files.Latest())
		}
		putOverwriting(t, n, writes, value)
		settle(t, n)
	}
	// Each slot carries one command of a little more than slotBytes: three fit
	// in retainBytes, four do not, and fifty would by the slot bound alone.
	if kept := files.Latest().Index - st.Compacted(); kept != 3 {
		t.Errorf("compacted to %d below snapshot %d: %d slots kept, want 3", st.Compacted(), files.Latest().Index, kept)
	}
}

// A backup (or a peer's transfer) in progress survives another backup taken at
// the same applied slot after the log was compacted: a snapshot's header records
// the compacted slot, so a new one would differ from the file being read.
func TestBackupSurvivesSecondBackupAtSameSlot(t *testing.T) {
	h, st := backupHandler(t)
	ctx := context.Background()
	const maxBytes = 64
	first, err := h.Backup(ctx, 0, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Compact(st.Applied() - 1); err != nil {
		t.Fatal(err)
	}
	second, err := h.Backup(ctx, 0, 0, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if second.Index != first.Index {
		t.Fatalf("second backup at snapshot %d, the first at %d: the test needs the same slot", second.Index, first.Index)
	}
	got := append([]byte(nil), first.Data...)
	for int64(len(got)) < first.Size {
		ch, err := h.Backup(ctx, first.Index, int64(len(got)), maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Size != first.Size || !bytes.Equal(ch.Checksum, first.Checksum) {
			t.Fatalf("at offset %d the backup became %d bytes with checksum %x; it began as %d bytes, checksum %x",
				len(got), ch.Size, ch.Checksum[:4], first.Size, first.Checksum[:4])
		}
		got = append(got, ch.Data...)
	}
	if sum := sha256.Sum256(got); !bytes.Equal(sum[:], first.Checksum) {
		t.Fatalf("the backup's bytes have SHA-256 %x; its checksum is %x", sum[:4], first.Checksum[:4])
	}
}

// A part file that does not fit the peer's copy of the snapshot (longer than it:
// a file of the same slot from another replica) is discarded and the transfer
// starts over, instead of failing the same way on every attempt.
func TestFetchRestartsUnfitPart(t *testing.T) {
	src, want := sourceSnapshot(t, 20, 300)
	files, _ := receiver(t)
	if err := os.WriteFile(files.partPath(src.Index), make([]byte, src.Size+100), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := &fakeSource{t: t, snap: src, chunk: 1000}
	got, err := files.fetch(context.Background(), 1, fake)
	if err != nil {
		t.Fatalf("fetch with a part file longer than the snapshot: %v", err)
	}
	if !bytes.Equal(fileBytes(t, got.Path), want) {
		t.Fatal("fetched file differs from the source's")
	}
	if c := fake.calls[1]; c.offset != 0 {
		t.Fatalf("after the refused resume the transfer asked for offset %d, want 0", c.offset)
	}
}
