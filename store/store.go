package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tidwall/buntdb"
)

// FileName is the name of the store's file in its directory.
const FileName = "ballot.db"

// tmpFileName is the name of the file Rewrite, InstallSnapshot and Restore build
// before renaming it to FileName. It is complete only once renamed; one left behind
// by a crash is removed by Open.
const tmpFileName = FileName + ".tmp"

// Errors returned by the store, wrapped with the file's path (and slot where one is
// involved); check them with errors.Is.
var (
	// ErrCorrupt: the file, or a record in it, is not what the store wrote.
	ErrCorrupt = errors.New("corrupt store")
	// ErrDiskFailed: a write or fsync of the file failed. The store refuses every
	// later write (Save, Apply, Compact, DropLog, SetRebuildTo, SetConfig, Rewrite,
	// InstallSnapshot): after a failed fsync the kernel may have dropped the dirty
	// pages, so nothing the store remembers can be trusted to be on disk. The error
	// names the file, the operation and the system's error (for a full disk, the
	// data directory too).
	ErrDiskFailed = errors.New("disk write failed; store stopped")
	// ErrOutOfOrder: Apply was given an entry that does not follow the applied slot.
	ErrOutOfOrder = errors.New("entry out of order")
	// ErrInvalidEntry: Save or Apply was given an entry with slot 0 or an unknown kind.
	ErrInvalidEntry = errors.New("invalid entry")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrNotApplied: Compact was asked to drop log entries that are not applied yet.
	ErrNotApplied = errors.New("slot not applied yet")
	// ErrNoSpace: Rewrite, WriteSnapshot or InstallSnapshot did not start because
	// the file system lacks room for the new file (see checkSpace); nothing
	// changed and the store goes on.
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrStaleSnapshot: InstallSnapshot was given a snapshot whose slot is not above
	// the applied slot; installing it would move the state back.
	ErrStaleSnapshot = errors.New("snapshot is not newer than the applied slot")
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Logger receives one line per event worth knowing (opened, incomplete last
	// write dropped, interrupted apply completed, file rewritten, snapshot
	// installed, disk failure). Nil discards.
	Logger *slog.Logger

	// faults make the file fail on purpose (tests, and binaries built with the
	// ballotfaults tag); the zero value injects nothing.
	faults diskFaults
	// maxWriters replaces MaxWriters in tests; 0 means MaxWriters.
	maxWriters int
}

// Store is a replica's durable state in one buntdb file. All methods are safe for
// concurrent use; Save, Apply, Compact and Close run one at a time, and Rewrite and
// InstallSnapshot one at a time, holding those back only at their start and end.
type Store struct {
	path   string
	logger *slog.Logger

	// mu serialises the writers (Save, Apply, Compact, Close, and the last step of
	// Rewrite and InstallSnapshot), so that each starts from the state the previous
	// one left and the descriptor is never closed under an fsync. It guards file,
	// failed and closed.
	mu sync.Mutex
	// file is a second descriptor of path, used only to fsync it: buntdb ignores
	// fsync errors, and an fsync through any descriptor flushes the file.
	file   *os.File
	failed error // the first write or fsync failure, wrapping ErrDiskFailed
	closed bool

	// dbMu guards db, which Rewrite and InstallSnapshot replace. db is written with
	// both mu and dbMu held, so a writer holding mu reads it freely; readers take
	// dbMu for reading around each use (see view). buntdb.DB itself is safe for
	// concurrent use.
	dbMu sync.RWMutex
	db   *buntdb.DB

	// rewriteMu lets one Rewrite or InstallSnapshot run at a time; it guards the
	// temporary file. It is taken before mu, never after.
	rewriteMu sync.Mutex
	// beforeSwap, when set (by tests), runs after a rewrite has built and loaded
	// the new file and before it takes mu to catch up and rename: a point where a
	// crash leaves the temporary file behind and where writers run concurrently.
	// An error from it abandons the rewrite.
	beforeSwap func(tmp string) error
	// afterCatchUp, when set (by tests), runs after a rewrite has caught up
	// without mu and before swapLocked catches up with the rest.
	afterCatchUp func() error
	// faults fail writes and fsyncs on purpose (Options.faults).
	faults diskFaults
	// maxWriters bounds the de-duplication table (MaxWriters but in tests).
	maxWriters int

	// clients mirrors the "c/" records, the de-duplication table, decoded: Apply
	// consults it for every command, and a map lookup costs far less than a
	// search of buntdb's index. Written by Apply and when the file is loaded or
	// replaced, always with mu held, and read by Apply only.
	clients map[uint64]dedupRecord

	// Written with mu held, read without it.
	applied    atomic.Uint64 // last applied slot
	compacted  atomic.Uint64 // slot up to which the log was compacted
	userKeys   atomic.Int64  // number of "d/" keys
	logEntries atomic.Int64  // number of "l/" keys
}

// Open opens the store in dir, creating dir and the file if needed. A file that is
// not a buntdb file, or that is damaged before its last record, fails with an error
// naming its path and wrapping ErrCorrupt. An incomplete last record (a write cut
// short by a crash) is dropped, as buntdb does, and logged. An Apply that a crash
// interrupted is completed before Open returns.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, FileName)
	logger = logger.With("path", path)

	createdDir := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		createdDir = true
	}
	tmp := filepath.Join(dir, tmpFileName)
	if err := os.Remove(tmp); err == nil {
		logger.Warn("removed the unfinished file of an interrupted rewrite or snapshot install", "file", tmp)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: remove %s: %w", path, tmp, err)
	}
	sizeBefore := int64(-1)
	if fi, err := os.Stat(path); err == nil {
		sizeBefore = fi.Size()
	}
	nulTail, err := checkFile(path)
	if err != nil {
		return nil, err
	}

	db, err := openBunt(path)
	if err != nil {
		return nil, err
	}
	if err := db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Never, AutoShrinkDisabled: true}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: configure: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s for sync: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && sizeBefore > fi.Size() {
		logger.Warn("dropped an incomplete last write", "bytes", sizeBefore-fi.Size())
	}
	if nulTail >= 0 {
		// buntdb writes next at nulTail, over the NUL bytes; cut them so that the
		// file's length is where the next record goes.
		if err := f.Truncate(nulTail); err != nil {
			_ = f.Close()
			_ = db.Close()
			return nil, fmt.Errorf("open %s: cut NUL bytes after the last record: %w", path, err)
		}
		logger.Info("cut NUL bytes after the last record", "bytes", sizeBefore-nulTail)
	}
	s := &Store{path: path, logger: logger, db: db, file: f, faults: opts.faults, maxWriters: opts.maxWriters}
	if s.maxWriters <= 0 {
		s.maxWriters = MaxWriters
	}
	if err := s.load(); err != nil {
		_ = s.Close()
		return nil, err
	}
	// Make the file, its length (buntdb may have cut a torn tail) and its directory
	// entry durable before anything is promised on top of them.
	if err := s.syncAll(createdDir); err != nil {
		_ = s.Close()
		return nil, err
	}
	logger.Info("store opened", "applied", s.applied.Load(), "compacted", s.compacted.Load(),
		"log_entries", s.logEntries.Load(), "keys", s.userKeys.Load())
	return s, nil
}

// openBunt opens the buntdb file. buntdb's loader indexes into records without
// checking their length, so a damaged file can make it panic; that, like its
// ErrInvalid, means a corrupt file.
func openBunt(path string) (db *buntdb.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("open %s: %w: buntdb: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = buntdb.Open(path)
	if errors.Is(err, buntdb.ErrInvalid) {
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// load completes an interrupted Apply and reads the counters.
func (s *Store) load() error {
	if err := s.finishInterruptedApply(); err != nil {
		return err
	}
	c, err := readCounters(s.db)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	clients, err := readClients(s.db)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	s.setCounters(c)
	s.clients = clients
	return nil
}

// readClients decodes every de-duplication record.
func readClients(db *buntdb.DB) (map[uint64]dedupRecord, error) {
	clients := make(map[uint64]dedupRecord)
	err := db.View(func(tx *buntdb.Tx) error {
		var bad error
		err := tx.AscendRange("", prefixClient, endClient, func(key, val string) bool {
			id, err := strconv.ParseUint(strings.TrimPrefix(key, prefixClient), 10, 64)
			if err != nil {
				bad = corruptRecord(key, err)
				return false
			}
			rec, err := decodeDedup(val)
			if err != nil {
				bad = corruptRecord(key, err)
				return false
			}
			clients[id] = rec
			return true
		})
		if err != nil {
			return fmt.Errorf("read de-duplication records: %w", err)
		}
		return bad
	})
	return clients, err
}

// counters are the figures the store keeps in memory for its readers.
type counters struct {
	applied, compacted   uint64
	userKeys, logEntries int64
}

func readCounters(db *buntdb.DB) (counters, error) {
	var c counters
	err := db.View(func(tx *buntdb.Tx) error {
		var err error
		if c.applied, err = getSlot(tx, keyApplied); err != nil {
			return corruptRecord(keyApplied, err)
		}
		if c.compacted, err = getSlot(tx, keyCompacted); err != nil {
			return corruptRecord(keyCompacted, err)
		}
		if err := tx.AscendRange("", prefixData, endData, func(_, _ string) bool { c.userKeys++; return true }); err != nil {
			return fmt.Errorf("count keys: %w", err)
		}
		if err := tx.AscendRange("", prefixLog, endLog, func(_, _ string) bool { c.logEntries++; return true }); err != nil {
			return fmt.Errorf("count log entries: %w", err)
		}
		return nil
	})
	return c, err
}

// setCounters publishes c. mu must be held (or the store not yet shared).
func (s *Store) setCounters(c counters) {
	s.applied.Store(c.applied)
	s.compacted.Store(c.compacted)
	s.userKeys.Store(c.userKeys)
	s.logEntries.Store(c.logEntries)
}

// syncAll fsyncs the file and its directory and, when Open created the directory,
// the directory's parent.
func (s *Store) syncAll(createdDir bool) error {
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("open %s: fsync: %w", s.path, err)
	}
	dirs := []string{filepath.Dir(s.path)}
	if createdDir {
		dirs = append(dirs, filepath.Dir(dirs[0]))
	}
	for _, dir := range dirs {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("open %s: fsync directory %s: %w", s.path, dir, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close syncs and closes the file. Later calls return ErrClosed (Close returns nil).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.failed == nil {
		// Apply does not sync; make its writes durable now.
		if err := s.file.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("fsync: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.file.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path of the store's file.
func (s *Store) Path() string { return s.path }

// FileSize returns the size of the store's file in bytes (0 if it cannot be read).
// buntdb appends every change, so it grows with the history, not the data; Rewrite
// brings it back to the size of the live records.
func (s *Store) FileSize() int64 {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// view runs fn in a read-only transaction of the current buntdb file. Readers use it
// rather than s.db, which a rewrite replaces.
func (s *Store) view(fn func(tx *buntdb.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(fn)
}

// usable returns why the store may not be written, if it may not. mu must be held.
func (s *Store) usable() error {
	if s.closed {
		return fmt.Errorf("%s: %w", s.path, ErrClosed)
	}
	return s.failed
}

// update runs fn in one buntdb transaction. An error from fn is returned as it is; a
// failure to commit (buntdb's write to the file) makes the store refuse all later
// writes, since what reached the file is unknown. buntdb rolls a transaction whose
// write failed back in memory (and cuts what part of it reached the file), so the
// store's memory is never ahead of its file. mu must be held.
func (s *Store) update(op string, fn func(tx *buntdb.Tx) error) error {
	var fnErr error
	err := s.db.Update(func(tx *buntdb.Tx) error {
		if fnErr = fn(tx); fnErr != nil {
			return fnErr
		}
		if s.faults.write != nil {
			// Failing here rolls the transaction back with nothing written,
			// which is where buntdb leaves a write that failed.
			return s.faults.write()
		}
		return nil
	})
	if err == nil || fnErr != nil {
		return err
	}
	return s.fail(op, "write", err)
}

// sync fsyncs the file through the store's own descriptor and checks the result
// (buntdb would ignore it). mu must be held.
func (s *Store) sync(op string) error {
	err := s.file.Sync()
	if err == nil && s.faults.sync != nil {
		err = s.faults.sync()
	}
	if err != nil {
		return s.fail(op, "fsync", err)
	}
	return nil
}

// fail records the first disk failure, after which every write is refused, and
// logs it once. The error names the operation, the file and the system's error;
// for a full disk it also names the data directory and what to do.
func (s *Store) fail(op, what string, err error) error {
	if s.failed == nil {
		hint := ""
		if isNoSpace(err) {
			hint = fmt.Sprintf(" (the disk of data directory %s is full: free space there, then restart the replica)",
				filepath.Dir(s.path))
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// The system's error names the call and a file: buntdb's descriptor
			// still bears the temporary name a rewrite opened it under, so name
			// the store's file instead.
			what, err = pe.Op, pe.Err
		}
		s.failed = fmt.Errorf("%w: %s: %s %s: %w%s", ErrDiskFailed, op, what, s.path, err, hint)
		s.logger.Error("disk failure: the store refuses every further write", "op", op, "err", s.failed)
	}
	return s.failed
}

// isNoSpace reports whether err means the file system is full (or the quota used
// up): freeing space, unlike a failing disk, lets the replica go on.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// corruptRecord wraps a decoding error of the record under key; callers add the path.
func corruptRecord(key string, err error) error {
	return fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
}

// viewErr turns buntdb's closed error into ErrClosed.
func viewErr(err error) error {
	if errors.Is(err, buntdb.ErrDatabaseClosed) {
		return ErrClosed
	}
	return err
}

// getSlot reads a uvarint slot record; a missing record is slot 0.
func getSlot(tx *buntdb.Tx, key string) (uint64, error) {
	v, err := tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeSlot(v)
}
