package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/peer"
)

// BenchmarkSave saves 64 entries of about 6 KB per call, each call one transaction
// and one fsync: the acceptor's group commit. Slots are reused (each Save replaces
// earlier entries) so memory stays bounded however long it runs.
func BenchmarkSave(b *testing.B) {
	s := openT(b, b.TempDir())
	const perCall, window = 64, 64 * 8
	data := make([]byte, 6<<10)
	for i := range data {
		data[i] = byte(i)
	}
	entries := make([]peer.Entry, perCall)
	b.SetBytes(int64(perCall * len(data)))
	b.ReportAllocs()
	slot := uint64(0)
	for b.Loop() {
		for i := range entries {
			slot++
			entries[i] = peer.Entry{Slot: slot%window + 1, Ballot: peer.Ballot{Round: 1, ID: 1},
				Kind: peer.KindCommands, Data: data}
		}
		if err := s.Save(true, peer.Ballot{Round: 1, ID: 1}, entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApply applies one slot per call holding 64 puts of 100-byte values by 64
// clients, each a new write (fresh sequence numbers), to a key space of 4096 keys.
// The time includes encoding the batch (a few percent of it) and decoding it.
func BenchmarkApply(b *testing.B) {
	s := openT(b, b.TempDir())
	const perSlot, keys = 64, 4096
	value := make([]byte, 100)
	cmds := make([]command.Command, perSlot)
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("key-%06d", i)
	}
	b.ReportAllocs()
	slot := uint64(0)
	for b.Loop() {
		slot++
		for j := range cmds {
			cmds[j] = command.Command{ClientID: uint64(j + 1), Seq: slot, Op: command.OpPut,
				Key: names[(int(slot)*perSlot+j)%keys], Value: value}
		}
		data, err := command.EncodeBatch(cmds)
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Apply([]peer.Entry{{Slot: slot, Kind: peer.KindCommands, Data: data}})
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Duplicate {
			b.Fatal("benchmark commands must be new writes")
		}
	}
}

// BenchmarkApplyNewWriters is BenchmarkApply with a new client id for every
// command, as from short-lived clients, against a full de-duplication table: every
// MaxWriters/10 commands an Apply drops the records of the writers silent longest,
// and the time per call includes that eviction's share.
func BenchmarkApplyNewWriters(b *testing.B) {
	s := openT(b, b.TempDir())
	const perSlot, keys = 64, 4096
	value := make([]byte, 100)
	cmds := make([]command.Command, perSlot)
	writer, slot := uint64(0), uint64(0)
	apply := func() {
		slot++
		for j := range cmds {
			writer++
			cmds[j] = command.Command{ClientID: writer, Seq: 1, Op: command.OpPut,
				Key: fmt.Sprintf("key-%06d", int(writer)%keys), Value: value}
		}
		data, err := command.EncodeBatch(cmds)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Apply([]peer.Entry{{Slot: slot, Kind: peer.KindCommands, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	for writer < MaxWriters {
		apply()
	}
	b.ReportAllocs()
	for b.Loop() {
		apply()
	}
	if n := len(s.clients); n > MaxWriters {
		b.Fatalf("%d writers in the table, over MaxWriters", n)
	}
}

// fillKeys applies puts of n distinct keys with 100-byte values, 1000 per slot, each
// key written `writes` times (later rounds overwrite), by 64 clients.
func fillKeys(b *testing.B, s *Store, n, writes int) {
	b.Helper()
	value := make([]byte, 100)
	cmds := make([]command.Command, 0, 1000)
	slot := s.Applied()
	seq := uint64(0)
	for round := range writes {
		for i := 0; i < n; {
			cmds = cmds[:0]
			for ; i < n && len(cmds) < cap(cmds); i++ {
				seq++
				value[0] = byte(round)
				cmds = append(cmds, command.Command{ClientID: seq%64 + 1, Seq: seq, Op: command.OpPut,
					Key: fmt.Sprintf("key-%08d", i), Value: value})
			}
			data, err := command.EncodeBatch(cmds)
			if err != nil {
				b.Fatal(err)
			}
			slot++
			if _, err := s.Apply([]peer.Entry{{Slot: slot, Kind: peer.KindCommands, Data: data}}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkWriteSnapshot writes a snapshot of 100,000 keys of 100 bytes (about 13 MB
// with the keys and de-duplication records), fsync included.
func BenchmarkWriteSnapshot(b *testing.B) {
	s := openT(b, b.TempDir())
	fillKeys(b, s, 100_000, 1)
	path := filepath.Join(b.TempDir(), "snap")
	b.ReportAllocs()
	for b.Loop() {
		info, err := s.WriteSnapshot(path)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(info.Size)
	}
}

// BenchmarkInstallSnapshot installs a snapshot of 100,000 keys into an empty store:
// verify, build, load, swap.
func BenchmarkInstallSnapshot(b *testing.B) {
	src := openT(b, b.TempDir())
	fillKeys(b, src, 100_000, 1)
	info, err := src.WriteSnapshot(filepath.Join(b.TempDir(), "snap"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size)
	for b.Loop() {
		b.StopTimer()
		s, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.InstallSnapshot(info.Path); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

// BenchmarkRewrite rewrites a store of 100,000 keys of 100 bytes whose file holds
// each key written three times.
func BenchmarkRewrite(b *testing.B) {
	s := openT(b, b.TempDir())
	fillKeys(b, s, 100_000, 3)
	before := s.FileSize()
	for b.Loop() {
		if err := s.Rewrite(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(before)/(1<<20), "MB-before")
	b.ReportMetric(float64(s.FileSize())/(1<<20), "MB-after")
}

// BenchmarkOpen opens a store of 100,000 keys of 100 bytes, each written three
// times, before and after a Rewrite.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s := openT(b, dir)
	fillKeys(b, s, 100_000, 3)
	closeT(b, s)
	for _, rewrite := range []bool{false, true} {
		if rewrite {
			s := openT(b, dir)
			if err := s.Rewrite(); err != nil {
				b.Fatal(err)
			}
			closeT(b, s)
		}
		b.Run(map[bool]string{false: "history", true: "rewritten"}[rewrite], func(b *testing.B) {
			for b.Loop() {
				s, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(fileSize(b, filepath.Join(dir, FileName)))/(1<<20), "MB-file")
		})
	}
}
