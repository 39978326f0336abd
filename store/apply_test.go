package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

func get(t testing.TB, s *Store, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), ok
}

func TestApplyInOrder(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	res := applyT(t, s,
		commandsEntry(t, 1, put(1, 1, "a", "1"), put(2, 1, "b", "2")),
		noopEntry(2),
		commandsEntry(t, 3, put(1, 2, "a", "3"), remove(2, 2, "b"), remove(2, 3, "missing")),
	)
	equalResults(t, res, []Result{
		{ClientID: 1, Seq: 1, Slot: 1, Op: command.OpPut, Key: "a"},
		{ClientID: 2, Seq: 1, Slot: 1, Op: command.OpPut, Key: "b"},
		{ClientID: 1, Seq: 2, Slot: 3, Op: command.OpPut, Key: "a", Existed: true},
		{ClientID: 2, Seq: 2, Slot: 3, Op: command.OpRemove, Key: "b", Existed: true},
		{ClientID: 2, Seq: 3, Slot: 3, Op: command.OpRemove, Key: "missing"},
	})
	if s.Applied() != 3 || s.Keys() != 1 {
		t.Errorf("Applied() = %d, Keys() = %d; want 3, 1", s.Applied(), s.Keys())
	}
	if v, ok := get(t, s, "a"); !ok || v != "3" {
		t.Errorf("a = %q, %v; want 3", v, ok)
	}
	if _, ok := get(t, s, "b"); ok {
		t.Error("b still present after remove")
	}
	closeT(t, s)
	s = openT(t, dir)
	if s.Applied() != 3 || s.Keys() != 1 {
		t.Errorf("after reopen: Applied() = %d, Keys() = %d; want 3, 1", s.Applied(), s.Keys())
	}
	if v, _ := get(t, s, "a"); v != "3" {
		t.Errorf("after reopen: a = %q, want 3", v)
	}
}

func TestApplyRejectsOutOfOrderAndInvalidEntries(t *testing.T) {
	good := func(t *testing.T, slot uint64) peer.Entry { return commandsEntry(t, slot, put(1, slot, "k", "v")) }
	tests := []struct {
		name    string
		entries func(t *testing.T) []peer.Entry
		wantErr error
		slot    string
	}{
		{"gap", func(t *testing.T) []peer.Entry { return []peer.Entry{good(t, 3)} }, ErrOutOfOrder, "slot 3"},
		{"already applied", func(t *testing.T) []peer.Entry { return []peer.Entry{good(t, 1)} }, ErrOutOfOrder, "slot 1"},
		{"gap inside the call", func(t *testing.T) []peer.Entry { return []peer.Entry{good(t, 2), good(t, 4)} },
			ErrOutOfOrder, "slot 4"},
		{"garbage batch", func(t *testing.T) []peer.Entry {
			return []peer.Entry{good(t, 2), {Slot: 3, Kind: peer.KindCommands, Data: []byte("garbage")}}
		}, command.ErrMalformed, "slot 3"},
		{"unknown kind", func(t *testing.T) []peer.Entry { return []peer.Entry{{Slot: 2, Kind: 7}} }, ErrInvalidEntry, "slot 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openT(t, t.TempDir())
			applyT(t, s, good(t, 1))
			before := state(t, s)
			_, err := s.Apply(tt.entries(t))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply: got %v, want %v", err, tt.wantErr)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.slot) || !strings.Contains(msg, s.Path()) {
				t.Errorf("error %q does not name %s and %s", msg, tt.slot, s.Path())
			}
			equalState(t, state(t, s), before) // nothing of the call was applied
			if s.Applied() != 1 {
				t.Errorf("Applied() = %d, want 1", s.Applied())
			}
		})
	}
}

func TestDeduplication(t *testing.T) {
	tests := []struct {
		name    string
		slots   [][]command.Command // slot i+1 holds slots[i]
		want    []Result            // results of the last slot
		wantKey map[string]string   // user data afterwards ("" value: absent)
	}{
		{
			name: "retry with same seq returns the recorded result",
			slots: [][]command.Command{
				{put(1, 1, "x", "old")},
				{put(1, 2, "x", "new")},
				{put(1, 2, "x", "new")},
			},
			want:    []Result{{ClientID: 1, Seq: 2, Slot: 2, Op: command.OpPut, Key: "x", Existed: true, Duplicate: true}},
			wantKey: map[string]string{"x": "new"},
		},
		{
			name: "older seq is a duplicate with no recorded result",
			slots: [][]command.Command{
				{put(1, 5, "x", "five")},
				{put(1, 4, "x", "four")},
			},
			want:    []Result{{ClientID: 1, Seq: 4, Slot: 0, Op: command.OpPut, Key: "x", Duplicate: true}},
			wantKey: map[string]string{"x": "five"},
		},
		{
			name: "client 0 is never de-duplicated",
			slots: [][]command.Command{
				{put(0, 1, "x", "a")},
				{remove(0, 1, "x")},
			},
			want:    []Result{{ClientID: 0, Seq: 1, Slot: 2, Op: command.OpRemove, Key: "x", Existed: true}},
			wantKey: map[string]string{"x": ""},
		},
		{
			name: "retry inside one batch after another client's write",
			slots: [][]command.Command{
				{put(1, 7, "x", "1"), put(2, 3, "x", "2"), put(1, 7, "x", "1")},
			},
			want: []Result{
				{ClientID: 1, Seq: 7, Slot: 1, Op: command.OpPut, Key: "x"},
				{ClientID: 2, Seq: 3, Slot: 1, Op: command.OpPut, Key: "x", Existed: true},
				{ClientID: 1, Seq: 7, Slot: 1, Op: command.OpPut, Key: "x", Duplicate: true},
			},
			wantKey: map[string]string{"x": "2"},
		},
		{
			name: "clients are independent",
			slots: [][]command.Command{
				{put(1, 9, "x", "a")},
				{put(2, 1, "y", "b")},
			},
			want:    []Result{{ClientID: 2, Seq: 1, Slot: 2, Op: command.OpPut, Key: "y"}},
			wantKey: map[string]string{"x": "a", "y": "b"},
		},
		{
			name: "duplicate remove keeps its recorded result",
			slots: [][]command.Command{
				{put(3, 1, "x", "a")},
				{remove(3, 2, "x")},
				{put(4, 1, "x", "b"), remove(3, 2, "x")},
			},
			want: []Result{
				{ClientID: 4, Seq: 1, Slot: 3, Op: command.OpPut, Key: "x"},
				{ClientID: 3, Seq: 2, Slot: 2, Op: command.OpRemove, Key: "x", Existed: true, Duplicate: true},
			},
			wantKey: map[string]string{"x": "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir)
			var res []Result
			for i, cmds := range tt.slots {
				res = applyT(t, s, commandsEntry(t, uint64(i+1), cmds...))
			}
			equalResults(t, res, tt.want)
			// The table is durable: a retry after a restart is still recognised.
			closeT(t, s)
			s = openT(t, dir)
			for k, want := range tt.wantKey {
				if v, ok := get(t, s, k); v != want || ok != (want != "") {
					t.Errorf("%s = %q (present %v), want %q", k, v, ok, want)
				}
			}
			last := tt.slots[len(tt.slots)-1]
			again := applyT(t, s, commandsEntry(t, uint64(len(tt.slots)+1), last...))
			for i, r := range again {
				if r.ClientID != 0 && !r.Duplicate {
					t.Errorf("after reopen, command %d applied again: %+v", i, r)
				}
			}
		})
	}
}

func TestBinarySafeKeysAndValues(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	pairs := map[string]string{
		"a\r\nb":                "\r\n",
		"\x00":                  "\x00\x00",
		"*3\r\n$3\r\nset\r\n":   "*2\r\n$3\r\ndel\r\n$1\r\nx\r\n",
		"m/applied":             "user key that looks like metadata",
		"":                      "empty key",
		"\xff\xfe not utf8":     "\xff",
		"empty value":           "",
		strings.Repeat("k", 70): strings.Repeat("\x00\r\n", 1000),
	}
	var cmds []command.Command
	seq := uint64(0)
	for k, v := range pairs {
		seq++
		cmds = append(cmds, put(1, seq, k, v))
	}
	applyT(t, s, commandsEntry(t, 1, cmds...))
	entry := peer.Entry{Slot: 2, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindCommands,
		Data: []byte("\x00\r\n*1\r\n$1\r\n\x00")}
	if err := s.Save(true, entry.Ballot, []peer.Entry{entry}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		for k, want := range pairs {
			if v, ok := get(t, s, k); !ok || v != want {
				t.Errorf("%s: Get(%q) = %q, %v; want %q", when, k, v, ok, want)
			}
		}
		if s.Keys() != len(pairs) {
			t.Errorf("%s: Keys() = %d, want %d", when, s.Keys(), len(pairs))
		}
		if s.Applied() != 1 {
			t.Errorf("%s: a user key named m/applied changed the applied slot: %d", when, s.Applied())
		}
		d, err := s.Durable()
		if err != nil {
			t.Fatal(err)
		}
		equalEntries(t, d.Entries, []peer.Entry{entry})
	}
	check("before reopen")
	closeT(t, s)
	s = openT(t, dir)
	check("after reopen")
}

func TestKeysCountsUserKeys(t *testing.T) {
	s := openT(t, t.TempDir())
	applyT(t, s, commandsEntry(t, 1, put(0, 0, "a", "1"), put(0, 0, "b", "1"), put(0, 0, "a", "2"),
		remove(0, 0, "c"), put(0, 0, "c", "1"), remove(0, 0, "c")))
	if s.Keys() != 2 {
		t.Errorf("Keys() = %d, want 2", s.Keys())
	}
	applyT(t, s, commandsEntry(t, 2, remove(0, 0, "a"), put(0, 0, "d", "1")))
	if s.Keys() != 2 {
		t.Errorf("Keys() = %d, want 2", s.Keys())
	}
}

func TestApplyEmptyAndNoop(t *testing.T) {
	s := openT(t, t.TempDir())
	if res, err := s.Apply(nil); err != nil || res != nil {
		t.Fatalf("Apply(nil) = %v, %v", res, err)
	}
	res := applyT(t, s, noopEntry(1), commandsEntry(t, 2), noopEntry(3))
	if len(res) != 0 || s.Applied() != 3 {
		t.Errorf("no-ops: %d results, Applied() = %d; want 0, 3", len(res), s.Applied())
	}
}

// TestReadersDuringWrites runs the read methods concurrently with Save, Apply and
// Compact (for the race detector) and checks that readers never see the applied
// slot go backwards or a value from the future of the applied slot.
func TestReadersDuringWrites(t *testing.T) {
	s := openT(t, t.TempDir())
	const slots = 200
	done := make(chan struct{})
	errs := make(chan string, 4)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				applied := s.Applied()
				if applied < last {
					errs <- fmt.Sprintf("Applied() went from %d to %d", last, applied)
					return
				}
				last = applied
				v, ok, err := s.Get("counter")
				if err != nil {
					errs <- err.Error()
					return
				}
				if ok {
					// Apply writes the data before it publishes the applied slot, so a
					// reader may see data one Apply ahead, never behind.
					n, _ := strconv.ParseUint(string(v), 10, 64)
					if n < applied {
						errs <- fmt.Sprintf("counter %d behind applied slot %d", n, applied)
						return
					}
				}
				_, _ = s.Keys(), s.LogEntries()
				if _, err := s.Durable(); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	for slot := uint64(1); slot <= slots; slot++ {
		e := commandsEntry(t, slot, put(1, slot, "counter", strconv.FormatUint(slot, 10)))
		if err := s.Save(true, e.Ballot, []peer.Entry{e}); err != nil {
			t.Fatal(err)
		}
		applyT(t, s, e)
		if slot%50 == 0 {
			if err := s.Compact(slot); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if v, _ := get(t, s, "counter"); v != strconv.Itoa(slots) || s.LogEntries() != 0 {
		t.Errorf("counter = %q, LogEntries() = %d; want %d, 0", v, s.LogEntries(), slots)
	}
}
