package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ballot-kv/ballot/peer"
)

// armedFault returns a fault that lets okAfterArming calls through once armed is
// set, then fails every call with an injected EIO.
func armedFault(armed *atomic.Bool, okAfterArming int64) func() error {
	f := &faultAfter{after: okAfterArming, armed: armed.Load, err: injectedEIO()}
	return f.check
}

// seedStore opens a store in dir with faults and gives it a promise, three
// accepted entries, two of them applied, and a configuration.
func seedStore(t *testing.T, dir string, faults diskFaults) *Store {
	t.Helper()
	s, err := Open(dir, Options{faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	entries := []peer.Entry{
		commandsEntry(t, 1, put(1, 1, "a", "1")),
		commandsEntry(t, 2, put(1, 2, "b", "2")),
		commandsEntry(t, 3, put(1, 3, "c", "3")),
	}
	if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, entries); err != nil {
		t.Fatal(err)
	}
	applyT(t, s, entries[:2]...)
	if err := s.SetConfig([]byte("config 1")); err != nil {
		t.Fatal(err)
	}
	return s
}

// durableT returns s's acceptor state.
func durableT(t *testing.T, s *Store) peer.Durable {
	t.Helper()
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// diskOps are the store's writes, each done once on a seeded store.
var diskOps = []struct {
	name string
	do   func(t *testing.T, s *Store) error
}{
	{"save", func(t *testing.T, s *Store) error {
		return s.Save(true, peer.Ballot{Round: 2, ID: 1}, []peer.Entry{commandsEntry(t, 4, put(1, 4, "d", "4"))})
	}},
	{"apply", func(t *testing.T, s *Store) error {
		_, err := s.Apply([]peer.Entry{commandsEntry(t, 3, put(1, 3, "c", "3"))})
		return err
	}},
	{"compact", func(_ *testing.T, s *Store) error { return s.Compact(2) }},
	{"drop log", func(_ *testing.T, s *Store) error { return s.DropLog() }},
	{"rebuild", func(_ *testing.T, s *Store) error { return s.SetRebuildTo(9) }},
	{"config", func(_ *testing.T, s *Store) error { return s.SetConfig([]byte("config 2")) }},
}

// checkStopped checks that every write, and the rewrites and snapshots, now fail
// with the store's first disk failure.
func checkStopped(t *testing.T, s *Store) {
	t.Helper()
	first := s.failed
	if first == nil {
		t.Fatal("the store recorded no failure")
	}
	for _, op := range diskOps {
		if err := op.do(t, s); !errors.Is(err, ErrDiskFailed) || !strings.Contains(err.Error(), first.Error()) {
			t.Errorf("%s after the failure: %v, want %v", op.name, err, first)
		}
	}
	if err := s.Rewrite(); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Rewrite after the failure: %v", err)
	}
	if _, err := s.WriteSnapshot(filepath.Join(t.TempDir(), "snap")); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("WriteSnapshot after the failure: %v", err)
	}
}

// TestWriteFaultStopsStore fails the file write of each of the store's writes in
// turn: the write fails with ErrDiskFailed naming the file and the system's
// error; memory is not ahead of the file (buntdb rolls back a transaction whose
// write failed); every later write fails the same way; and the file, opened
// again, holds exactly what was acknowledged.
func TestWriteFaultStopsStore(t *testing.T) {
	for _, op := range diskOps {
		t.Run(op.name, func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			s := seedStore(t, dir, diskFaults{write: armedFault(&armed, 0)})
			before, beforeData := durableT(t, s), state(t, s)
			beforeConfig, _ := s.Config()

			armed.Store(true)
			err := op.do(t, s)
			if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, syscall.EIO) ||
				!strings.Contains(err.Error(), "write "+s.Path()) {
				t.Fatalf("%s with a failing write: %v, want ErrDiskFailed naming write %s and EIO", op.name, err, s.Path())
			}
			// The first transaction of every write failed: nothing changed, in
			// memory or on disk.
			if got := durableT(t, s); !reflect.DeepEqual(got, before) {
				t.Errorf("memory after the failed write: %+v, want %+v", got, before)
			}
			equalState(t, state(t, s), beforeData)
			checkStopped(t, s)
			if err := s.Close(); err != nil {
				t.Errorf("Close after the failure: %v", err)
			}

			r := openT(t, dir)
			if got := durableT(t, r); !reflect.DeepEqual(got, before) {
				t.Errorf("reopened: %+v, want %+v", got, before)
			}
			equalState(t, state(t, r), beforeData)
			if cfg, _ := r.Config(); string(cfg) != string(beforeConfig) {
				t.Errorf("reopened configuration %q, want %q", cfg, beforeConfig)
			}
		})
	}
}

// TestWriteFaultInsideApply fails Apply's second transaction (the data with the
// applied slot): memory keeps the old data and applied slot, and Open completes
// the Apply from its intent, since the entries were chosen.
func TestWriteFaultInsideApply(t *testing.T) {
	for _, ok := range []int64{1} {
		dir := t.TempDir()
		var armed atomic.Bool
		s := seedStore(t, dir, diskFaults{write: armedFault(&armed, ok)})
		armed.Store(true)
		if _, err := s.Apply([]peer.Entry{commandsEntry(t, 3, put(1, 3, "c", "3"))}); !errors.Is(err, ErrDiskFailed) {
			t.Fatalf("Apply failing after %d transactions: %v", ok, err)
		}
		if v, found := get(t, s, "c"); found {
			t.Errorf("failed data write: c = %q in memory", v)
		}
		if s.Applied() != 2 {
			t.Errorf("failed Apply after %d transactions: Applied() = %d, want 2", ok, s.Applied())
		}
		checkStopped(t, s)
		_ = s.Close()
		r := openT(t, dir)
		if v, _ := get(t, r, "c"); v != "3" || r.Applied() != 3 {
			t.Errorf("reopened after Apply failed at transaction %d: c = %q, Applied() = %d; want 3, 3", ok+1, v, r.Applied())
		}
	}
}

// TestFsyncFaultStopsStore fails the fsync of each write that syncs: the write
// fails with ErrDiskFailed naming the file and the error, every later one fails
// the same way, and everything acknowledged before is in the file.
func TestFsyncFaultStopsStore(t *testing.T) {
	for _, op := range diskOps {
		if op.name == "apply" {
			continue // Apply does not sync
		}
		t.Run(op.name, func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			s := seedStore(t, dir, diskFaults{sync: armedFault(&armed, 0)})
			before, beforeData := durableT(t, s), state(t, s)
			armed.Store(true)
			err := op.do(t, s)
			if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, syscall.EIO) ||
				!strings.Contains(err.Error(), "fsync "+s.Path()) || !strings.Contains(err.Error(), errInjected.Error()) {
				t.Fatalf("%s with a failing fsync: %v, want ErrDiskFailed naming fsync %s and EIO", op.name, err, s.Path())
			}
			checkStopped(t, s)
			_ = s.Close()

			// The failed write may or may not be in the file (the kernel may or
			// may not have kept its pages); everything acknowledged before is.
			r := openT(t, dir)
			got := durableT(t, r)
			if got.Promised.Less(before.Promised) || got.Applied < before.Applied {
				t.Errorf("reopened: promised %v applied %d, want at least %v, %d", got.Promised, got.Applied, before.Promised, before.Applied)
			}
			data := state(t, r)
			for k, v := range beforeData {
				if data[k] != v {
					t.Errorf("reopened: %q = %q, want %q", k, data[k], v)
				}
			}
		})
	}
}

func TestFaultAfterCountsOnceArmed(t *testing.T) {
	trigger := filepath.Join(t.TempDir(), "fail-now")
	d := newDiskFaults(2, -1, trigger)
	if d.sync != nil {
		t.Error("a negative count made a sync fault")
	}
	for i := range 5 {
		if err := d.write(); err != nil {
			t.Fatalf("write %d before the trigger file exists: %v", i, err)
		}
	}
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		err := d.write()
		if want := i >= 2; (err != nil) != want || (want && !errors.Is(err, syscall.EIO)) {
			t.Errorf("write %d after the trigger: %v, want failure %v", i, err, want)
		}
	}
}

// TestFullDiskErrorNamesDataDirectory checks the message of a full disk: it names
// the data directory and tells the operator what to do.
func TestFullDiskErrorNamesDataDirectory(t *testing.T) {
	dir := t.TempDir()
	var armed atomic.Bool
	f := &faultAfter{armed: armed.Load, err: &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}}
	s := seedStore(t, dir, diskFaults{write: f.check})
	armed.Store(true)
	err := s.SetConfig([]byte("more"))
	if !errors.Is(err, ErrDiskFailed) || !errors.Is(err, syscall.ENOSPC) ||
		!strings.Contains(err.Error(), "data directory "+dir+" is full") {
		t.Errorf("full disk: %v, want ENOSPC naming data directory %s", err, dir)
	}
}
