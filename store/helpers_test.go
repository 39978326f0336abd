package store

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/buntdb"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

func openT(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func closeT(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func put(client, seq uint64, key, value string) command.Command {
	return command.Command{ClientID: client, Seq: seq, Op: command.OpPut, Key: key, Value: []byte(value)}
}

func remove(client, seq uint64, key string) command.Command {
	return command.Command{ClientID: client, Seq: seq, Op: command.OpRemove, Key: key}
}

// commandsEntry returns a KindCommands entry for slot holding cmds.
func commandsEntry(t testing.TB, slot uint64, cmds ...command.Command) peer.Entry {
	t.Helper()
	data, err := command.EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return peer.Entry{Slot: slot, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindCommands, Data: data}
}

func noopEntry(slot uint64) peer.Entry {
	return peer.Entry{Slot: slot, Ballot: peer.Ballot{Round: 1, ID: 1}, Kind: peer.KindNoop}
}

func applyT(t testing.TB, s *Store, entries ...peer.Entry) []Result {
	t.Helper()
	res, err := s.Apply(entries)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// state returns every record the replicated state consists of: user data,
// de-duplication records and the applied slot.
func state(t testing.TB, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			if strings.HasPrefix(k, prefixData) || strings.HasPrefix(k, prefixClient) || k == keyApplied {
				m[k] = v
			}
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// records returns every record of the store's buntdb, whatever its prefix.
func records(t testing.TB, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := s.view(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool { m[k] = v; return true })
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func equalState(t testing.TB, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("record %q: got %q (present %v), want %q", k, g, ok, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected record %q = %q", k, g)
		}
	}
}

func equalResults(t testing.TB, got, want []Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d\ngot:  %+v\nwant: %+v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func equalEntries(t testing.TB, got, want []peer.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Slot != w.Slot || g.Ballot != w.Ballot || g.Kind != w.Kind || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
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

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
