package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/ballot-kv/ballot/peer"
)

// Rewrite, InstallSnapshot and Restore build a complete new buntdb file beside the
// store's file, under tmpFileName, and rename it over FileName once it is fsync'd. A
// crash before the rename leaves the old file, whole, and the temporary one, which
// Open removes; after the rename, the new file, whole. Rewrite and InstallSnapshot
// proceed in three steps:
//
//  1. capture: with mu held, so that no writer runs, one read transaction collects
//     references to the records the new file starts from, and the length of the
//     store's file is noted. mu is released.
//  2. build: the new file is written from those records, fsync'd and loaded into a
//     second buntdb (the slow part: parsing and indexing every record), while the
//     store serves readers and writers from the old one.
//  3. swap: with mu held again, the records the old file gained since step 1 (whole
//     buntdb records: writers hold mu while they write) are read from it and written
//     to the new one in one transaction; the new file is fsync'd, renamed over the
//     old, the directory fsync'd, and the store's buntdb replaced. Readers wait only
//     for the pointer swap, writers for step 3.
//
// buntdb's own Shrink is not used: it renames its rewritten file without syncing it
// or its directory, so a crash can leave an empty or partial file under the store's
// name.

// Rewrite rewrites the store's file to hold only its live records. buntdb appends
// every change to the file and never removes anything, so the file grows with the
// history: every overwritten value, every deleted key, every compacted log entry.
// After Rewrite it is about the size of what the store holds (FileSize).
//
// Cost: the records are collected in one read transaction with the writers held
// back (about as long as WriteSnapshot holds them); the new file is written and
// loaded without holding anyone back, but memory holds two copies of the index
// until the swap; writers then wait for the catch-up, two fsyncs and a rename,
// readers only for the swap itself. The file after Rewrite has the same records as
// before, so the state does not change.
func (s *Store) Rewrite() error {
	s.rewriteMu.Lock()
	defer s.rewriteMu.Unlock()
	started, before := time.Now(), s.FileSize()

	var recs []record
	offset, err := s.capture("rewrite", func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			recs = append(recs, record{k, v})
			return true
		})
	})
	if err != nil {
		return err
	}
	var need int64
	for _, r := range recs {
		need += recordBytes(len(r.key), len(r.val))
	}
	if err := checkSpace("rewrite "+s.path, filepath.Dir(s.path), need); err != nil {
		return err
	}
	tmp := s.tmpPath()
	fb, err := createFile(tmp)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", s.path, err)
	}
	for _, r := range recs {
		if err := fb.set(r.key, r.val); err != nil {
			fb.abort()
			return fmt.Errorf("rewrite %s: %w", s.path, err)
		}
	}
	recs = nil
	if err := fb.finish(); err != nil {
		return fmt.Errorf("rewrite %s: %w", s.path, err)
	}
	err = s.swap(swapPlan{
		op:      "rewrite",
		tmp:     tmp,
		offset:  offset,
		inSteps: true,
		replay: func(tx *buntdb.Tx, ops []tailOp) error {
			for _, op := range ops {
				if err := op.do(tx); err != nil {
					return err
				}
			}
			return nil
		},
		counters: func(db *buntdb.DB) (counters, error) {
			c, err := readCounters(db)
			if err != nil {
				return counters{}, err
			}
			// The state must be what it was; anything else is a bug in the rewrite,
			// and the old file is kept.
			if was := s.currentCounters(); c != was {
				return counters{}, fmt.Errorf("new file holds %+v, store holds %+v", c, was)
			}
			return c, nil
		},
	})
	if err != nil {
		return err
	}
	s.logger.Info("rewrote the file", "bytes_before", before, "bytes_after", s.FileSize(),
		"took", time.Since(started).Round(time.Millisecond))
	return nil
}

// InstallSnapshot replaces the store's state machine with the snapshot at path,
// which must verify (ReadSnapshotInfo) and hold a slot above the applied slot (else
// ErrStaleSnapshot); otherwise nothing changes. Afterwards the store holds the
// snapshot's data and de-duplication records, applied slot = compacted slot = the
// snapshot's slot, no Apply intent, and of the acceptor's state: the same promise
// and the accepted entries above the snapshot's slot. Entries at or below it are
// dropped, after their ballots are counted into the stored promise (as Compact
// does), so the promise Durable reports never goes down.
//
// The change is made by a rewrite of the file (see Rewrite), so it is atomic with
// respect to crashes: a crash leaves the old state or the new one. Writers may run
// meanwhile: what Save and Compact write to the acceptor's records carries over;
// what Apply writes is superseded by the snapshot. If an Apply reaches the
// snapshot's slot first, InstallSnapshot fails with ErrStaleSnapshot.
func (s *Store) InstallSnapshot(path string) (SnapshotInfo, error) {
	s.rewriteMu.Lock()
	defer s.rewriteMu.Unlock()
	started := time.Now()
	if fi, err := os.Stat(path); err == nil {
		// The new file holds the snapshot's records in buntdb's format, which
		// takes about 30 bytes more per record: up to twice the snapshot's size.
		if err := checkSpace("install snapshot into "+s.path, filepath.Dir(s.path), 2*fi.Size()); err != nil {
			return SnapshotInfo{}, err
		}
	}
	tmp := s.tmpPath()
	fb, err := createFile(tmp)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("install snapshot %s into %s: %w", path, s.path, err)
	}
	info, err := readSnapshot(path, fb.setBytes)
	if err != nil {
		fb.abort()
		return SnapshotInfo{}, fmt.Errorf("install snapshot into %s: %w", s.path, err)
	}
	stale := func() error {
		if applied := s.applied.Load(); info.Index <= applied {
			return fmt.Errorf("install snapshot %s at slot %d into %s: %w: applied slot is %d",
				path, info.Index, s.path, ErrStaleSnapshot, applied)
		}
		return nil
	}
	if err := stale(); err != nil {
		fb.abort()
		return SnapshotInfo{}, err
	}

	var (
		promised peer.Ballot
		kept     []record
	)
	offset, err := s.capture("install snapshot", func(tx *buntdb.Tx) error {
		if v, err := tx.Get(keyRebuild); err == nil {
			kept = append(kept, record{keyRebuild, v}) // the rebuild goes on
		}
		v, err := tx.Get(keyPromised)
		switch {
		case errors.Is(err, buntdb.ErrNotFound):
		case err != nil:
			return err
		default:
			if promised, err = decodeBallot(v); err != nil {
				return corruptRecord(keyPromised, err)
			}
		}
		var iterErr error
		err = tx.AscendRange("", prefixLog, endLog, func(k, v string) bool {
			slot, b, err := entryBallot(k, v)
			if err != nil {
				iterErr = err
				return false
			}
			if promised.Less(b) {
				promised = b
			}
			if slot > info.Index {
				kept = append(kept, record{k, v})
			}
			return true
		})
		if iterErr != nil {
			return iterErr
		}
		return err
	})
	if err != nil {
		fb.abort()
		return SnapshotInfo{}, err
	}
	if !promised.IsZero() {
		kept = append(kept, record{keyPromised, encodeBallot(promised)})
	}
	kept = append(kept, record{keyApplied, encodeSlot(info.Index)}, record{keyCompacted, encodeSlot(info.Index)})
	for _, r := range kept {
		if err := fb.set(r.key, r.val); err != nil {
			fb.abort()
			return SnapshotInfo{}, fmt.Errorf("install snapshot into %s: %w", s.path, err)
		}
	}
	if err := fb.finish(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("install snapshot into %s: %w", s.path, err)
	}

	err = s.swap(swapPlan{
		op:     "install snapshot",
		tmp:    tmp,
		offset: offset,
		check:  stale,
		replay: func(tx *buntdb.Tx, ops []tailOp) error {
			return replayAcceptor(tx, ops, info.Index, promised)
		},
		counters: func(db *buntdb.DB) (counters, error) {
			c, err := readCounters(db)
			if err == nil && (c.applied != info.Index || c.userKeys != info.Keys) {
				err = fmt.Errorf("new file holds %+v, snapshot has slot %d and %d keys", c, info.Index, info.Keys)
			}
			return c, err
		},
	})
	if err != nil {
		return SnapshotInfo{}, err
	}
	s.logger.Debug("installed a snapshot", "file", path, "slot", info.Index, "keys", info.Keys,
		"log_entries", s.logEntries.Load(), "took", time.Since(started).Round(time.Millisecond))
	return info, nil
}

// replayAcceptor carries what Save and Compact wrote during an InstallSnapshot over
// to the new file: promises, and entries above the snapshot's slot. An entry at or
// below it is not kept, but its ballot counts as a promise. Everything else those
// writers and Apply wrote (data, de-duplication records, the applied and compacted
// slots, the intent) the snapshot supersedes.
func replayAcceptor(tx *buntdb.Tx, ops []tailOp, index uint64, promised peer.Ballot) error {
	highest := promised
	for _, op := range ops {
		switch {
		case op.key == keyRebuild:
			if err := op.do(tx); err != nil {
				return err
			}
		case op.key == keyPromised && !op.del:
			b, err := decodeBallot(op.val)
			if err != nil {
				return corruptRecord(op.key, err)
			}
			if highest.Less(b) {
				highest = b
			}
		case strings.HasPrefix(op.key, prefixLog):
			slot, err := slotOfLogKey(op.key)
			if err != nil {
				return corruptRecord(op.key, err)
			}
			if slot > index {
				if err := op.do(tx); err != nil {
					return err
				}
				continue
			}
			if op.del {
				continue
			}
			_, b, err := entryBallot(op.key, op.val)
			if err != nil {
				return err
			}
			if highest.Less(b) {
				highest = b
			}
		}
	}
	if promised.Less(highest) {
		if _, _, err := tx.Set(keyPromised, encodeBallot(highest), nil); err != nil {
			return err
		}
	}
	return nil
}

// entryBallot decodes the slot and ballot of a log record.
func entryBallot(key, val string) (uint64, peer.Ballot, error) {
	slot, err := slotOfLogKey(key)
	if err != nil {
		return 0, peer.Ballot{}, corruptRecord(key, err)
	}
	e, err := decodeEntry(slot, val)
	if err != nil {
		return 0, peer.Ballot{}, fmt.Errorf("slot %d: %w", slot, corruptRecord(key, err))
	}
	return slot, e.Ballot, nil
}

// Restore creates a store in dir from the snapshot at path, for disaster recovery:
// its data and de-duplication records, applied slot = compacted slot = the
// snapshot's slot, no promise and an empty log. The snapshot is verified first. dir
// is created if needed; if it already holds a store file, Restore refuses and names
// it. The file is fsync'd, renamed into place and the directory fsync'd, so after
// Restore returns, Open(dir) finds the restored store even after a crash; a crash
// before leaves no store file (only a temporary one, which Open removes).
//
// Restore must not run while a server uses dir.
func Restore(dir, path string) (SnapshotInfo, error) {
	file := filepath.Join(dir, FileName)
	if _, err := os.Lstat(file); err == nil {
		return SnapshotInfo{}, fmt.Errorf("restore %s from %s: %w: a store file is already there", file, path, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return SnapshotInfo{}, fmt.Errorf("restore %s from %s: %w", file, path, err)
	}
	createdDir := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore %s from %s: %w", file, path, err)
		}
		createdDir = true
	}
	tmp := filepath.Join(dir, tmpFileName)
	fb, err := createFile(tmp)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore %s from %s: %w", file, path, err)
	}
	info, err := readSnapshot(path, fb.setBytes)
	if err == nil {
		err = fb.set(keyApplied, encodeSlot(info.Index))
	}
	if err == nil {
		err = fb.set(keyCompacted, encodeSlot(info.Index))
	}
	if err != nil {
		fb.abort()
		return SnapshotInfo{}, fmt.Errorf("restore %s: %w", file, err)
	}
	if err := fb.finish(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("restore %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return SnapshotInfo{}, fmt.Errorf("restore %s: %w", file, err)
	}
	dirs := []string{dir}
	if createdDir {
		dirs = append(dirs, filepath.Dir(dir))
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return SnapshotInfo{}, fmt.Errorf("restore %s: fsync directory %s: %w", file, d, err)
		}
	}
	return info, nil
}

// record is one buntdb key and value. The strings are buntdb's own (Go strings are
// immutable), so collecting them inside a transaction copies nothing.
type record struct{ key, val string }

func (s *Store) tmpPath() string { return filepath.Join(filepath.Dir(s.path), tmpFileName) }

// currentCounters returns the published counters. mu must be held for them to agree.
func (s *Store) currentCounters() counters {
	return counters{
		applied:    s.applied.Load(),
		compacted:  s.compacted.Load(),
		userKeys:   s.userKeys.Load(),
		logEntries: s.logEntries.Load(),
	}
}

// capture runs fn in a read transaction with mu held, and returns the length of the
// store's file at that moment: what the file gains after it, the swap copies over.
func (s *Store) capture(op string, fn func(tx *buntdb.Tx) error) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := s.db.View(fn); err != nil {
		return 0, fmt.Errorf("%s %s: %w", op, s.path, err)
	}
	fi, err := s.file.Stat()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", op, s.path, err)
	}
	return fi.Size(), nil
}

// swapPlan says how to finish a rewrite whose new file is built.
type swapPlan struct {
	op     string
	tmp    string // the new file, complete up to the capture and fsync'd
	offset int64  // length of the store's file at the capture
	// check runs with mu held before the catch-up; an error abandons the rewrite.
	check func() error
	// replay writes to the new file, in one transaction, what the store's file
	// gained after the capture.
	replay func(tx *buntdb.Tx, ops []tailOp) error
	// inSteps: replay may be called again with the writes after those of its
	// last call, which lets swap catch up with most of them before it takes mu.
	inSteps bool
	// counters reads the new file's counters; an error abandons the rewrite.
	counters func(db *buntdb.DB) (counters, error)
}

// swap loads the new file, catches it up with the store's file and puts it in the
// store's place. Until the rename, any failure leaves the store as it was (and
// removes the new file); a failure to sync the directory after the rename is a disk
// failure.
func (s *Store) swap(p swapPlan) error {
	fail := func(err error) error { return fmt.Errorf("%s %s: %w", p.op, s.path, err) }
	db, err := openBunt(p.tmp)
	if err != nil {
		_ = os.Remove(p.tmp)
		return fail(fmt.Errorf("load the new file: %w", err))
	}
	f, err := os.OpenFile(p.tmp, os.O_RDWR, 0)
	if err == nil {
		err = db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Never, AutoShrinkDisabled: true})
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = db.Close()
			if f != nil {
				_ = f.Close()
			}
			_ = os.Remove(p.tmp)
		}
	}()
	if err != nil {
		return fail(err)
	}
	if s.beforeSwap != nil {
		if err := s.beforeSwap(p.tmp); err != nil {
			return fail(err)
		}
	}
	if p.inSteps {
		// Under load the store's file gains megabytes while the new file is
		// built; replaying them and syncing the new file with mu held would
		// stop every writer for as long (tens of milliseconds measured). Most
		// of it is done here, and swapLocked catches up with the rest.
		if p.offset, err = s.catchUp(p, db, f); err != nil {
			return fail(err)
		}
		if s.afterCatchUp != nil {
			if err := s.afterCatchUp(); err != nil {
				return fail(err)
			}
		}
	}
	old, oldFile, err := s.swapLocked(p, db, f)
	if old != nil {
		swapped = true
		// No reader or writer uses them any more.
		_ = old.Close()
		_ = oldFile.Close()
	}
	return err
}

// catchUp replays into db what the store's file gained from p.offset to its length
// at the call, and syncs the new file, holding mu only to read that length: with
// mu held the file ends with a whole record. It returns the length.
func (s *Store) catchUp(p swapPlan, db *buntdb.DB, f *os.File) (int64, error) {
	s.mu.Lock()
	err := s.usable()
	file := s.file
	var end int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = file.Stat(); err == nil {
			end = fi.Size()
		}
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	// file stays the store's until swapLocked replaces it, which only this
	// rewrite can do (rewriteMu), and reading it concurrently with appends is
	// safe.
	ops, err := readRecords(file, p.offset, end)
	if err != nil {
		return 0, fmt.Errorf("catch up: %w", err)
	}
	if len(ops) > 0 {
		if err := db.Update(func(tx *buntdb.Tx) error { return p.replay(tx, ops) }); err != nil {
			return 0, fmt.Errorf("catch up %d writes: %w", len(ops), err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", p.tmp, err)
	}
	return end, nil
}

// swapLocked is the part of swap that holds mu. When db and f replace the store's,
// it returns the old ones for closing.
func (s *Store) swapLocked(p swapPlan, db *buntdb.DB, f *os.File) (old *buntdb.DB, oldFile *os.File, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(format string, args ...any) (*buntdb.DB, *os.File, error) {
		return nil, nil, fmt.Errorf("%s %s: %w", p.op, s.path, fmt.Errorf(format, args...))
	}
	if err := s.usable(); err != nil {
		return nil, nil, err
	}
	if p.check != nil {
		if err := p.check(); err != nil {
			return nil, nil, err
		}
	}
	ops, err := s.readTail(p.offset)
	if err != nil {
		return fail("catch up: %w", err)
	}
	if len(ops) > 0 {
		if err := db.Update(func(tx *buntdb.Tx) error { return p.replay(tx, ops) }); err != nil {
			return fail("catch up %d writes: %w", len(ops), err)
		}
	}
	c, err := p.counters(db)
	if err != nil {
		return fail("check the new file: %w", err)
	}
	clients, err := readClients(db)
	if err != nil {
		return fail("check the new file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync %s: %w", p.tmp, err)
	}
	if err := os.Rename(p.tmp, s.path); err != nil {
		return fail("%w", err)
	}
	// The new file is the store's from here on, whatever happens next.
	dirErr := syncDir(filepath.Dir(s.path))
	s.dbMu.Lock()
	old, oldFile = s.db, s.file
	s.db, s.file = db, f
	s.setCounters(c)
	s.clients = clients
	s.dbMu.Unlock()
	if dirErr != nil {
		return old, oldFile, s.fail(p.op, "fsync directory of", dirErr)
	}
	return old, oldFile, nil
}

// tailOp is one write the store's file gained during a rewrite.
type tailOp struct {
	key, val string
	del      bool
}

func (op tailOp) do(tx *buntdb.Tx) error {
	if op.del {
		if _, err := tx.Delete(op.key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
			return err
		}
		return nil
	}
	_, _, err := tx.Set(op.key, op.val, nil)
	return err
}

// readTail reads the records the store's file gained after offset. mu must be held:
// then the file ends with a whole record (each writer's transaction is one write).
func (s *Store) readTail(offset int64) ([]tailOp, error) {
	fi, err := s.file.Stat()
	if err != nil {
		return nil, err
	}
	return readRecords(s.file, offset, fi.Size())
}

// readRecords reads the records of file from offset to end, which must be
// record boundaries.
func readRecords(file *os.File, offset, end int64) ([]tailOp, error) {
	if end < offset {
		return nil, fmt.Errorf("the file shrank from %d to %d bytes", offset, end)
	}
	b := make([]byte, end-offset)
	if _, err := file.ReadAt(b, offset); err != nil {
		return nil, fmt.Errorf("read the last %d bytes: %w", len(b), err)
	}
	ops, err := parseRecords(b)
	if err != nil {
		return nil, fmt.Errorf("read the last %d bytes: %w", len(b), err)
	}
	return ops, nil
}

// parseRecords parses buntdb records: "set" with a key and value, or "del" with a
// key, the only ones the store makes buntdb write.
func parseRecords(b []byte) ([]tailOp, error) {
	var ops []tailOp
	for off := 0; off < len(b); {
		parts, n, err := parseRecord(b[off:])
		if err != nil {
			return nil, fmt.Errorf("%w: record at offset %d of the tail: %w", ErrCorrupt, off, err)
		}
		switch {
		case len(parts) == 3 && strings.EqualFold(parts[0], "set"):
			ops = append(ops, tailOp{key: parts[1], val: parts[2]})
		case len(parts) == 2 && strings.EqualFold(parts[0], "del"):
			ops = append(ops, tailOp{key: parts[1], del: true})
		default:
			return nil, fmt.Errorf("%w: record at offset %d of the tail: not a set or del", ErrCorrupt, off)
		}
		off += n
	}
	return ops, nil
}

// parseRecord parses one RESP array of bulk strings at the start of b and returns
// its parts and size.
func parseRecord(b []byte) (parts []string, size int, err error) {
	count, off, err := parseCount(b, 0, '*')
	if err != nil {
		return nil, 0, err
	}
	for range count {
		var l int
		if l, off, err = parseCount(b, off, '$'); err != nil {
			return nil, 0, err
		}
		if l > len(b)-off-2 {
			return nil, 0, errNotRecord
		}
		if b[off+l] != '\r' || b[off+l+1] != '\n' {
			return nil, 0, errNotRecord
		}
		parts = append(parts, string(b[off:off+l]))
		off += l + 2
	}
	return parts, off, nil
}

// parseCount parses <marker><decimal>\r\n at b[off:] and returns the number and the
// offset after it.
func parseCount(b []byte, off int, marker byte) (int, int, error) {
	if off >= len(b) || b[off] != marker {
		return 0, 0, errNotRecord
	}
	end := off + 1
	for end < len(b) && b[end] != '\r' {
		end++
	}
	if end+1 >= len(b) || b[end+1] != '\n' {
		return 0, 0, errNotRecord
	}
	n, err := strconv.Atoi(string(b[off+1 : end]))
	if err != nil || n < 0 {
		return 0, 0, errNotRecord
	}
	return n, end + 2, nil
}

// fileBuilder writes a new buntdb file, one "set" record per key, in the format of
// buntdb's own writes: "*3\r\n$3\r\nset\r\n$<len>\r\n<key>\r\n$<len>\r\n<value>\r\n".
type fileBuilder struct {
	path string
	f    *os.File
	buf  []byte
}

// createFile creates (or empties) the file at path for building.
func createFile(path string) (*fileBuilder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	return &fileBuilder{path: path, f: f, buf: make([]byte, 0, 1<<16)}, nil
}

func (b *fileBuilder) set(key, val string) error {
	b.buf = appendSet(b.buf, key, val)
	return b.spill()
}

func (b *fileBuilder) setBytes(key, val []byte) error {
	b.buf = appendSet(b.buf, key, val)
	return b.spill()
}

func appendSet[T string | []byte](b []byte, key, val T) []byte {
	b = append(b, "*3\r\n$3\r\nset\r\n$"...)
	b = strconv.AppendInt(b, int64(len(key)), 10)
	b = append(b, "\r\n"...)
	b = append(b, key...)
	b = append(b, "\r\n$"...)
	b = strconv.AppendInt(b, int64(len(val)), 10)
	b = append(b, "\r\n"...)
	b = append(b, val...)
	return append(b, "\r\n"...)
}

// spill writes the buffer out once it holds 64 KiB.
func (b *fileBuilder) spill() error {
	if len(b.buf) < 1<<16 {
		return nil
	}
	return b.flush()
}

func (b *fileBuilder) flush() error {
	if _, err := b.f.Write(b.buf); err != nil {
		return fmt.Errorf("write %s: %w", b.path, err)
	}
	b.buf = b.buf[:0]
	return nil
}

// finish writes out the rest, fsyncs and closes the file; on failure it removes it.
func (b *fileBuilder) finish() error {
	err := b.flush()
	if err == nil {
		if err = b.f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", b.path, err)
		}
	}
	if cerr := b.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", b.path, cerr)
	}
	if err != nil {
		_ = os.Remove(b.path)
	}
	return err
}

// abort closes and removes the file.
func (b *fileBuilder) abort() {
	_ = b.f.Close()
	_ = os.Remove(b.path)
}
