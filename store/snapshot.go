package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tidwall/buntdb"
)

// Snapshot file format, version 1. All integers are uvarints.
//
//	header   "BALLOT-SNAPSHOT\n", version, applied slot, compacted slot, record count
//	records  count times: key length, key, value length, value
//	trailer  SHA-256 of every byte before it (32 bytes), then the end of the file
//
// Records are the store's own "c/" (de-duplication) and "d/" (data) records, keys as
// stored, in strictly ascending key order. Nothing of the acceptor (promise, log) is
// in a snapshot: it is the state machine at one slot, the same on every replica.
const (
	snapMagic   = "BALLOT-SNAPSHOT\n"
	snapVersion = 1
)

// SnapshotInfo describes a snapshot file.
type SnapshotInfo struct {
	// Index is the applied slot whose state the snapshot holds.
	Index uint64
	// Keys is the number of user keys in it.
	Keys int64
	// Size is the file's length in bytes.
	Size int64
	// Sum is the SHA-256 of the whole file, so that a receiver can check a file it
	// assembled from chunks before it reads it.
	Sum [32]byte
	// Path is the file's path.
	Path string
}

// stateView is the replicated state at one applied slot.
type stateView struct {
	applied, compacted uint64
	records            []record // "c/" then "d/" records, in key order
	keys               int64    // how many of them are "d/"
}

// captureState collects the state machine's records under mu, so that no Apply is
// half done (Apply writes its data and its applied slot in separate transactions),
// and only for as long as one read transaction takes. withClients includes the
// de-duplication records.
func (s *Store) captureState(op string, withClients bool) (stateView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		// After a disk failure memory may hold what never reached the disk.
		return stateView{}, fmt.Errorf("%s: %w", op, err)
	}
	st := stateView{records: make([]record, 0, s.userKeys.Load())}
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		if st.applied, err = getSlot(tx, keyApplied); err != nil {
			return corruptRecord(keyApplied, err)
		}
		if st.compacted, err = getSlot(tx, keyCompacted); err != nil {
			return corruptRecord(keyCompacted, err)
		}
		collect := func(k, v string) bool {
			st.records = append(st.records, record{k, v})
			return true
		}
		if withClients {
			if err := tx.AscendRange("", prefixClient, endClient, collect); err != nil {
				return err
			}
		}
		clients := len(st.records)
		if err := tx.AscendRange("", prefixData, endData, collect); err != nil {
			return err
		}
		st.keys = int64(len(st.records) - clients)
		if withClients {
			// The committed configuration is state too; "m/config" sorts after
			// every data key.
			if v, err := tx.Get(keyConfig); err == nil {
				st.records = append(st.records, record{keyConfig, v})
			}
		}
		return nil
	})
	if err != nil {
		return stateView{}, fmt.Errorf("%s %s: %w", op, s.path, viewErr(err))
	}
	return st, nil
}

// WriteSnapshot writes a snapshot of the state machine at the applied slot to path:
// every user key and de-duplication record, the applied slot and the compacted slot;
// not the promise or the log. It holds the writers back only while it collects
// references to the records (one read transaction); the file is written after. The
// file is written as path+".tmp", fsync'd, renamed to path and its directory
// fsync'd: when WriteSnapshot returns, the snapshot is durable, and a crash never
// leaves a partial file at path.
func (s *Store) WriteSnapshot(path string) (SnapshotInfo, error) {
	st, err := s.captureState("snapshot", true)
	if err != nil {
		return SnapshotInfo{}, err
	}
	need := int64(len(snapMagic) + 64 + sha256.Size)
	for _, r := range st.records {
		need += int64(len(r.key)+len(r.val)) + 2*binary.MaxVarintLen32
	}
	if err := checkSpace("snapshot "+s.path, filepath.Dir(path), need); err != nil {
		return SnapshotInfo{}, err
	}
	info, err := writeSnapshotFile(path, st)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot %s: %w", s.path, err)
	}
	s.logger.Debug("wrote a snapshot", "file", path, "slot", info.Index, "keys", info.Keys, "bytes", info.Size)
	return info, nil
}

func writeSnapshotFile(path string, st stateView) (info SnapshotInfo, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// One hash serves both sums: Sum leaves the state as it was, so after the
	// trailer is written into it, it sums the whole file.
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<16)
	b := make([]byte, 0, 64)
	b = append(b, snapMagic...)
	for _, v := range []uint64{snapVersion, st.applied, st.compacted, uint64(len(st.records))} {
		b = binary.AppendUvarint(b, v)
	}
	_, _ = w.Write(b)
	for _, r := range st.records {
		_, _ = w.Write(binary.AppendUvarint(b[:0], uint64(len(r.key))))
		_, _ = w.WriteString(r.key)
		_, _ = w.Write(binary.AppendUvarint(b[:0], uint64(len(r.val))))
		_, _ = w.WriteString(r.val)
	}
	if err := w.Flush(); err != nil { // bufio keeps the first write error
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: %w", tmp, err)
	}
	sum := h.Sum(nil)
	h.Write(sum)
	if _, err := f.Write(sum); err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: fsync: %w", tmp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return SnapshotInfo{}, fmt.Errorf("write snapshot %s: fsync directory: %w", path, err)
	}
	info = SnapshotInfo{Index: st.applied, Keys: st.keys, Size: fi.Size(), Path: path}
	h.Sum(info.Sum[:0])
	return info, nil
}

// ReadSnapshotInfo reads the snapshot file at path and checks all of it: the header,
// every record's structure and order, the checksum over the content and that the
// file ends right after it. A file that fails any check (torn, cut short, modified)
// is refused with an error that names it and wraps ErrCorrupt.
func ReadSnapshotInfo(path string) (SnapshotInfo, error) {
	return readSnapshot(path, nil)
}

// readSnapshot reads and verifies the snapshot file at path, calling fn (if not nil)
// with each record in order; key and val are valid only during the call. fn sees
// records before the checksum at the end is verified: if readSnapshot fails, the
// caller must throw away whatever fn built.
func readSnapshot(path string, fn func(key, val []byte) error) (SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("read snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("read snapshot: %w", err)
	}
	r := &snapReader{
		r:   bufio.NewReaderSize(f, 1<<16),
		h:   sha256.New(),
		end: fi.Size() - sha256.Size,
	}
	info := SnapshotInfo{Size: fi.Size(), Path: path}
	fail := func(format string, args ...any) (SnapshotInfo, error) {
		if r.err != nil && !errors.Is(r.err, errShort) {
			return SnapshotInfo{}, fmt.Errorf("read snapshot %s: %w", path, r.err)
		}
		return SnapshotInfo{}, fmt.Errorf("read snapshot %s: %w: %s", path, ErrCorrupt, fmt.Sprintf(format, args...))
	}

	var keyBuf, valBuf []byte
	if magic := r.bytes(len(snapMagic), &keyBuf); r.err != nil || string(magic) != snapMagic {
		return fail("not a snapshot file (no header)")
	}
	version := r.uvarint()
	if r.err == nil && version != snapVersion {
		return fail("unsupported version %d", version)
	}
	applied, compacted, count := r.uvarint(), r.uvarint(), r.uvarint()
	if r.err != nil {
		return fail("header cut short (file of %d bytes)", fi.Size())
	}
	// Every record takes at least 4 bytes (two lengths and a 2-byte prefix).
	if compacted > applied || count > uint64(fi.Size())/4 {
		return fail("header has compacted slot %d, applied slot %d, %d records in %d bytes",
			compacted, applied, count, fi.Size())
	}
	info.Index = applied
	var prev []byte
	for i := range count {
		key := r.bytes(int(min(r.uvarint(), uint64(fi.Size()))), &keyBuf)
		if r.err != nil {
			return fail("record %d of %d: key cut short at offset %d", i, count, r.off)
		}
		switch {
		case bytes.HasPrefix(key, []byte(prefixData)):
			info.Keys++
		case bytes.HasPrefix(key, []byte(prefixClient)):
		case string(key) == keyConfig:
		default:
			return fail("record %d: key %q is neither data, a de-duplication record nor the configuration", i, key)
		}
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return fail("record %d: key %q does not follow %q", i, key, prev)
		}
		prev = append(prev[:0], key...)
		val := r.bytes(int(min(r.uvarint(), uint64(fi.Size()))), &valBuf)
		if r.err != nil {
			return fail("record %d of %d: value cut short at offset %d", i, count, r.off)
		}
		if bytes.HasPrefix(key, []byte(prefixClient)) {
			if err := checkClientRecord(string(key), string(val)); err != nil {
				return fail("record %d: %v", i, err)
			}
		}
		if fn != nil {
			if err := fn(key, val); err != nil {
				return SnapshotInfo{}, fmt.Errorf("read snapshot %s: %w", path, err)
			}
		}
	}
	if r.off != r.end {
		return fail("%d bytes between the last record and the checksum", r.end-r.off)
	}
	want := r.h.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(r.r, got[:]); err != nil {
		return fail("checksum cut short")
	}
	if !bytes.Equal(got[:], want) {
		return fail("checksum mismatch: the file is not what was written")
	}
	if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
		return fail("bytes after the checksum")
	}
	r.h.Write(got[:])
	r.h.Sum(info.Sum[:0])
	return info, nil
}

// checkClientRecord checks a de-duplication record: a 20-digit client id and a value
// that decodes.
func checkClientRecord(key, val string) error {
	id := strings.TrimPrefix(key, prefixClient)
	if len(id) != digits || strings.Trim(id, "0123456789") != "" {
		return fmt.Errorf("de-duplication key %q is not a 20-digit client id", key)
	}
	if _, err := decodeDedup(val); err != nil {
		return fmt.Errorf("de-duplication record %q: %w", key, err)
	}
	return nil
}

// snapReader reads a snapshot's header and records, hashing what it consumes. It
// never reads past end (where the checksum starts), so a damaged length cannot make
// it allocate more than the file holds.
type snapReader struct {
	r   *bufio.Reader
	h   hash.Hash // of every byte consumed
	off int64     // bytes consumed
	end int64     // offset of the checksum
	err error     // errShort for a file too short for what it claims, else the read error
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var b [binary.MaxVarintLen64]byte
	var v uint64
	for i := range b {
		if r.off >= r.end {
			break
		}
		c, err := r.r.ReadByte()
		if err != nil {
			r.fail(err)
			return 0
		}
		b[i] = c
		r.off++
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.h.Write(b[:i+1])
			return v
		}
	}
	r.fail(nil)
	return 0
}

// bytes reads n bytes into *buf, growing it if need be.
func (r *snapReader) bytes(n int, buf *[]byte) []byte {
	if r.err != nil {
		return nil
	}
	if int64(n) > r.end-r.off {
		r.fail(nil)
		return nil
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail(err)
		return nil
	}
	r.off += int64(n)
	r.h.Write(b)
	return b
}

func (r *snapReader) fail(err error) {
	if r.err != nil {
		return
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errShort
	}
	r.err = err
}

// Digest returns a SHA-256 over every user key and value, in key order, each key
// and value preceded by its length (8 bytes, big-endian: the layout idl/kv.thrift
// documents), and nothing else; with it the applied
// slot and the number of keys, read in the same transaction. Two replicas at the same
// applied slot must have the same digest. Like WriteSnapshot, it holds the writers
// back only while it collects references to the records.
func (s *Store) Digest() (applied uint64, keys int64, sum [32]byte, err error) {
	st, err := s.captureState("digest", false)
	if err != nil {
		return 0, 0, sum, err
	}
	h := sha256.New()
	b := make([]byte, 0, 1<<15)
	for _, r := range st.records {
		k := r.key[len(prefixData):]
		// The layout idl/kv.thrift documents for Digest, so that any client can
		// recompute it: 8-byte big-endian lengths.
		b = binary.BigEndian.AppendUint64(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(r.val)))
		b = append(b, r.val...)
		if len(b) >= 1<<15 {
			h.Write(b)
			b = b[:0]
		}
	}
	h.Write(b)
	h.Sum(sum[:0])
	return st.applied, st.keys, sum, nil
}
