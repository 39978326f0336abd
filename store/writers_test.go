package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

func openWritersT(t testing.TB, dir string, limit int, logs *logBuffer) *Store {
	t.Helper()
	opts := Options{maxWriters: limit}
	if logs != nil {
		opts.Logger = logs.logger()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// writerIDs returns the ids the table holds, in memory and in the file.
func writerIDs(t testing.TB, s *Store) (inMemory, inFile []uint64) {
	t.Helper()
	inMemory = slices.Sorted(maps.Keys(s.clients))
	for k := range state(t, s) {
		if rest, ok := strings.CutPrefix(k, prefixClient); ok {
			id, err := strconv.ParseUint(rest, 10, 64)
			if err != nil {
				t.Fatalf("record %q: %v", k, err)
			}
			inFile = append(inFile, id)
		}
	}
	slices.Sort(inFile)
	return inMemory, inFile
}

func TestApplyDropsTheWritersSilentLongest(t *testing.T) {
	const limit = 10 // an eviction keeps 9
	var logs logBuffer
	dir := t.TempDir()
	s := openWritersT(t, dir, limit, &logs)
	for id := uint64(1); id <= limit; id++ {
		applyT(t, s, commandsEntry(t, id, put(id, 1, fmt.Sprint("k", id), "v")))
	}
	applyT(t, s, commandsEntry(t, 11, put(1, 2, "k1", "again"))) // writer 1 is now the newest
	if mem, _ := writerIDs(t, s); len(mem) != limit {
		t.Fatalf("%d writers at the limit of %d: table %v, want all kept", limit, limit, mem)
	}

	applyT(t, s, commandsEntry(t, 12, put(11, 1, "k11", "v"))) // one past the limit
	want := []uint64{1, 4, 5, 6, 7, 8, 9, 10, 11}              // 2 and 3 wrote last the longest ago
	mem, file := writerIDs(t, s)
	if !slices.Equal(mem, want) || !slices.Equal(file, want) {
		t.Fatalf("after the 11th writer: table in memory %v, in the file %v; want %v", mem, file, want)
	}
	if !strings.Contains(logs.String(), "dropped the de-duplication records") {
		t.Errorf("no log line for the dropped records; logs:\n%s", logs.String())
	}

	// A kept writer's retry is still a duplicate; a dropped one's is applied
	// again, as documented.
	res := applyT(t, s, commandsEntry(t, 13, put(4, 1, "k4", "retry"), put(2, 1, "k2", "retry")))
	if !res[0].Duplicate || res[0].Slot != 4 {
		t.Errorf("retry of kept writer 4: %+v, want a duplicate of slot 4", res[0])
	}
	if res[1].Duplicate || res[1].Slot != 13 {
		t.Errorf("retry of dropped writer 2: %+v, want applied in slot 13", res[1])
	}

	want = []uint64{1, 2, 4, 5, 6, 7, 8, 9, 10, 11} // 2 is back, and 10 is the limit
	if mem, file := writerIDs(t, s); !slices.Equal(mem, want) || !slices.Equal(file, want) {
		t.Fatalf("after writer 2 came back: table in memory %v, in the file %v; want %v", mem, file, want)
	}
	closeT(t, s)
	s = openWritersT(t, dir, limit, nil)
	if mem, file := writerIDs(t, s); !slices.Equal(mem, want) || !slices.Equal(file, want) {
		t.Errorf("after reopen: table in memory %v, in the file %v; want %v", mem, file, want)
	}
}

// randomWriters returns slots of commands from writers 1..writers, each with
// increasing sequence numbers and now and then a retry of its last one.
func randomWriters(t testing.TB, rng *rand.Rand, slots, writers int) []peer.Entry {
	seqs := make([]uint64, writers+1)
	var entries []peer.Entry
	for slot := uint64(1); slot <= uint64(slots); slot++ {
		if rng.IntN(8) == 0 {
			entries = append(entries, noopEntry(slot))
			continue
		}
		var cmds []command.Command
		for range 1 + rng.IntN(4) {
			id := 1 + rng.IntN(writers)
			if seqs[id] == 0 || rng.IntN(5) != 0 {
				seqs[id]++
			}
			key := fmt.Sprint("k", rng.IntN(20))
			if rng.IntN(4) == 0 {
				cmds = append(cmds, remove(uint64(id), seqs[id], key))
			} else {
				cmds = append(cmds, put(uint64(id), seqs[id], key, fmt.Sprint(slot)))
			}
		}
		entries = append(entries, commandsEntry(t, slot, cmds...))
	}
	return entries
}

// Every replica must drop the same records at the same slot, whether it applies
// slots one at a time (a leader) or in groups (a follower catching up, or holding
// slots back): otherwise their tables, and so the results of retried writes,
// would differ.
func TestWriterEvictionDoesNotDependOnHowSlotsAreGrouped(t *testing.T) {
	const limit = 10
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		entries := randomWriters(t, rng, 80, 30)

		whole := openWritersT(t, t.TempDir(), limit, nil)
		wantRes := applyT(t, whole, entries...)
		wantState := state(t, whole)

		single := openWritersT(t, t.TempDir(), limit, nil)
		grouped := openWritersT(t, t.TempDir(), limit, nil)
		var singleRes, groupedRes []Result
		for _, e := range entries {
			singleRes = append(singleRes, applyT(t, single, e)...)
			if n := len(single.clients); n > limit {
				t.Fatalf("seed %d: %d writers after slot %d, over the limit of %d", seed, n, e.Slot, limit)
			}
		}
		for i := 0; i < len(entries); {
			n := 1 + rng.IntN(9)
			n = min(n, len(entries)-i)
			groupedRes = append(groupedRes, applyT(t, grouped, entries[i:i+n]...)...)
			i += n
		}
		for name, s := range map[string]*Store{"one slot per Apply": single, "random groups": grouped} {
			equalState(t, state(t, s), wantState)
			mem, file := writerIDs(t, s)
			if !slices.Equal(mem, file) {
				t.Errorf("seed %d, %s: table in memory %v, in the file %v", seed, name, mem, file)
			}
		}
		equalResults(t, singleRes, wantRes)
		equalResults(t, groupedRes, wantRes)
		if t.Failed() {
			t.Fatalf("seed %d: results or state differ with the grouping of slots", seed)
		}
		if mem, _ := writerIDs(t, whole); len(mem) > limit {
			t.Fatalf("seed %d: %d writers at the end, over the limit of %d", seed, len(mem), limit)
		}
	}
}

// The deletions of an eviction are part of the Apply's intent: an Apply cut short
// after its intent is completed by Open with the records dropped.
func TestInterruptedEvictionIsCompletedOnOpen(t *testing.T) {
	const limit = 4
	entries := []peer.Entry{
		commandsEntry(t, 1, put(1, 1, "a", "1"), put(2, 1, "b", "1"), put(3, 1, "c", "1")),
		commandsEntry(t, 2, put(4, 1, "d", "1")),
		commandsEntry(t, 3, put(5, 1, "e", "1"), put(6, 1, "f", "1")), // 6 writers: 1 and 2 go
	}
	ref := openWritersT(t, t.TempDir(), limit, nil)
	applyT(t, ref, entries[0])
	wantRes := applyT(t, ref, entries[1:]...)
	wantState := state(t, ref)
	if mem, _ := writerIDs(t, ref); len(mem) != writersAfterEviction(limit) {
		t.Fatalf("reference: table %v, want %d writers after the eviction", mem, writersAfterEviction(limit))
	}

	dir := t.TempDir()
	s := openWritersT(t, dir, limit, nil)
	applyT(t, s, entries[0])
	res, err := s.apply(entries[1:], stageIntent)
	if err != nil {
		t.Fatal(err)
	}
	equalResults(t, res, wantRes)
	closeT(t, s) // the file holds the intent, not the writes nor the applied slot

	s = openWritersT(t, dir, limit, nil)
	equalState(t, state(t, s), wantState)
	want, _ := writerIDs(t, ref)
	mem, file := writerIDs(t, s)
	if !slices.Equal(mem, want) || !slices.Equal(file, want) {
		t.Errorf("after Open completed the apply: table in memory %v, in the file %v; want %v", mem, file, want)
	}
}
