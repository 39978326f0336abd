package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/peer"
)

// sourceStore returns a store with slots 1-10 applied: puts, overwrites and removes
// by three clients and by client 0 (which keeps no de-duplication record), and a
// duplicate.
func sourceStore(t testing.TB) *Store {
	t.Helper()
	s := openT(t, t.TempDir())
	applyT(t, s,
		commandsEntry(t, 1, put(1, 1, "a", "1"), put(2, 1, "b", "1"), put(0, 0, "z", "0")),
		commandsEntry(t, 2, put(1, 2, "a", "2"), put(3, 1, "c", "\x00\r\n*3\r\n")),
		noopEntry(3),
		commandsEntry(t, 4, remove(2, 2, "b"), put(1, 2, "a", "dup")),
		commandsEntry(t, 5, put(3, 2, "", "empty key"), put(1, 3, "d", "")),
	)
	for slot := uint64(6); slot <= 10; slot++ {
		applyT(t, s, commandsEntry(t, slot, put(2, slot, "k"+string(rune('0'+slot)), strings.Repeat("v", int(slot)))))
	}
	return s
}

func digestT(t testing.TB, s *Store) (uint64, int64, [32]byte) {
	t.Helper()
	applied, keys, sum, err := s.Digest()
	if err != nil {
		t.Fatalf("Digest: %v", err)
	}
	return applied, keys, sum
}

func writeSnapshotT(t testing.TB, s *Store) SnapshotInfo {
	t.Helper()
	info, err := s.WriteSnapshot(filepath.Join(t.TempDir(), "snap"))
	if err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return info
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := sourceStore(t)
	info := writeSnapshotT(t, src)
	if info.Index != 10 || info.Keys != int64(src.Keys()) {
		t.Errorf("info: Index %d, Keys %d; want 10, %d", info.Index, info.Keys, src.Keys())
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(b)) || info.Sum != sha256.Sum256(b) {
		t.Errorf("info: Size %d, Sum %x; the file has %d bytes, sum %x", info.Size, info.Sum, len(b), sha256.Sum256(b))
	}
	if _, err := os.Stat(info.Path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary snapshot file left behind: %v", err)
	}
	if got, err := ReadSnapshotInfo(info.Path); err != nil || got != info {
		t.Errorf("ReadSnapshotInfo = %+v, %v; want %+v", got, err, info)
	}

	// The target has a promise, entries on both sides of the snapshot's slot (one
	// below it at a ballot above the promise) and applied slots of its own.
	dir := t.TempDir()
	dst := openT(t, dir)
	promise, high := peer.Ballot{Round: 3, ID: 1}, peer.Ballot{Round: 4, ID: 2}
	var entries []peer.Entry
	for slot := uint64(1); slot <= 12; slot++ {
		e := commandsEntry(t, slot, put(9, slot, "stale", "x"))
		e.Ballot = peer.Ballot{Round: 2, ID: 1}
		if slot == 4 {
			e.Ballot = high
		}
		entries = append(entries, e)
	}
	if err := dst.Save(true, promise, entries); err != nil {
		t.Fatal(err)
	}
	applyT(t, dst, entries[:2]...)

	got, err := dst.InstallSnapshot(info.Path)
	if err != nil {
		t.Fatalf("InstallSnapshot: %v", err)
	}
	if got != info {
		t.Errorf("InstallSnapshot returned %+v, want %+v", got, info)
	}
	check := func(t *testing.T, dst *Store) {
		t.Helper()
		equalState(t, state(t, dst), state(t, src))
		a1, k1, s1 := digestT(t, src)
		a2, k2, s2 := digestT(t, dst)
		if a1 != a2 || k1 != k2 || s1 != s2 {
			t.Errorf("Digest: target (%d, %d, %x), source (%d, %d, %x)", a2, k2, s2, a1, k1, s1)
		}
		if dst.Applied() != 10 || dst.Compacted() != 10 || dst.Keys() != src.Keys() || dst.LogEntries() != 2 {
			t.Errorf("Applied %d, Compacted %d, Keys %d, LogEntries %d; want 10, 10, %d, 2",
				dst.Applied(), dst.Compacted(), dst.Keys(), src.Keys(), dst.LogEntries())
		}
		d, err := dst.Durable()
		if err != nil {
			t.Fatal(err)
		}
		// The dropped entry at slot 4 was accepted at high: its promise stays.
		if d.Promised != high || d.Applied != 10 {
			t.Errorf("Durable: Promised %v, Applied %d; want %v, 10", d.Promised, d.Applied, high)
		}
		equalEntries(t, d.Entries, entries[10:])
		if v, ok := get(t, dst, "stale"); ok {
			t.Errorf("the target's own data survived the install: stale = %q", v)
		}
		if _, ok := records(t, dst)[keyIntent]; ok {
			t.Error("an intent record survived the install")
		}
	}
	check(t, dst)
	closeT(t, dst)
	dst = openT(t, dir)
	check(t, dst)

	// The store carries on from the snapshot's slot.
	applyT(t, dst, commandsEntry(t, 11, put(1, 4, "a", "after")))
	if v, _ := get(t, dst, "a"); v != "after" {
		t.Errorf("a = %q after applying slot 11", v)
	}
	if res := applyT(t, dst, commandsEntry(t, 12, put(1, 4, "a", "retry"))); !res[0].Duplicate {
		t.Error("de-duplication records did not come with the snapshot")
	}
}

// TestSnapshotHoldsStateNotAcceptor checks what a snapshot leaves out: the promise,
// the log and the intent.
func TestSnapshotHoldsStateNotAcceptor(t *testing.T) {
	src := sourceStore(t)
	if err := src.Save(true, peer.Ballot{Round: 7, ID: 1}, []peer.Entry{noopEntry(11)}); err != nil {
		t.Fatal(err)
	}
	info := writeSnapshotT(t, src)
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keyPromised, keyIntent, prefixLog} {
		if bytes.Contains(b, []byte(k)) {
			t.Errorf("snapshot holds %q", k)
		}
	}
	restored := filepath.Join(t.TempDir(), "r")
	if _, err := Restore(restored, info.Path); err != nil {
		t.Fatal(err)
	}
	s := openT(t, restored)
	equalState(t, state(t, s), state(t, src))
}

func TestCorruptSnapshotIsRefused(t *testing.T) {
	src := sourceStore(t)
	info := writeSnapshotT(t, src)
	good, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	dst := openT(t, dir)
	if err := dst.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{noopEntry(1), noopEntry(20)}); err != nil {
		t.Fatal(err)
	}
	applyT(t, dst, commandsEntry(t, 1, put(1, 1, "mine", "v")))
	before, size := records(t, dst), dst.FileSize()

	bad := filepath.Join(t.TempDir(), "bad")
	try := func(t *testing.T, what string, b []byte) {
		t.Helper()
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSnapshotInfo(bad)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: ReadSnapshotInfo: %v; want ErrCorrupt naming %s", what, err, bad)
		}
		_, err = dst.InstallSnapshot(bad)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: InstallSnapshot: %v; want ErrCorrupt naming %s", what, err, bad)
		}
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 1 << (i % 8)
		try(t, "flipped byte "+strconv.Itoa(i), b)
	}
	for n := range len(good) {
		try(t, "cut to "+strconv.Itoa(n)+" bytes", good[:n])
	}
	try(t, "a byte appended", append(bytes.Clone(good), 0))

	equalState(t, records(t, dst), before)
	if dst.FileSize() != size || dst.Applied() != 1 || dst.Compacted() != 0 || dst.LogEntries() != 2 {
		t.Errorf("refused installs changed the store: size %d (was %d), Applied %d, Compacted %d, LogEntries %d",
			dst.FileSize(), size, dst.Applied(), dst.Compacted(), dst.LogEntries())
	}
	if _, err := os.Stat(filepath.Join(dir, tmpFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused install left its temporary file: %v", err)
	}
}

func TestInstallStaleSnapshotChangesNothing(t *testing.T) {
	src := sourceStore(t) // applied 10
	info := writeSnapshotT(t, src)
	for _, applied := range []uint64{10, 12} {
		dst := openT(t, t.TempDir())
		for slot := uint64(1); slot <= applied; slot++ {
			applyT(t, dst, commandsEntry(t, slot, put(5, slot, "own", strconv.Itoa(int(slot)))))
		}
		before := records(t, dst)
		_, err := dst.InstallSnapshot(info.Path)
		if !errors.Is(err, ErrStaleSnapshot) {
			t.Fatalf("applied %d, snapshot at 10: got %v, want ErrStaleSnapshot", applied, err)
		}
		equalState(t, records(t, dst), before)
		if dst.Applied() != applied || dst.Compacted() != 0 {
			t.Errorf("Applied %d, Compacted %d after a refused install", dst.Applied(), dst.Compacted())
		}
	}
}

// TestInstallRefusedWhenApplyOvertakesIt: an Apply that reaches the snapshot's slot
// while the new file is built makes the install stale.
func TestInstallRefusedWhenApplyOvertakesIt(t *testing.T) {
	info := writeSnapshotT(t, sourceStore(t))
	dst := openT(t, t.TempDir())
	dst.beforeSwap = func(string) error {
		for slot := uint64(1); slot <= 10; slot++ {
			if _, err := dst.Apply([]peer.Entry{noopEntry(slot)}); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := dst.InstallSnapshot(info.Path); !errors.Is(err, ErrStaleSnapshot) {
		t.Fatalf("got %v, want ErrStaleSnapshot", err)
	}
	if dst.Applied() != 10 || dst.Keys() != 0 {
		t.Errorf("Applied %d, Keys %d; want 10, 0", dst.Applied(), dst.Keys())
	}
}

// TestInstallKeepsAcceptorWritesMadeMeanwhile: Save runs while the new file is
// built; its promise and entries above the snapshot's slot must reach the new file,
// and an entry below it must leave its ballot in the promise. An Apply meanwhile is
// superseded by the snapshot.
func TestInstallKeepsAcceptorWritesMadeMeanwhile(t *testing.T) {
	src := sourceStore(t)
	info := writeSnapshotT(t, src)
	dir := t.TempDir()
	dst := openT(t, dir)
	if err := dst.Save(true, peer.Ballot{Round: 1, ID: 1}, []peer.Entry{noopEntry(1), noopEntry(11)}); err != nil {
		t.Fatal(err)
	}
	above := peer.Entry{Slot: 13, Ballot: peer.Ballot{Round: 5, ID: 1}, Kind: peer.KindCommands, Data: []byte("x")}
	below := peer.Entry{Slot: 9, Ballot: peer.Ballot{Round: 6, ID: 3}, Kind: peer.KindNoop}
	dst.beforeSwap = func(string) error {
		if err := dst.Save(true, peer.Ballot{Round: 5, ID: 1}, []peer.Entry{above}); err != nil {
			return err
		}
		if err := dst.Save(false, peer.Ballot{}, []peer.Entry{below}); err != nil {
			return err
		}
		_, err := dst.Apply([]peer.Entry{commandsEntry(t, 1, put(8, 1, "meanwhile", "x"))})
		return err
	}
	if _, err := dst.InstallSnapshot(info.Path); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		d, err := s.Durable()
		if err != nil {
			t.Fatal(err)
		}
		if d.Promised != below.Ballot {
			t.Errorf("Promised = %v, want %v (the ballot of the dropped entry)", d.Promised, below.Ballot)
		}
		equalEntries(t, d.Entries, []peer.Entry{noopEntry(11), above})
		if s.LogEntries() != 2 {
			t.Errorf("LogEntries() = %d, want 2", s.LogEntries())
		}
		equalState(t, state(t, s), state(t, src))
	}
	check(dst)
	closeT(t, dst)
	check(openT(t, dir))
}

func TestRestore(t *testing.T) {
	src := sourceStore(t)
	info := writeSnapshotT(t, src)
	dir := filepath.Join(t.TempDir(), "new", "replica")
	got, err := Restore(dir, info.Path)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got != info {
		t.Errorf("Restore returned %+v, want %+v", got, info)
	}
	s := openT(t, dir)
	a1, k1, s1 := digestT(t, src)
	a2, k2, s2 := digestT(t, s)
	if a1 != a2 || k1 != k2 || s1 != s2 {
		t.Errorf("Digest: restored (%d, %d, %x), source (%d, %d, %x)", a2, k2, s2, a1, k1, s1)
	}
	equalState(t, state(t, s), state(t, src))
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if !d.Promised.IsZero() || len(d.Entries) != 0 || s.Applied() != 10 || s.Compacted() != 10 {
		t.Errorf("restored: Promised %v, %d entries, Applied %d, Compacted %d; want zero, 0, 10, 10",
			d.Promised, len(d.Entries), s.Applied(), s.Compacted())
	}

	// A directory that holds a store is refused, by name, and left alone.
	size := s.FileSize()
	_, err = Restore(dir, info.Path)
	if path := filepath.Join(dir, FileName); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Restore into a store's directory: %v; want ErrExist naming %s", err, path)
	}
	if s.FileSize() != size {
		t.Error("a refused Restore changed the store's file")
	}

	// A corrupt snapshot creates nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	b, _ := os.ReadFile(info.Path)
	if err := os.WriteFile(bad, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, err := Restore(empty, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Restore from a cut snapshot: %v; want ErrCorrupt", err)
	}
	if left, _ := os.ReadDir(empty); len(left) != 0 {
		t.Errorf("a refused Restore left %v", left)
	}
}

func TestDigest(t *testing.T) {
	// The same data reached by different commands, clients and batching.
	a := openT(t, t.TempDir())
	applyT(t, a, commandsEntry(t, 1, put(1, 1, "x", "1"), put(1, 2, "y", "2")), noopEntry(2))
	b := openT(t, t.TempDir())
	applyT(t, b, commandsEntry(t, 1, put(2, 1, "y", "old"), put(0, 0, "x", "1")))
	applyT(t, b, commandsEntry(t, 2, put(3, 1, "y", "2"), put(3, 2, "gone", ""), remove(3, 3, "gone")))
	appliedA, keysA, sumA := digestT(t, a)
	appliedB, keysB, sumB := digestT(t, b)
	if appliedA != 2 || appliedB != 2 || keysA != 2 || keysB != 2 {
		t.Errorf("applied %d and %d, keys %d and %d; want 2, 2", appliedA, appliedB, keysA, keysB)
	}
	if sumA != sumB {
		t.Error("equal data, different digests")
	}
	// Length prefixes keep key and value apart: "x"="12" is not "x1"="2".
	c := openT(t, t.TempDir())
	applyT(t, c, commandsEntry(t, 1, put(0, 0, "x1", "1"), put(0, 0, "y", "2")), noopEntry(2))
	d := openT(t, t.TempDir())
	applyT(t, d, commandsEntry(t, 1, put(0, 0, "x", "11"), put(0, 0, "y", "2")), noopEntry(2))
	_, _, sumC := digestT(t, c)
	_, _, sumD := digestT(t, d)
	if sumC == sumA || sumC == sumD {
		t.Error("different data, equal digests")
	}
	closeT(t, d)
	if _, _, _, err := d.Digest(); !errors.Is(err, ErrClosed) {
		t.Errorf("Digest after Close: %v", err)
	}
}

// The rebuild slot of a replica that lost its storage survives a snapshot
// install, a rewrite and a reopen, and reaches Durable with the compacted slot.
func TestRebuildToSurvivesInstallAndRewrite(t *testing.T) {
	src := sourceStore(t)
	info := writeSnapshotT(t, src)

	dir := t.TempDir()
	dst := openT(t, dir)
	if err := dst.SetRebuildTo(info.Index + 50); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.InstallSnapshot(info.Path); err != nil {
		t.Fatal(err)
	}
	if err := dst.Rewrite(); err != nil {
		t.Fatal(err)
	}
	closeT(t, dst)
	dst = openT(t, dir)
	d, err := dst.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if d.RebuildTo != info.Index+50 || d.Compacted != info.Index || d.Applied != info.Index {
		t.Fatalf("durable after install, rewrite, reopen: rebuild %d compacted %d applied %d; want %d, %d, %d",
			d.RebuildTo, d.Compacted, d.Applied, info.Index+50, info.Index, info.Index)
	}
	if err := dst.SetRebuildTo(0); err != nil {
		t.Fatal(err)
	}
	closeT(t, dst)
	dst = openT(t, dir)
	if d, err := dst.Durable(); err != nil || d.RebuildTo != 0 {
		t.Fatalf("rebuild slot after it was cleared: %d, %v", d.RebuildTo, err)
	}
	closeT(t, dst)
}

// Digest follows the layout idl/kv.thrift documents, so a client in any language
// can recompute it from the keys and values it reads.
func TestDigestLayout(t *testing.T) {
	s := openT(t, t.TempDir())
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "b", "2"), put(1, 2, "a", "xyz")))
	_, keys, got := digestT(t, s)
	h := sha256.New()
	for _, kv := range [][2]string{{"a", "xyz"}, {"b", "2"}} {
		for _, part := range kv {
			h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
			h.Write([]byte(part))
		}
	}
	var want [32]byte
	h.Sum(want[:0])
	if keys != 2 || got != want {
		t.Fatalf("digest %x over %d keys, want %x over 2", got, keys, want)
	}
	closeT(t, s)
}

// The committed configuration is replicated state: a snapshot carries it, an
// install and a restore take it, and a rewrite and a reopen keep it.
func TestSnapshotCarriesConfig(t *testing.T) {
	src := sourceStore(t)
	if cfg, err := src.Config(); err != nil || cfg != nil {
		t.Fatalf("config of a new store: %q, %v; want none", cfg, err)
	}
	want := []byte("epoch 1: 1 2 3")
	if err := src.SetConfig(want); err != nil {
		t.Fatal(err)
	}
	info := writeSnapshotT(t, src)
	_, keys, _ := digestT(t, src)
	if info.Keys != keys {
		t.Fatalf("snapshot counts %d keys, the store %d: the configuration must not count as a key", info.Keys, keys)
	}

	dir := t.TempDir()
	dst := openT(t, dir)
	if err := dst.SetConfig([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.InstallSnapshot(info.Path); err != nil {
		t.Fatal(err)
	}
	if err := dst.Rewrite(); err != nil {
		t.Fatal(err)
	}
	closeT(t, dst)
	dst = openT(t, dir)
	if got, err := dst.Config(); err != nil || string(got) != string(want) {
		t.Fatalf("config after install, rewrite, reopen: %q, %v; want %q", got, err, want)
	}
	closeT(t, dst)

	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(restored, info.Path); err != nil {
		t.Fatal(err)
	}
	r := openT(t, restored)
	if got, err := r.Config(); err != nil || string(got) != string(want) {
		t.Fatalf("config after restore: %q, %v; want %q", got, err, want)
	}
	closeT(t, r)
}

// Applying a configuration entry records the configuration; DropLog then deletes
// the whole log, above the applied slot too, and survives a reopen.
func TestApplyConfigAndDropLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	b := peer.Ballot{Round: 2, ID: 1}
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "a", "1")),
		peer.Entry{Slot: 2, Ballot: b, Kind: peer.KindConfig, Data: []byte("members 1 2 4")})
	if got, err := s.Config(); err != nil || string(got) != "members 1 2 4" {
		t.Fatalf("config after applying a configuration entry: %q, %v", got, err)
	}
	if err := s.Save(true, b, []peer.Entry{{Slot: 2, Ballot: b, Kind: peer.KindConfig, Data: []byte("members 1 2 4")},
		{Slot: 3, Ballot: b, Kind: peer.KindCommands}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DropLog(); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	d, err := s.Durable()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entries) != 0 || d.Compacted != 2 || d.Applied != 2 || d.Promised != b {
		t.Fatalf("after DropLog and reopen: %d entries, compacted %d, applied %d, promised %v; want none, 2, 2, %v",
			len(d.Entries), d.Compacted, d.Applied, d.Promised, b)
	}
	closeT(t, s)
}

// Open redoes the last Apply's intent when it reaches the applied slot (a torn
// transaction may have kept the slot and lost writes). A configuration recorded by
// SetConfig after an Apply that wrote one must survive that: reopening keeps it.
func TestSetConfigAfterApplyingConfigurationSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(1, 1, "a", "1")),
		peer.Entry{Slot: 2, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindConfig, Data: []byte("applied")})
	if err := s.SetConfig([]byte("recorded")); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	s = openT(t, dir)
	if got, err := s.Config(); err != nil || string(got) != "recorded" {
		t.Errorf("configuration after reopen: %q, %v; want the one SetConfig recorded", got, err)
	}
	if v, _ := get(t, s, "a"); v != "1" || s.Applied() != 2 {
		t.Errorf("after reopen: a = %q, applied %d; want 1, 2", v, s.Applied())
	}
	closeT(t, s)
}

// Apply consults a decoded copy of the de-duplication table; installing a
// snapshot replaces the table with the snapshot's, so a client's later
// sequence numbers are judged against the snapshot's record, not the old one.
func TestInstallReplacesDeduplicationTable(t *testing.T) {
	src := openT(t, t.TempDir())
	applyT(t, src, commandsEntry(t, 1, put(1, 5, "a", "src")), noopEntry(2), noopEntry(3))
	info := writeSnapshotT(t, src)

	dst := openT(t, t.TempDir())
	applyT(t, dst, commandsEntry(t, 1, put(1, 9, "a", "dst")))
	if _, err := dst.InstallSnapshot(info.Path); err != nil {
		t.Fatal(err)
	}
	res := applyT(t, dst, commandsEntry(t, 4, put(1, 6, "b", "after")))
	if res[0].Duplicate {
		t.Errorf("seq 6 of client 1 after installing a snapshot that recorded seq 5: judged a duplicate (of the replaced table's seq 9)")
	}
	res = applyT(t, dst, commandsEntry(t, 5, put(1, 6, "b", "retry")))
	if !res[0].Duplicate || res[0].Slot != 4 {
		t.Errorf("retry of seq 6: %+v, want a duplicate of slot 4", res[0])
	}
	closeT(t, dst)
	closeT(t, src)
}

// The table is read back on Open: a retry after a reopen is still a duplicate.
func TestDeduplicationSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	applyT(t, s, commandsEntry(t, 1, put(7, 3, "k", "v"), remove(8, 1, "k")))
	closeT(t, s)
	s = openT(t, dir)
	res := applyT(t, s, commandsEntry(t, 2, put(7, 3, "k", "again"), remove(8, 1, "k"), put(7, 2, "k", "older")))
	for i, r := range res {
		if !r.Duplicate {
			t.Errorf("command %d after reopen: %+v, want a duplicate", i, r)
		}
	}
	if res[0].Slot != 1 || res[1].Slot != 1 || !res[1].Existed {
		t.Errorf("duplicates after reopen: %+v; want the recorded slot 1 and results", res)
	}
	closeT(t, s)
}
