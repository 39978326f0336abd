package store

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/buntdb"

	"github.com/ballot-kv/ballot/peer"
)

// crashWorkload is applied as slot 1, then slots 2-4 in one Apply call that the
// tests interrupt. It has what makes replay hard: one client with several commands
// in the interrupted range (in one slot and across slots), a retry inside a batch
// after another client's write to the same key, an older retry, removes, and
// commands of client 0.
func crashWorkload(t testing.TB) (first peer.Entry, rest []peer.Entry) {
	first = commandsEntry(t, 1, put(1, 1, "a", "1"), put(2, 1, "b", "1"), put(0, 0, "z", "0"))
	rest = []peer.Entry{
		commandsEntry(t, 2, put(1, 2, "a", "2"), put(1, 3, "c", "3"), put(2, 2, "a", "x"), put(1, 2, "a", "2")),
		noopEntry(3),
		commandsEntry(t, 4, remove(1, 4, "c"), put(3, 1, "c", "new"), put(2, 1, "b", "stale retry"),
			put(0, 0, "z", "1"), remove(2, 3, "b"), put(4, 1, "d", "d")),
	}
	return first, rest
}

// reference applies entries to a fresh store without interruption and returns the
// results of the second call and the final state.
func reference(t *testing.T, first peer.Entry, rest []peer.Entry) ([]Result, map[string]string) {
	t.Helper()
	s := openT(t, t.TempDir())
	applyT(t, s, first)
	res := applyT(t, s, rest...)
	return res, state(t, s)
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCrashAtEveryPointOfApply cuts the file at every point inside the bytes one
// Apply call wrote, as a crash that loses the tail of the file would, and checks that
// reopening (and applying again whatever is not applied) leaves exactly the state
// and results of an uninterrupted run.
func TestCrashAtEveryPointOfApply(t *testing.T) {
	first, rest := crashWorkload(t)
	wantRes, wantState := reference(t, first, rest)

	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, first)
	start := fileSize(t, s.Path())
	applyT(t, s, rest...)
	closeT(t, s)
	full, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) <= start {
		t.Fatal("Apply wrote nothing")
	}

	finished, replayed := 0, 0
	for cut := start; cut <= int64(len(full)); cut++ {
		cdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(cdir, FileName), full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(cdir, Options{})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		switch s.Applied() {
		case 4:
			finished++
		case 1:
			replayed++
			res, err := s.Apply(rest)
			if err != nil {
				t.Fatalf("cut at %d: Apply again: %v", cut, err)
			}
			equalResults(t, res, wantRes)
		default:
			t.Fatalf("cut at %d: Applied() = %d, want 1 or 4", cut, s.Applied())
		}
		equalState(t, state(t, s), wantState)
		if t.Failed() {
			t.Fatalf("cut at %d of %d (Apply's bytes start at %d)", cut, len(full), start)
		}
		_ = s.Close()
	}
	// Both outcomes must have been exercised: cuts inside the intent record replay,
	// cuts after it finish.
	if finished == 0 || replayed == 0 {
		t.Errorf("finished %d, replayed %d: the cuts did not cover both cases", finished, replayed)
	}
}

// TestCrashWithTornWrites keeps random subsets of an Apply's writes (buntdb writes a
// transaction's keys in random order, so a torn tail can keep any subset), with the
// intent on disk, and in half the trials the applied slot, which shares the
// writes' transaction: Open must complete the Apply.
func TestCrashWithTornWrites(t *testing.T) {
	first, rest := crashWorkload(t)
	_, wantState := reference(t, first, rest)
	rng := rand.New(rand.NewSource(1))
	for trial := range 30 {
		dir := t.TempDir()
		s := openT(t, dir)
		applyT(t, s, first)
		if _, err := s.apply(rest, stageIntent); err != nil {
			t.Fatal(err)
		}
		var in intent
		withApplied := trial%2 == 1
		lost := 0
		err := s.db.Update(func(tx *buntdb.Tx) error {
			v, err := tx.Get(keyIntent)
			if err != nil {
				return err
			}
			if in, err = decodeIntent(v); err != nil {
				return err
			}
			var kept []change
			for _, c := range in.Changes {
				if rng.Intn(2) == 0 {
					kept = append(kept, c)
				}
			}
			lost = len(in.Changes) - len(kept)
			if withApplied {
				if _, _, err := tx.Set(keyApplied, encodeSlot(in.To), nil); err != nil {
					return err
				}
			}
			return writeChanges(tx, kept)
		})
		if err != nil {
			t.Fatal(err)
		}
		if in.From != 2 || in.To != 4 || len(in.Changes) == 0 {
			t.Fatalf("intent covers %d-%d with %d writes", in.From, in.To, len(in.Changes))
		}
		closeT(t, s)

		logs := &logBuffer{}
		s, err = Open(dir, Options{Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		if s.Applied() != 4 {
			t.Fatalf("trial %d: Applied() = %d after reopen, want 4", trial, s.Applied())
		}
		equalState(t, state(t, s), wantState)
		if (!withApplied || lost > 0) && !strings.Contains(logs.String(), "completed an apply interrupted by a crash") {
			t.Errorf("trial %d: completion not logged: %s", trial, logs)
		}
		closeT(t, s)
	}
}

// TestReplayWithoutIntent checks the second line of defence: the data of an Apply
// reached the file but its intent and applied slot did not. Applying the slots again
// must redo each command at the position its client's record names, with the
// recorded result, and treat the in-batch retry as the duplicate it was.
func TestReplayWithoutIntent(t *testing.T) {
	first := commandsEntry(t, 1, put(1, 1, "x", "0"), put(3, 1, "y", "0"))
	rest := []peer.Entry{
		commandsEntry(t, 2, put(1, 7, "x", "1"), put(2, 3, "x", "2"), put(1, 7, "x", "1")),
		commandsEntry(t, 3, remove(3, 2, "y"), put(0, 0, "z", "q"), put(4, 1, "w", "new")),
	}
	wantRes, wantState := reference(t, first, rest)

	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, first)
	if _, err := s.apply(rest, stageData); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *buntdb.Tx) error { _, err := tx.Delete(keyIntent); return err }); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	if s.Applied() != 1 {
		t.Fatalf("Applied() = %d, want 1", s.Applied())
	}
	res := applyT(t, s, rest...)
	// Client 0 keeps no record, so its Existed is recomputed; everything else must
	// match the uninterrupted run.
	for i := range res {
		if res[i].ClientID == 0 {
			res[i].Existed, wantRes[i].Existed = false, false
		}
	}
	equalResults(t, res, wantRes)
	equalState(t, state(t, s), wantState)
	if v, _ := get(t, s, "x"); v != "2" {
		t.Errorf("x = %q, want 2 (the in-batch retry must not overwrite the other client's write)", v)
	}
}

func TestTornLastRecordIsDropped(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	entry := peer.Entry{Slot: 1, Ballot: peer.Ballot{Round: 2, ID: 1}, Kind: peer.KindCommands, Data: []byte("kept")}
	if err := s.Save(true, entry.Ballot, []peer.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	path := filepath.Join(dir, FileName)
	size := fileSize(t, path)
	// The first part of a record, as a crash in the middle of a write leaves it.
	appendFile(t, path, "*3\r\n$3\r\nset\r\n$22\r\nl/00000000000000000002\r\n$40\r\n\x01\x02")

	logs := &logBuffer{}
	s, err := Open(dir, Options{Logger: logs.logger()})
	if err != nil {
		t.Fatalf("Open with a torn last record: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, d.Entries, []peer.Entry{entry})
	if got := fileSize(t, path); got != size {
		t.Errorf("file is %d bytes after dropping the torn record, want %d", got, size)
	}
	if !strings.Contains(logs.String(), "dropped an incomplete last write") {
		t.Errorf("the dropped write was not logged: %s", logs)
	}
	// Writing after the cut must land at the end of the good data.
	e2 := peer.Entry{Slot: 2, Ballot: entry.Ballot, Kind: peer.KindNoop}
	if err := s.Save(false, peer.Ballot{}, []peer.Entry{e2}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	d, err = openT(t, dir).Durable()
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, d.Entries, []peer.Entry{entry, e2})
}

func appendFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileFailsOpen(t *testing.T) {
	// good writes a store with a few records and returns its bytes.
	good := func(t *testing.T) []byte {
		dir := t.TempDir()
		s := openT(t, dir)
		if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{noopEntry(1), noopEntry(2)}); err != nil {
			t.Fatal(err)
		}
		applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
		closeT(t, s)
		b, err := os.ReadFile(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// second returns the offset of the second record.
	second := func(b []byte) int { return bytes.Index(b[1:], []byte("*")) + 1 }
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
		msg     string
	}{
		{"record marker damaged mid-file", func(b []byte) []byte {
			b[second(b)] = 'x'
			return b
		}, "invalid database"},
		{"command name damaged mid-file", func(b []byte) []byte {
			i := bytes.Index(b, []byte("set"))
			copy(b[i:], "xet")
			return b
		}, "invalid database"},
		{"not a buntdb file", func([]byte) []byte { return []byte("hello, world\nthis is not a database\n") }, "invalid database"},
		{"empty command name (buntdb panics on it)", func(b []byte) []byte {
			return append([]byte("*1\r\n$0\r\n\r\n"), b...)
		}, "buntdb"},
		{"NUL bytes before a record", func(b []byte) []byte {
			i := second(b)
			return append(append(b[:i:i], 0, 0, 0, 0), b[i:]...)
		}, "NUL bytes at offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, tt.corrupt(good(t)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, Options{})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded on a corrupt file")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error does not wrap ErrCorrupt: %v", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not name %s and %q", err, path, tt.msg)
			}
		})
	}
}

func TestTrailingNULBytesAreHarmless(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
	closeT(t, s)
	appendFile(t, filepath.Join(dir, FileName), string(make([]byte, 4096)))

	s = openT(t, dir)
	applyT(t, s, commandsEntry(t, 2, put(1, 2, "k", "w")))
	closeT(t, s)
	s = openT(t, dir)
	if v, _ := get(t, s, "k"); v != "w" || s.Applied() != 2 {
		t.Errorf("after trailing NULs: k = %q, Applied() = %d; want w, 2", v, s.Applied())
	}
}

// TestFsyncErrorIsSticky closes the descriptor the store syncs through, so that the
// next fsync fails as a failing disk's would.
func TestFsyncErrorIsSticky(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
	if err := s.file.Close(); err != nil { // the test hook: fsync through it now fails
		t.Fatal(err)
	}
	err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{noopEntry(2)})
	if !errors.Is(err, ErrDiskFailed) || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("Save with failing fsync: got %v, want ErrDiskFailed naming %s", err, s.Path())
	}
	if err := s.Save(true, peer.Ballot{Round: 2, ID: 1}, nil); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Save after fsync failure: %v", err)
	}
	if _, err := s.Apply([]peer.Entry{commandsEntry(t, 2, put(1, 2, "k", "w"))}); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Apply after fsync failure: %v", err)
	}
	if err := s.Compact(1); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Compact after fsync failure: %v", err)
	}
	if v, _ := get(t, s, "k"); v != "v" {
		t.Errorf("refused Apply changed the data: k = %q", v)
	}
	if s.Applied() != 1 {
		t.Errorf("Applied() = %d, want 1", s.Applied())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestApplyWritesAreInTheFileBeforeSync(t *testing.T) {
	// Apply does not sync, but its writes are in the file (for the next Save's fsync
	// to cover): another open of a copy of the file sees them.
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	copyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(copyDir, FileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := openT(t, copyDir)
	if v, _ := get(t, c, "k"); v != "v" || c.Applied() != 1 {
		t.Errorf("copy: k = %q, Applied() = %d", v, c.Applied())
	}
}
