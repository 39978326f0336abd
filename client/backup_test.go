package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// snapshotFile returns n reproducible pseudo-random bytes.
func snapshotFile(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// backupCalls returns the backup calls among calls.
func backupCalls(calls []kvtest.Call) []kvtest.Call {
	var out []kvtest.Call
	for _, c := range calls {
		if c.Method == "backup" {
			out = append(out, c)
		}
	}
	return out
}

func TestBackupStreamsChunks(t *testing.T) {
	file := snapshotFile(2<<20 + 777)
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 12, File: file})
	c := newClient(t, 2*time.Second, srv.Addr())

	var out bytes.Buffer
	info, err := c.Backup(context.Background(), &out)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if info.Index != 12 || info.Size != int64(len(file)) || info.Sum != sha256.Sum256(file) {
		t.Errorf("Backup = index %d, %d bytes, %x; want 12, %d, %x",
			info.Index, info.Size, info.Sum, len(file), sha256.Sum256(file))
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Fatalf("wrote %d bytes that differ from the replica's %d", out.Len(), len(file))
	}
	want := []kvtest.Call{
		{Method: "backup", Index: 0, Offset: 0, MaxBytes: 1 << 20},
		{Method: "backup", Index: 12, Offset: 1 << 20, MaxBytes: 1 << 20},
		{Method: "backup", Index: 12, Offset: 2 << 20, MaxBytes: 1 << 20},
	}
	got := backupCalls(srv.Calls())
	if len(got) != len(want) {
		t.Fatalf("backup calls %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestBackupEmptyFile(t *testing.T) {
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 1, File: []byte{}})
	c := newClient(t, time.Second, srv.Addr())
	var out bytes.Buffer
	info, err := c.Backup(context.Background(), &out)
	if err != nil || info.Size != 0 || out.Len() != 0 || info.Sum != sha256.Sum256(nil) {
		t.Errorf("Backup of an empty file = %+v, %v, %d bytes written", info, err, out.Len())
	}
}

// TestBackupAsksTheLeader: with no leader known, the replica whose status says it
// leads takes the backup, whatever the endpoint order.
func TestBackupAsksTheLeader(t *testing.T) {
	follower, leader := kvtest.Start(t), kvtest.Start(t)
	follower.SetStatus(&kvapi.ReplicaStatus{ID: 1, LeaderID: 2})
	follower.SetBackup(&kvtest.Backup{Index: 5, File: []byte("stale")})
	leader.SetStatus(&kvapi.ReplicaStatus{ID: 2, IsLeader: true, LeaderID: 2})
	leader.SetBackup(&kvtest.Backup{Index: 9, File: []byte("fresh")})
	c := newClient(t, time.Second, follower.Addr(), deadAddr(t), leader.Addr())

	var out bytes.Buffer
	info, err := c.Backup(context.Background(), &out)
	if err != nil || info.Index != 9 || out.String() != "fresh" {
		t.Fatalf("Backup = %+v, %v, wrote %q; want the leader's snapshot 9", info, err, out.String())
	}
	if n := len(backupCalls(follower.Calls())); n != 0 {
		t.Errorf("the follower got %d backup calls", n)
	}
}

// TestBackupFallsBackToNextReplica: with no leader, the first replica that
// answers status is asked, and when it cannot take a snapshot the next one is.
func TestBackupFallsBackToNextReplica(t *testing.T) {
	a, b := kvtest.Start(t), kvtest.Start(t)
	a.SetHook(func(_ context.Context, c kvtest.Call) error {
		if c.Method == "backup" {
			return &kvapi.Unavailable{Message: "disk full"}
		}
		return nil
	})
	b.SetBackup(&kvtest.Backup{Index: 3, File: []byte("from b")})
	c := newClient(t, time.Second, a.Addr(), b.Addr())
	var out bytes.Buffer
	info, err := c.Backup(context.Background(), &out)
	if err != nil || info.Index != 3 || out.String() != "from b" {
		t.Fatalf("Backup = %+v, %v, wrote %q; want b's snapshot", info, err, out.String())
	}
	if n := len(backupCalls(a.Calls())); n != 1 {
		t.Errorf("a got %d backup calls, want 1", n)
	}

	// When every replica fails, the error names each.
	b.SetBackup(nil)
	_, err = c.Backup(context.Background(), &out)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "disk full") ||
		!strings.Contains(err.Error(), b.Addr()) {
		t.Errorf("Backup with no replica able = %v; want ErrUnavailable naming both failures", err)
	}
}

func TestBackupDetectsCorruption(t *testing.T) {
	file := snapshotFile(3<<20 + 5)
	cases := map[string]*kvtest.Backup{
		"flipped byte in the second chunk": {Index: 4, File: file, Corrupt: func(offset int64, data []byte) {
			if offset == 1<<20 {
				data[100] ^= 1
			}
		}},
		"wrong checksum": {Index: 4, File: file, Sum: make([]byte, 32)},
		"short checksum": {Index: 4, File: file, Sum: make([]byte, 31)},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			srv := kvtest.Start(t)
			srv.SetBackup(b)
			c := newClient(t, 2*time.Second, srv.Addr())
			_, err := c.Backup(context.Background(), &bytes.Buffer{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), srv.Addr()) {
				t.Errorf("Backup = %v; want ErrCorrupt naming %s", err, srv.Addr())
			}
		})
	}
}

// TestBackupSnapshotDropped: a replica that no longer holds the snapshot midway
// fails the backup; nothing is started again behind the writer's back.
func TestBackupSnapshotDropped(t *testing.T) {
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 4, File: snapshotFile(2 << 20)})
	srv.SetHook(func(_ context.Context, c kvtest.Call) error {
		if c.Method == "backup" && c.Index != 0 {
			return &kvapi.Unavailable{Message: "snapshot 4 was replaced"}
		}
		return nil
	})
	c := newClient(t, time.Second, srv.Addr())
	_, err := c.Backup(context.Background(), &bytes.Buffer{})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "snapshot 4 was replaced") {
		t.Errorf("Backup = %v; want ErrUnavailable with the replica's message", err)
	}
	if n := len(backupCalls(srv.Calls())); n != 2 {
		t.Errorf("%d backup calls, want 2 (no fresh start)", n)
	}
}

// TestBackupRetriesLostConnection: a connection lost during a chunk is retried at
// the same replica, and the file still arrives whole.
func TestBackupRetriesLostConnection(t *testing.T) {
	file := snapshotFile(2<<20 + 1)
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 8, File: file})
	var dropped atomic.Bool
	srv.SetHook(func(_ context.Context, c kvtest.Call) error {
		if c.Method == "backup" && c.Offset == 1<<20 && dropped.CompareAndSwap(false, true) {
			srv.DropConns()
			return errors.New("connection lost")
		}
		return nil
	})
	c := newClient(t, 2*time.Second, srv.Addr())
	var out bytes.Buffer
	if _, err := c.Backup(context.Background(), &out); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if !bytes.Equal(out.Bytes(), file) {
		t.Errorf("file differs after a retried chunk")
	}
	if !dropped.Load() {
		t.Errorf("the connection was never dropped")
	}
}

// failingWriter fails once it has taken limit bytes.
type failingWriter struct{ n, limit int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errors.New("no space left on device")
	}
	w.n += len(p)
	return len(p), nil
}

func TestBackupWriteError(t *testing.T) {
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 2, File: snapshotFile(2 << 20)})
	c := newClient(t, time.Second, srv.Addr())
	_, err := c.Backup(context.Background(), &failingWriter{limit: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("Backup = %v; want the writer's error", err)
	}
}

func TestCheckBackupChunk(t *testing.T) {
	sum := make([]byte, 32)
	first := &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Data: make([]byte, 40)}
	cases := []struct {
		name   string
		ch     *kvapi.BackupChunk
		offset int64
		want   string // "" for a good chunk
	}{
		{"next", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 40, Data: make([]byte, 40)}, 40, ""},
		{"last", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 80, Data: make([]byte, 20)}, 80, ""},
		{"other snapshot", &kvapi.BackupChunk{Index: 6, Size: 100, Checksum: sum, Offset: 40, Data: make([]byte, 40)}, 40, "describes snapshot 6"},
		{"other size", &kvapi.BackupChunk{Index: 5, Size: 90, Checksum: sum, Offset: 40, Data: make([]byte, 40)}, 40, "describes snapshot 5 of 90 bytes"},
		{"other checksum", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: make([]byte, 31), Offset: 40, Data: make([]byte, 40)}, 40, "describes"},
		{"wrong offset", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 50, Data: make([]byte, 40)}, 40, "chunk at byte 50, asked for byte 40"},
		{"beyond the file", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 80, Data: make([]byte, 40)}, 80, "bytes 80 to 120 of a 100-byte file"},
		{"too big", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 40, Data: make([]byte, 1<<20+1)}, 40, "asked for at most"},
		{"no progress", &kvapi.BackupChunk{Index: 5, Size: 100, Checksum: sum, Offset: 40}, 40, "no bytes at byte 40"},
	}
	for _, tc := range cases {
		err := checkBackupChunk(first, tc.ch, tc.offset)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v; want ErrCorrupt saying %q", tc.name, err, tc.want)
		}
	}
	for _, bad := range []*kvapi.BackupChunk{
		{Index: 0, Size: 10, Checksum: sum},
		{Index: 1, Size: -1, Checksum: sum},
		{Index: 1, Size: 10, Checksum: sum[:16]},
	} {
		if _, err := backupInfo(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("backupInfo(%+v) = %v; want ErrCorrupt", bad, err)
		}
	}
}

func TestDigest(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, time.Second, srv.Addr())
	ctx := context.Background()
	for _, kv := range [][2]string{{"b", "22"}, {"a", "1"}} {
		if _, err := c.Put(ctx, kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	d, err := c.Digest(ctx, srv.Addr())
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	// The layout idl/kv.thrift gives: keys in order, each key and value as an
	// 8-byte big-endian length and its bytes.
	var want []byte
	for _, s := range []string{"a", "1", "b", "22"} {
		want = binary.BigEndian.AppendUint64(want, uint64(len(s)))
		want = append(want, s...)
	}
	if d.Applied != 2 || d.Keys != 2 || d.Sum != sha256.Sum256(want) {
		t.Errorf("Digest = %+v; want applied 2, 2 keys, %x", d, sha256.Sum256(want))
	}
	dead := deadAddr(t)
	if _, err := c.Digest(ctx, dead); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), dead) {
		t.Errorf("Digest(down replica) = %v, want ErrUnavailable naming %s", err, dead)
	}
	srv.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "starting"} })
	if _, err := c.Digest(ctx, srv.Addr()); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "starting") {
		t.Errorf("Digest(unavailable replica) = %v, want ErrUnavailable with its message", err)
	}
}
