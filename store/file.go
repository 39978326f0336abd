package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// checkFile refuses a file that buntdb would load but then damage. buntdb's loader
// skips NUL bytes between records without counting them, so when NUL bytes come
// before a record it appends later writes (and cuts a torn tail) at an offset short
// of the file's real end, overwriting records. NUL bytes between records are what a
// crash leaves when a block of the file was never written while a later one was; the
// writes lost there were not synced, but what survived after them may depend on
// them, so the store does not guess: Open fails and names the offset. NUL bytes at
// the very end (after the last complete record) are harmless and allowed.
//
// Anything else that is not a well-formed record is left to buntdb, which drops an
// incomplete last record and rejects everything else as invalid.
//
// When the file ends in NUL bytes after its last complete record, checkFile returns
// the offset where they start (else -1). buntdb appends at that offset, over the NUL
// bytes, so the file's length is not where the next write goes; Open cuts them off,
// so that the two agree again (Rewrite relies on it).
func checkFile(path string) (nulTail int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	nulAt := int64(-1)
	for {
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return nulAt, nil
		}
		if err != nil {
			return -1, fmt.Errorf("read %s: %w", path, err)
		}
		if c == 0 {
			if nulAt < 0 {
				nulAt = off
			}
			off++
			continue
		}
		_ = r.UnreadByte()
		n, err := skipRecord(r)
		if err != nil {
			if errors.Is(err, errNotRecord) {
				return -1, nil // for buntdb to judge
			}
			return -1, fmt.Errorf("read %s: %w", path, err)
		}
		if nulAt >= 0 {
			return -1, fmt.Errorf("open %s: %w: %d NUL bytes at offset %d precede a record at offset %d "+
				"(part of the file was never written)", path, ErrCorrupt, off-nulAt, nulAt, off)
		}
		off += n
	}
}

// errNotRecord: what follows is not a complete, well-formed buntdb record.
var errNotRecord = errors.New("not a record")

// skipRecord reads one RESP array of bulk strings ("*N\r\n" then N times
// "$L\r\n" + L bytes + "\r\n"), the only record buntdb writes, and returns its size.
func skipRecord(r *bufio.Reader) (int64, error) {
	parts, n, err := readCount(r, '*')
	if err != nil {
		return 0, err
	}
	for range parts {
		l, hn, err := readCount(r, '$')
		if err != nil {
			return 0, err
		}
		if _, err := r.Discard(int(l)); err != nil {
			return 0, notRecord(err)
		}
		crlf := [2]byte{}
		if _, err := io.ReadFull(r, crlf[:]); err != nil {
			return 0, notRecord(err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return 0, errNotRecord
		}
		n += hn + l + 2
	}
	return n, nil
}

// readCount reads a line of the form <marker><decimal>\r\n.
func readCount(r *bufio.Reader, marker byte) (count, size int64, err error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, notRecord(err)
	}
	if c != marker {
		return 0, 0, errNotRecord
	}
	size = 1
	digitsSeen := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, notRecord(err)
		}
		size++
		if c == '\r' {
			break
		}
		if c < '0' || c > '9' || digitsSeen >= 18 {
			return 0, 0, errNotRecord
		}
		count = count*10 + int64(c-'0')
		digitsSeen++
	}
	if c, err := r.ReadByte(); err != nil || c != '\n' || digitsSeen == 0 {
		return 0, 0, notRecord(err)
	}
	return count, size + 1, nil
}

// notRecord turns a short read into errNotRecord and keeps real read errors.
func notRecord(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errNotRecord
	}
	return err
}
