package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// backupChunkBytes is how much of a backup each call asks for: 1 MiB, the most a
// replica returns (MAX_VALUE_BYTES), which the client's frame limit holds.
const backupChunkBytes = kvapi.MAX_VALUE_BYTES

// BackupInfo describes a backup that Backup wrote.
type BackupInfo struct {
	// Index is the applied slot the snapshot holds: it reflects every write
	// chosen up to that slot and none after.
	Index uint64
	// Size is the number of bytes written.
	Size int64
	// Sum is the SHA-256 of those bytes, as the replica announced it and as
	// Backup checked it.
	Sum [sha256.Size]byte
}

// Backup has one replica take a fresh snapshot of its store and writes the
// snapshot file to w, asking for 1 MiB at a time, then checks the SHA-256 of
// everything it wrote against the checksum the replica announced.
//
// The replica is the leader, whose data is the most recent: the one this client
// last found leading (after a write or linearizable read) or else the one that
// says it leads when every endpoint is asked for its status. When none does, it
// is the first endpoint, in Config.Endpoints order, that answers status. If that
// replica cannot start the backup, the next one that answered is tried. Every
// chunk comes from the replica that took the snapshot.
//
// Config.Timeout bounds each chunk, not the whole backup (ctx does): a connection
// lost during a chunk is retried at the same replica until then. Once bytes have
// been written to w nothing is started again, since w cannot be rewound.
//
// Errors wrap ErrUnavailable (no replica could start a backup, or the replica
// stopped answering or dropped the snapshot midway: start again with a fresh w),
// ErrCorrupt (a chunk contradicts the ones before it, or the bytes written do not
// match the checksum), or the error w returned. On any error w may hold part of
// the file.
func (c *Client) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	const op = "backup"
	candidates, err := c.backupCandidates(ctx)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%s: %w", op, err)
	}

	var (
		addr  string
		first *kvapi.BackupChunk
		fails []string
	)
	for _, a := range candidates {
		ch, err := c.backupChunk(ctx, a, 0, 0)
		if err == nil {
			addr, first = a, ch
			break
		}
		var invalid *InvalidArgumentError
		if errors.Is(err, ErrClosed) || errors.As(err, &invalid) || ctx.Err() != nil {
			return BackupInfo{}, fmt.Errorf("%s at %s: %w", op, a, err)
		}
		fails = append(fails, a+": "+err.Error())
	}
	if first == nil {
		return BackupInfo{}, fmt.Errorf("%s: %w: no replica started one (%s)", op, ErrUnavailable, joinFails(fails))
	}

	info, err := backupInfo(first)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%s at %s: %w", op, addr, err)
	}
	sum := sha256.New()
	ch := first
	var offset int64
	for {
		if err := checkBackupChunk(first, ch, offset); err != nil {
			return info, fmt.Errorf("%s at %s: snapshot %d: %w", op, addr, info.Index, err)
		}
		if _, err := w.Write(ch.Data); err != nil {
			return info, fmt.Errorf("%s at %s: snapshot %d: write bytes %d to %d: %w",
				op, addr, info.Index, offset, offset+int64(len(ch.Data)), err)
		}
		sum.Write(ch.Data)
		offset += int64(len(ch.Data))
		if offset == info.Size {
			break
		}
		if ch, err = c.backupChunk(ctx, addr, first.Index, offset); err != nil {
			return info, fmt.Errorf("%s at %s: snapshot %d at byte %d of %d: %w",
				op, addr, info.Index, offset, info.Size, err)
		}
	}
	if got := sum.Sum(nil); !bytes.Equal(got, info.Sum[:]) {
		return info, fmt.Errorf("%s at %s: snapshot %d: %w: the %d bytes written have SHA-256 %x, the replica announced %x",
			op, addr, info.Index, ErrCorrupt, info.Size, got, info.Sum)
	}
	return info, nil
}

// backupCandidates lists the replicas to ask for a backup, best first: the known
// leader and then the other endpoints; or, with no leader known, the endpoints
// that answer status, one that says it leads first.
func (c *Client) backupCandidates(ctx context.Context) ([]string, error) {
	eps := c.cfg.Endpoints
	if l := c.Leader(); l != "" {
		return append([]string{l}, slices.DeleteFunc(slices.Clone(eps), func(e string) bool { return e == l })...), nil
	}
	type answer struct {
		i      int
		leader bool
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a leader found early leaves no call behind
	answers := make(chan answer, len(eps))
	for i, ep := range eps {
		go func() {
			st, err := c.Status(ctx, ep)
			answers <- answer{i: i, leader: err == nil && st.GetIsLeader(), err: err}
		}()
	}
	up := make([]bool, len(eps))
	var fails []string
	for range eps {
		a := <-answers
		if a.leader {
			return append([]string{eps[a.i]}, slices.DeleteFunc(slices.Clone(eps), func(e string) bool { return e == eps[a.i] })...), nil
		}
		if a.err != nil {
			if errors.Is(a.err, ErrClosed) {
				return nil, a.err
			}
			fails = append(fails, a.err.Error())
			continue
		}
		up[a.i] = true
	}
	var out []string
	for i, ep := range eps {
		if up[i] {
			out = append(out, ep)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no replica answered status (%s)", ErrUnavailable, joinFails(fails))
	}
	return out, nil
}

// backupChunk asks addr for the chunk of snapshot index (0: a new snapshot) at
// offset, within Config.Timeout, asking again after a lost connection.
func (c *Client) backupChunk(ctx context.Context, addr string, index, offset int64) (*kvapi.BackupChunk, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	backoff := minBackoff
	for {
		var res *kvapi.BackupChunk
		_, err := c.attempt(ctx, addr, func(ctx context.Context, kv *kvapi.KVClient) error {
			r, err := kv.Backup(ctx, index, offset, backupChunkBytes)
			if err == nil {
				res = r
			}
			return err
		})
		if err == nil {
			if res == nil {
				return nil, fmt.Errorf("%w: empty answer", ErrCorrupt)
			}
			return res, nil
		}
		var unavailable *kvapi.Unavailable
		var invalid *kvapi.InvalidArgument
		switch {
		case errors.Is(err, ErrClosed):
			return nil, ErrClosed
		case errors.As(err, &unavailable):
			return nil, fmt.Errorf("%w: %s", ErrUnavailable, unavailable.GetMessage())
		case errors.As(err, &invalid):
			return nil, &InvalidArgumentError{Message: invalid.GetMessage(), Field: invalid.GetField(), Limit: invalid.GetLimit()}
		case isIDLException(err):
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// A lost or refused connection: the same request again, after a pause.
		if ctx.Err() != nil || !sleep(ctx, jitter(backoff)) {
			if perr := parent.Err(); perr != nil && !errors.Is(perr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w (%v)", perr, err)
			}
			return nil, fmt.Errorf("%w: no answer within %s (last: %v)", ErrUnavailable, c.cfg.Timeout, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// backupInfo reads what the first chunk says about the whole snapshot.
func backupInfo(first *kvapi.BackupChunk) (BackupInfo, error) {
	switch {
	case first.GetIndex() <= 0:
		return BackupInfo{}, fmt.Errorf("%w: snapshot index %d", ErrCorrupt, first.GetIndex())
	case first.GetSize() < 0:
		return BackupInfo{}, fmt.Errorf("%w: snapshot size %d", ErrCorrupt, first.GetSize())
	case len(first.GetChecksum()) != sha256.Size:
		return BackupInfo{}, fmt.Errorf("%w: checksum of %d bytes, want %d", ErrCorrupt, len(first.GetChecksum()), sha256.Size)
	}
	info := BackupInfo{Index: uint64(first.GetIndex()), Size: first.GetSize()}
	copy(info.Sum[:], first.GetChecksum())
	return info, nil
}

// checkBackupChunk checks that ch, asked for at offset, continues the snapshot
// the first chunk described.
func checkBackupChunk(first, ch *kvapi.BackupChunk, offset int64) error {
	end := ch.GetOffset() + int64(len(ch.GetData()))
	switch {
	case ch.GetIndex() != first.GetIndex() || ch.GetSize() != first.GetSize() ||
		!bytes.Equal(ch.GetChecksum(), first.GetChecksum()):
		return fmt.Errorf("%w: chunk at byte %d describes snapshot %d of %d bytes, not %d of %d bytes",
			ErrCorrupt, offset, ch.GetIndex(), ch.GetSize(), first.GetIndex(), first.GetSize())
	case ch.GetOffset() != offset:
		return fmt.Errorf("%w: chunk at byte %d, asked for byte %d", ErrCorrupt, ch.GetOffset(), offset)
	case len(ch.GetData()) > backupChunkBytes:
		return fmt.Errorf("%w: chunk of %d bytes, asked for at most %d", ErrCorrupt, len(ch.GetData()), backupChunkBytes)
	case end > ch.GetSize():
		return fmt.Errorf("%w: bytes %d to %d of a %d-byte file", ErrCorrupt, ch.GetOffset(), end, ch.GetSize())
	case len(ch.GetData()) == 0 && offset < ch.GetSize():
		return fmt.Errorf("%w: no bytes at byte %d of %d", ErrCorrupt, offset, ch.GetSize())
	}
	return nil
}

// joinFails lists failures for one line of error text.
func joinFails(fails []string) string {
	if len(fails) == 0 {
		return "no endpoint tried"
	}
	return strings.Join(fails, "; ")
}
