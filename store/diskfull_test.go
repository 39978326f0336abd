package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ballot-kv/ballot/internal/smalldisk"
	"github.com/ballot-kv/ballot/peer"
)

// TestFullDisk fills a real 1 MiB file system with Saves and Applies until one
// fails, then checks the error, that the buntdb file is intact and holds every
// acknowledged write, and that the store works again once the disk is larger.
func TestFullDisk(t *testing.T) {
	disk := smalldisk.Mount(t, "1m")
	dir := filepath.Join(disk, "data")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// After a rewrite buntdb's descriptor bears the temporary file's name; the
	// error must name the store's file all the same.
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k0001", "first")))
	if err := s.Rewrite(); err != nil {
		t.Fatal(err)
	}

	value := strings.Repeat("v", 6000)
	var saved, applied uint64
	var fault error
	for slot := uint64(2); slot <= 1000 && fault == nil; slot++ {
		e := commandsEntry(t, slot, put(1, slot, fmt.Sprintf("k%04d", slot), value))
		if fault = s.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{e}); fault != nil {
			break
		}
		saved = slot
		if _, fault = s.Apply([]peer.Entry{e}); fault == nil {
			applied = slot
		}
	}
	t.Logf("the 1 MiB disk was full after %d saved and %d applied slots: %v", saved, applied, fault)
	if fault == nil {
		t.Fatal("1000 writes of 6 KB fit on a 1 MiB disk")
	}
	if !errors.Is(fault, ErrDiskFailed) || !errors.Is(fault, syscall.ENOSPC) ||
		!strings.Contains(fault.Error(), "data directory "+dir+" is full") ||
		!strings.Contains(fault.Error(), "write "+s.Path()+": no space left on device") {
		t.Errorf("full disk: %v, want ErrDiskFailed, ENOSPC and the data directory %s", fault, dir)
	}
	if err := s.SetConfig([]byte("x")); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("write after the disk filled: %v", err)
	}
	_ = s.Close()

	// Still full: the store opens (it writes nothing unless an Apply was cut
	// short) and holds everything acknowledged.
	check := func(s *Store) {
		t.Helper()
		d := durableT(t, s)
		if len(d.Entries) == 0 || d.Entries[len(d.Entries)-1].Slot < saved {
			t.Fatalf("reopened: %d entries, want slots up to %d", len(d.Entries), saved)
		}
		if s.Applied() < applied {
			t.Errorf("reopened: Applied() = %d, want at least %d", s.Applied(), applied)
		}
		for slot := uint64(2); slot <= applied; slot++ {
			if v, _ := get(t, s, fmt.Sprintf("k%04d", slot)); v != value {
				t.Fatalf("reopened: k%04d has %d bytes, want %d", slot, len(v), len(value))
			}
		}
	}
	smalldisk.Resize(t, disk, "4m")
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after freeing space: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	check(s)
	// The store goes on where it stopped.
	next := s.Applied() + 1
	d := durableT(t, s)
	var entries []peer.Entry
	for _, e := range d.Entries {
		if e.Slot >= next {
			entries = append(entries, e)
		}
	}
	if len(entries) > 0 {
		applyT(t, s, entries...)
	}
	e := commandsEntry(t, saved+1, put(1, saved+1, "after", "space freed"))
	if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{e}); err != nil {
		t.Fatalf("Save after freeing space: %v", err)
	}
	applyT(t, s, e)
	closeT(t, s)
	check(openT(t, dir))
}

// TestRewriteAndSnapshotNeedRoom fills a real disk with a filler file until a
// second copy of the data no longer fits: Rewrite and WriteSnapshot refuse with
// ErrNoSpace naming the directory, leave nothing behind, and the store goes on.
func TestRewriteAndSnapshotNeedRoom(t *testing.T) {
	disk := smalldisk.Mount(t, "8m")
	dir := filepath.Join(disk, "data")
	s := openT(t, dir)
	value := strings.Repeat("w", 8000)
	for slot := uint64(1); slot <= 200; slot++ {
		applyT(t, s, commandsEntry(t, slot, put(1, slot, fmt.Sprintf("k%04d", slot), value)))
	}
	// Leave about half the data's size free: less than a copy and its reserve.
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(disk, "filler")
	if err := os.WriteFile(filler, make([]byte, free-800_000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Rewrite(); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Rewrite on a nearly full disk: %v, want ErrNoSpace naming %s", err, dir)
	}
	snap := filepath.Join(dir, "snap")
	if _, err := s.WriteSnapshot(snap); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dir) {
		t.Errorf("WriteSnapshot on a nearly full disk: %v, want ErrNoSpace naming %s", err, dir)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 {
		t.Errorf("files in the data directory: %v, want only the store's", left)
	}
	applyT(t, s, commandsEntry(t, 201, put(1, 201, "k0201", "small")))
	if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, nil); err != nil {
		t.Errorf("Save after the refused rewrite: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Rewrite(); err != nil {
		t.Errorf("Rewrite with room: %v", err)
	}
	if _, err := s.WriteSnapshot(snap); err != nil {
		t.Errorf("WriteSnapshot with room: %v", err)
	}
}
