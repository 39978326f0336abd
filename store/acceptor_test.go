package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/peer"
)

func TestOpenCreatesDirectoryAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openT(t, dir)
	if want := filepath.Join(dir, FileName); s.Path() != want {
		t.Errorf("Path() = %q, want %q", s.Path(), want)
	}
	if _, err := os.Stat(s.Path()); err != nil {
		t.Errorf("file not created: %v", err)
	}
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Promised.IsZero() || len(d.Entries) != 0 || d.Applied != 0 {
		t.Errorf("new store: got %+v, want empty", d)
	}
}

func TestSaveDurableRoundTripAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	promised := peer.Ballot{Round: 3, ID: 2}
	entries := []peer.Entry{
		{Slot: 1, Ballot: peer.Ballot{Round: 2, ID: 1}, Kind: peer.KindCommands, Data: []byte("one")},
		{Slot: 2, Ballot: peer.Ballot{Round: 3, ID: 2}, Kind: peer.KindNoop},
		{Slot: 10, Ballot: peer.Ballot{Round: 3, ID: 2}, Kind: peer.KindCommands, Data: []byte("\x00\r\n*3\r\n")},
		{Slot: 1 << 40, Ballot: peer.Ballot{Round: 1 << 62, ID: 1<<64 - 1}, Kind: peer.KindCommands, Data: []byte{}},
	}
	if err := s.Save(true, promised, entries[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(false, peer.Ballot{Round: 99}, entries[2:]); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	// The last entry's ballot is above the saved promise (savePromised false must
	// not store Round 99, but the entry's ballot counts).
	if want := (peer.Ballot{Round: 1 << 62, ID: 1<<64 - 1}); d.Promised != want {
		t.Errorf("Promised = %v, want %v", d.Promised, want)
	}
	want := entries
	want[3].Data = nil // an empty data field reads back as nil
	equalEntries(t, d.Entries, want)
	if s.LogEntries() != 4 {
		t.Errorf("LogEntries() = %d, want 4", s.LogEntries())
	}
}

func TestPromisedIsHighestOfPromiseAndEntryBallots(t *testing.T) {
	tests := []struct {
		name     string
		promised *peer.Ballot // nil: no promise saved
		ballots  []peer.Ballot
		want     peer.Ballot
	}{
		{"promise only", &peer.Ballot{Round: 5, ID: 1}, nil, peer.Ballot{Round: 5, ID: 1}},
		{"entries only (promise lost)", nil, []peer.Ballot{{Round: 2, ID: 3}, {Round: 4, ID: 1}}, peer.Ballot{Round: 4, ID: 1}},
		{"entry above promise", &peer.Ballot{Round: 4, ID: 1}, []peer.Ballot{{Round: 4, ID: 2}}, peer.Ballot{Round: 4, ID: 2}},
		{"promise above entries", &peer.Ballot{Round: 9, ID: 1}, []peer.Ballot{{Round: 8, ID: 3}}, peer.Ballot{Round: 9, ID: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir)
			if tt.promised != nil {
				if err := s.Save(true, *tt.promised, nil); err != nil {
					t.Fatal(err)
				}
			}
			for i, b := range tt.ballots {
				if err := s.Save(false, peer.Ballot{}, []peer.Entry{{Slot: uint64(i + 1), Ballot: b, Kind: peer.KindNoop}}); err != nil {
					t.Fatal(err)
				}
			}
			closeT(t, s)
			d, err := openT(t, dir).Durable()
			if err != nil {
				t.Fatal(err)
			}
			if d.Promised != tt.want {
				t.Errorf("Promised = %v, want %v", d.Promised, tt.want)
			}
		})
	}
}

func TestSaveReplacesEntryAtSameSlot(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	old := peer.Entry{Slot: 7, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindCommands, Data: []byte("old")}
	newer := peer.Entry{Slot: 7, Ballot: peer.Ballot{Round: 2, ID: 3}, Kind: peer.KindCommands, Data: []byte("new")}
	other := peer.Entry{Slot: 8, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindNoop}
	if err := s.Save(true, old.Ballot, []peer.Entry{old, other}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(true, newer.Ballot, []peer.Entry{newer}); err != nil {
		t.Fatal(err)
	}
	if s.LogEntries() != 2 {
		t.Errorf("LogEntries() = %d after replacing, want 2", s.LogEntries())
	}
	closeT(t, s)
	s = openT(t, dir)
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, d.Entries, []peer.Entry{newer, other})
	if s.LogEntries() != 2 {
		t.Errorf("LogEntries() = %d after reopening, want 2", s.LogEntries())
	}
}

func TestSaveNeverLowersPromise(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	high := peer.Ballot{Round: 7, ID: 2}
	if err := s.Save(true, high, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(true, peer.Ballot{Round: 7, ID: 1}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if d.Promised != high {
		t.Errorf("Promised = %v after saving a lower ballot, want %v", d.Promised, high)
	}
}

func TestSaveRejectsInvalidEntries(t *testing.T) {
	for name, e := range map[string]peer.Entry{
		"slot 0":       {Slot: 0, Kind: peer.KindNoop},
		"unknown kind": {Slot: 3, Kind: peer.EntryKind(9)},
	} {
		t.Run(name, func(t *testing.T) {
			s := openT(t, t.TempDir())
			valid := peer.Entry{Slot: 1, Kind: peer.KindNoop}
			err := s.Save(true, peer.Ballot{Round: 1}, []peer.Entry{valid, e})
			if !errors.Is(err, ErrInvalidEntry) || !strings.Contains(err.Error(), s.Path()) {
				t.Fatalf("Save: got %v, want ErrInvalidEntry naming %s", err, s.Path())
			}
			d, err := s.Durable()
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Entries) != 0 || !d.Promised.IsZero() {
				t.Errorf("a refused Save wrote something: %+v", d)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var entries []peer.Entry
	for slot := uint64(1); slot <= 10; slot++ {
		entries = append(entries, commandsEntry(t, slot, put(1, slot, "k", "v")))
	}
	if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, entries); err != nil {
		t.Fatal(err)
	}
	applyT(t, s, entries[:6]...) // applied = 6

	// upTo beyond applied: refused, nothing deleted.
	if err := s.Compact(8); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Compact(8) with applied 6: %v, want ErrNotApplied", err)
	}
	if s.LogEntries() != 10 || s.Compacted() != 0 {
		t.Errorf("refused Compact: LogEntries() = %d, Compacted() = %d; want 10, 0", s.LogEntries(), s.Compacted())
	}
	if err := s.Compact(6); err != nil {
		t.Fatal(err)
	}
	if s.LogEntries() != 4 || s.Compacted() != 6 {
		t.Errorf("Compact(6): LogEntries() = %d, Compacted() = %d; want 4, 6", s.LogEntries(), s.Compacted())
	}
	applyT(t, s, entries[6:]...)
	if err := s.Compact(8); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(8); err != nil { // nothing left to do
		t.Fatal(err)
	}
	if err := s.Compact(3); err != nil { // below the compacted slot: no change
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, d.Entries, entries[8:])
	if s.LogEntries() != 2 || d.Applied != 10 || s.Compacted() != 8 {
		t.Errorf("after reopen: LogEntries() = %d, Applied = %d, Compacted() = %d; want 2, 10, 8",
			s.LogEntries(), d.Applied, s.Compacted())
	}
	// A compacted slot is recorded even when no entry was left to delete.
	if err := s.Compact(10); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(10); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	if s = openT(t, dir); s.Compacted() != 10 || s.LogEntries() != 0 {
		t.Errorf("after Compact(10) and reopen: Compacted() = %d, LogEntries() = %d; want 10, 0",
			s.Compacted(), s.LogEntries())
	}
	// Compaction never lowers the promise derived from entries.
	if d.Promised != (peer.Ballot{Round: 1, ID: 1}) {
		t.Errorf("Promised = %v", d.Promised)
	}
}

func TestCompactKeepsImpliedPromise(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	low, high := peer.Ballot{Round: 1, ID: 1}, peer.Ballot{Round: 2, ID: 3}
	if err := s.Save(true, low, nil); err != nil {
		t.Fatal(err)
	}
	// Accepted at a higher ballot without saving that promise explicitly.
	e := commandsEntry(t, 1, put(1, 1, "k", "v"))
	e.Ballot = high
	if err := s.Save(false, peer.Ballot{}, []peer.Entry{e}); err != nil {
		t.Fatal(err)
	}
	applyT(t, s, e)
	if err := s.Compact(1); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 0 || d.Promised != high {
		t.Errorf("after compacting the only entry: %d entries, Promised = %v; want 0, %v", len(d.Entries), d.Promised, high)
	}
}

func TestClosedStoreRefusesEverything(t *testing.T) {
	s := openT(t, t.TempDir())
	closeT(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Save(true, peer.Ballot{Round: 1}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
	if _, err := s.Apply([]peer.Entry{noopEntry(1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	if _, _, err := s.Get("k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Durable(); !errors.Is(err, ErrClosed) {
		t.Errorf("Durable after Close: %v", err)
	}
	if err := s.Compact(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Compact after Close: %v", err)
	}
}
