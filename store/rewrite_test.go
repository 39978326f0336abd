package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/peer"
)

// history gives s a long history over little data: 300 slots, each saved and
// applied, overwriting five keys with 200-byte values, by three clients; then the
// first 250 slots compacted.
func history(t testing.TB, s *Store) {
	t.Helper()
	for slot := uint64(1); slot <= 300; slot++ {
		e := commandsEntry(t, slot, put(slot%3+1, slot, fmt.Sprintf("k%d", slot%5), strings.Repeat(fmt.Sprint(slot%10), 200)))
		e.Ballot = peer.Ballot{Round: 1 + slot/100, ID: 2}
		if err := s.Save(true, e.Ballot, []peer.Entry{e}); err != nil {
			t.Fatal(err)
		}
		applyT(t, s, e)
	}
	if err := s.Compact(250); err != nil {
		t.Fatal(err)
	}
}

// liveSize is the size of a file holding exactly the store's records.
func liveSize(t testing.TB, s *Store) int64 {
	t.Helper()
	var n int64
	for k, v := range records(t, s) {
		n += int64(len(appendSet(nil, k, v)))
	}
	return n
}

func counts(s *Store) string {
	return fmt.Sprintf("applied %d, compacted %d, keys %d, log entries %d",
		s.Applied(), s.Compacted(), s.Keys(), s.LogEntries())
}

func TestRewriteShrinksAndKeepsEveryRecord(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	history(t, s)
	before, beforeCounts, sizeBefore := records(t, s), counts(s), s.FileSize()
	bound := liveSize(t, s)
	if sizeBefore < 10*bound {
		t.Fatalf("the history is too short to test a rewrite: %d bytes, %d live", sizeBefore, bound)
	}
	want, _ := get(t, s, "k3")

	// Readers run throughout; the rewrite waits until they have made progress, so
	// that they overlap it.
	var (
		reads atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, 8)
		done  = make(chan struct{})
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				v, ok, err := s.Get("k3")
				if err == nil && (!ok || string(v) != want) {
					err = fmt.Errorf("Get(k3) = %q, %v during the rewrite", v, ok)
				}
				if err == nil {
					_, err = s.Durable()
				}
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	s.beforeSwap = func(string) error {
		from, deadline := reads.Load(), time.Now().Add(10*time.Second)
		for reads.Load() < from+100 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	err := s.Rewrite()
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if size := s.FileSize(); size > bound {
		t.Errorf("file is %d bytes after Rewrite (%d before), want at most %d", size, sizeBefore, bound)
	}
	equalState(t, records(t, s), before)
	if c := counts(s); c != beforeCounts {
		t.Errorf("after Rewrite: %s; before: %s", c, beforeCounts)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}

	// The store writes to the new file, and a reopen finds everything.
	applyT(t, s, commandsEntry(t, 301, put(1, 1000, "after", "rewrite")))
	closeT(t, s)
	s = openT(t, dir)
	after := records(t, s)
	if v := after[dataKey("after")]; v != "rewrite" {
		t.Errorf("write after Rewrite lost: %q", v)
	}
	for _, k := range []string{dataKey("after"), clientKey(1), keyApplied, keyIntent} {
		delete(after, k)
		delete(before, k)
	}
	equalState(t, after, before)
}

// TestRewriteCatchesUpWritesMadeMeanwhile writes to the store while the new file is
// built: those writes must be in it.
func TestRewriteCatchesUpWritesMadeMeanwhile(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	history(t, s)
	var want map[string]string
	s.beforeSwap = func(string) error {
		e := commandsEntry(t, 301, put(1, 500, "k1", "new"), remove(2, 500, "k2"), put(4, 1, "fresh", "x"))
		e.Ballot = peer.Ballot{Round: 9, ID: 1}
		if err := s.Save(true, e.Ballot, []peer.Entry{e, noopEntry(302)}); err != nil {
			return err
		}
		if _, err := s.Apply([]peer.Entry{e}); err != nil {
			return err
		}
		if err := s.Compact(280); err != nil {
			return err
		}
		want = records(t, s)
		return nil
	}
	if err := s.Rewrite(); err != nil {
		t.Fatal(err)
	}
	equalState(t, records(t, s), want)
	if s.Applied() != 301 || s.Compacted() != 280 || s.LogEntries() != 22 {
		t.Errorf("after Rewrite: %s; want applied 301, compacted 280, log entries 22", counts(s))
	}
	closeT(t, s)
	s = openT(t, dir)
	equalState(t, records(t, s), want)
}

// TestRewriteCatchesUpInTwoSteps: a rewrite replays most of what the store's file
// gained meanwhile before it takes the lock writers need, then the rest with it.
// Writes of both stretches must be in the new file, in order.
func TestRewriteCatchesUpInTwoSteps(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	history(t, s)
	var tmpFile string
	s.beforeSwap = func(tmp string) error {
		tmpFile = tmp
		_, err := s.Apply([]peer.Entry{commandsEntry(t, 301, put(1, 500, "k1", "first-stretch"), put(4, 1, "gone", "x"))})
		return err
	}
	var want map[string]string
	caughtUp := false
	s.afterCatchUp = func() error {
		caughtUp = true
		b, err := os.ReadFile(tmpFile)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "first-stretch") {
			t.Error("the new file lacks the first stretch's write before the lock is taken")
		}
		e := commandsEntry(t, 302, put(1, 501, "k1", "second-stretch"), remove(4, 2, "gone"))
		if _, err := s.Apply([]peer.Entry{e}); err != nil {
			return err
		}
		if err := s.Compact(290); err != nil {
			return err
		}
		want = records(t, s)
		return nil
	}
	if err := s.Rewrite(); err != nil {
		t.Fatal(err)
	}
	if !caughtUp {
		t.Fatal("the rewrite did not catch up before taking the lock")
	}
	equalState(t, records(t, s), want)
	if v, _ := get(t, s, "k1"); v != "second-stretch" {
		t.Errorf("k1 = %q after the rewrite, want second-stretch", v)
	}
	if _, ok := get(t, s, "gone"); ok {
		t.Error("a key deleted in the second stretch is back after the rewrite")
	}
	closeT(t, s)
	s = openT(t, dir)
	equalState(t, records(t, s), want)
	if s.Applied() != 302 || s.Compacted() != 290 {
		t.Errorf("after reopen: %s; want applied 302, compacted 290", counts(s))
	}
}

// TestRewriteAfterTrailingNULBytes: buntdb writes over NUL bytes at the end of the
// file without growing it, so unless Open cuts them, a rewrite would miss writes
// made while it builds the new file.
func TestRewriteAfterTrailingNULBytes(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
	closeT(t, s)
	size := fileSize(t, filepath.Join(dir, FileName))
	appendFile(t, filepath.Join(dir, FileName), string(make([]byte, 4096)))

	logs := &logBuffer{}
	s, err := Open(dir, Options{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.FileSize() != size || !strings.Contains(logs.String(), "cut NUL bytes") {
		t.Errorf("after Open: %d bytes, want %d; log: %s", s.FileSize(), size, logs)
	}
	s.beforeSwap = func(string) error {
		_, err := s.Apply([]peer.Entry{commandsEntry(t, 2, put(1, 2, "k", "meanwhile"))})
		return err
	}
	if err := s.Rewrite(); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	if v, _ := get(t, s, "k"); v != "meanwhile" || s.Applied() != 2 {
		t.Errorf("k = %q, Applied() = %d; want meanwhile, 2", v, s.Applied())
	}
}

// TestCrashBeforeRenameKeepsOldState leaves the new file of a rewrite or install
// behind, complete or cut short, as a crash before the rename would: Open must
// remove it and open the old state.
func TestCrashBeforeRenameKeepsOldState(t *testing.T) {
	src := sourceStore(t)
	var noops []peer.Entry
	for slot := uint64(11); slot <= 400; slot++ { // above the history's slots
		noops = append(noops, noopEntry(slot))
	}
	applyT(t, src, noops...)
	snap := writeSnapshotT(t, src)
	errCrash := errors.New("crash")
	tests := []struct {
		name string
		run  func(s *Store) error
	}{
		{"rewrite", func(s *Store) error { return s.Rewrite() }},
		{"install", func(s *Store) error { _, err := s.InstallSnapshot(snap.Path); return err }},
	}
	for _, tt := range tests {
		for _, cut := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cut=%v", tt.name, cut), func(t *testing.T) {
				dir := t.TempDir()
				s := openT(t, dir)
				history(t, s)
				before, beforeCounts, size := records(t, s), counts(s), s.FileSize()
				var left []byte
				s.beforeSwap = func(tmp string) error {
					b, err := os.ReadFile(tmp)
					if err != nil {
						return err
					}
					if cut {
						b = b[:len(b)/2]
					}
					left = b
					return errCrash
				}
				if err := tt.run(s); !errors.Is(err, errCrash) {
					t.Fatalf("got %v, want the simulated crash", err)
				}
				equalState(t, records(t, s), before)
				closeT(t, s)
				tmp := filepath.Join(dir, tmpFileName)
				if len(left) == 0 {
					t.Fatal("no new file was built")
				}
				if err := os.WriteFile(tmp, left, 0o644); err != nil {
					t.Fatal(err)
				}

				logs := &logBuffer{}
				s, err := Open(dir, Options{Logger: logs.logger()})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Open left the temporary file: %v", err)
				}
				if !strings.Contains(logs.String(), "removed the unfinished file") {
					t.Errorf("removal not logged: %s", logs)
				}
				equalState(t, records(t, s), before)
				if c := counts(s); c != beforeCounts || s.FileSize() != size {
					t.Errorf("after reopen: %s, %d bytes; before: %s, %d bytes", c, s.FileSize(), beforeCounts, size)
				}
			})
		}
	}
}

func TestRewriteRefusedWhenStopped(t *testing.T) {
	snap := writeSnapshotT(t, sourceStore(t))
	s := openT(t, t.TempDir())
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "k", "v")))
	// Closed while the new file is built: the rewrite gives up.
	s.beforeSwap = func(string) error { return s.Close() }
	if err := s.Rewrite(); !errors.Is(err, ErrClosed) {
		t.Errorf("Rewrite closed meanwhile: %v, want ErrClosed", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Path()), tmpFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	s.beforeSwap = nil
	if err := s.Rewrite(); !errors.Is(err, ErrClosed) {
		t.Errorf("Rewrite after Close: %v", err)
	}
	if _, err := s.InstallSnapshot(snap.Path); !errors.Is(err, ErrClosed) {
		t.Errorf("InstallSnapshot after Close: %v", err)
	}
	if _, err := s.WriteSnapshot(filepath.Join(t.TempDir(), "snap")); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteSnapshot after Close: %v", err)
	}

	s = openT(t, t.TempDir())
	if err := s.file.Close(); err != nil { // the next fsync fails
		t.Fatal(err)
	}
	if err := s.Save(true, peer.Ballot{Round: 1}, nil); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("Save: %v", err)
	}
	if err := s.Rewrite(); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("Rewrite after a disk failure: %v", err)
	}
	if _, err := s.InstallSnapshot(snap.Path); !errors.Is(err, ErrDiskFailed) {
		t.Errorf("InstallSnapshot after a disk failure: %v", err)
	}
}

// TestBuiltFileIsBuntdbFormat checks the records the store writes itself against
// buntdb's loader, with keys and values that look like the format's own syntax.
func TestBuiltFileIsBuntdbFormat(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{
		"d/plain": "v", "d/": "", "d/\r\n*3\r\n$3\r\nset": "$-1\r\n", "d/\x00": string(make([]byte, 70000)),
	}
	fb, err := createFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if err := fb.set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := fb.finish(); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir)
	equalState(t, records(t, s), want)
	ops, err := parseRecords(appendSet(appendSet(nil, "a", "1"), "b\r\n", ""))
	if err != nil || len(ops) != 2 || ops[0] != (tailOp{key: "a", val: "1"}) || ops[1] != (tailOp{key: "b\r\n"}) {
		t.Errorf("parseRecords = %+v, %v", ops, err)
	}
	if _, err := parseRecords([]byte("*2\r\n$3\r\ndel\r\n$1\r\n")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("parseRecords of a cut record: %v, want ErrCorrupt", err)
	}
}
