package transport

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/ballot-kv/ballot/gen/peerapi"
)

// MaxSnapshotChunk is the most snapshot bytes one fetch_snapshot answer carries;
// a request for more gets this many.
const MaxSnapshotChunk = 4 << 20

// snapshotReplyOverhead bounds the bytes of a fetch_snapshot reply besides its
// data: the message header, the other fields and the checksum.
const snapshotReplyOverhead = 4 << 10

// The peer port's default frame limit must hold the largest chunk; this fails to
// compile if it does not.
const _ = uint(PeerMaxFrameSize - MaxSnapshotChunk - snapshotReplyOverhead)

// SnapshotChunk is part of a replica's snapshot file, as fetch_snapshot carries it.
type SnapshotChunk struct {
	// From is the id of the replica that answered.
	From uint64
	// Index is the applied slot the snapshot holds; 0 when the replica has no
	// snapshot to give, and then every other field is zero.
	Index uint64
	// Size is the size of the whole file in bytes.
	Size int64
	// Sum is the SHA-256 of the whole file, to be checked before the file is used.
	Sum [sha256.Size]byte
	// Offset is where Data begins in the file.
	Offset int64
	// Data is the file's bytes from Offset on; empty only at the end of the file.
	Data []byte
}

// SnapshotSource serves a replica's snapshot files to peers.
type SnapshotSource interface {
	// SnapshotChunk returns at most maxBytes bytes (maxBytes >= 1) of snapshot
	// index from offset on, for replica from. Index 0 asks for the latest snapshot
	// (offset is then 0). A source that no longer holds index answers with its
	// latest snapshot from offset 0; one with no snapshot answers Index 0.
	SnapshotChunk(ctx context.Context, from, index uint64, offset int64, maxBytes int) (SnapshotChunk, error)
}

// snapshotRequest is a fetch_snapshot request in Go terms.
type snapshotRequest struct {
	from     uint64
	index    uint64
	offset   int64
	maxBytes int
}

// check reports what makes r unanswerable, as an ErrOutOfRange.
func (r snapshotRequest) check() error {
	switch {
	case r.offset < 0:
		return fmt.Errorf("offset %d is negative: %w", r.offset, ErrOutOfRange)
	case r.index == 0 && r.offset != 0:
		return fmt.Errorf("offset %d with index 0 (a transfer starts at offset 0): %w", r.offset, ErrOutOfRange)
	case r.maxBytes <= 0:
		return fmt.Errorf("max_bytes %d is not positive: %w", r.maxBytes, ErrOutOfRange)
	}
	return nil
}

// checkChunk reports how ch fails to answer r (whose maxBytes is already capped),
// as an ErrInvalidChunk.
func checkChunk(r snapshotRequest, ch SnapshotChunk) error {
	if ch.Index == 0 {
		if ch.Size != 0 || ch.Offset != 0 || len(ch.Data) != 0 {
			return fmt.Errorf("index 0 (no snapshot) with %d bytes at offset %d of %d: %w",
				len(ch.Data), ch.Offset, ch.Size, ErrInvalidChunk)
		}
		return nil
	}
	want := r.offset
	if ch.Index != r.index {
		want = 0 // a different snapshot: the transfer restarts
	}
	end := ch.Offset + int64(len(ch.Data))
	switch {
	case ch.Offset != want:
		return fmt.Errorf("snapshot %d: offset %d, want %d: %w", ch.Index, ch.Offset, want, ErrInvalidChunk)
	case len(ch.Data) > r.maxBytes:
		return fmt.Errorf("snapshot %d: %d bytes, more than the %d asked for: %w",
			ch.Index, len(ch.Data), r.maxBytes, ErrInvalidChunk)
	case ch.Size < 0 || end > ch.Size:
		return fmt.Errorf("snapshot %d: bytes %d to %d of a %d-byte file: %w",
			ch.Index, ch.Offset, end, ch.Size, ErrInvalidChunk)
	case len(ch.Data) == 0 && ch.Offset < ch.Size:
		return fmt.Errorf("snapshot %d: no bytes at offset %d of %d: %w", ch.Index, ch.Offset, ch.Size, ErrInvalidChunk)
	}
	return nil
}

func snapshotRequestToThrift(r snapshotRequest) (*peerapi.SnapshotRequest, error) {
	var c conv
	t := &peerapi.SnapshotRequest{
		Sender:   c.out("sender", r.from),
		Index:    c.out("index", r.index),
		Offset:   r.offset,
		MaxBytes: int32(min(r.maxBytes, MaxSnapshotChunk)),
	}
	return t, c.err
}

func snapshotRequestFromThrift(t *peerapi.SnapshotRequest) (snapshotRequest, error) {
	if t == nil {
		return snapshotRequest{}, fmt.Errorf("snapshot request: %w", ErrMissingField)
	}
	var c conv
	r := snapshotRequest{
		from:     c.in("sender", t.Sender),
		index:    c.in("index", t.Index),
		offset:   t.Offset,
		maxBytes: int(t.MaxBytes),
	}
	return r, c.err
}

func snapshotChunkToThrift(ch SnapshotChunk) (*peerapi.SnapshotChunk, error) {
	var c conv
	t := &peerapi.SnapshotChunk{
		Sender: c.out("sender", ch.From),
		Index:  c.out("index", ch.Index),
		Size:   ch.Size,
		Offset: ch.Offset,
		Data:   ch.Data,
	}
	if ch.Index != 0 {
		t.Checksum = ch.Sum[:]
	}
	return t, c.err
}

func snapshotChunkFromThrift(t *peerapi.SnapshotChunk) (SnapshotChunk, error) {
	if t == nil {
		return SnapshotChunk{}, fmt.Errorf("snapshot chunk: %w", ErrMissingField)
	}
	var c conv
	ch := SnapshotChunk{
		From:   c.in("sender", t.Sender),
		Index:  c.in("index", t.Index),
		Size:   t.Size,
		Offset: t.Offset,
		Data:   t.Data,
	}
	if c.err != nil {
		return SnapshotChunk{}, c.err
	}
	if ch.Index == 0 {
		return ch, nil // no snapshot, so no checksum to read
	}
	if len(t.Checksum) != sha256.Size {
		return SnapshotChunk{}, fmt.Errorf("snapshot %d: checksum of %d bytes, want %d: %w",
			ch.Index, len(t.Checksum), sha256.Size, ErrInvalidChunk)
	}
	copy(ch.Sum[:], t.Checksum)
	return ch, nil
}
