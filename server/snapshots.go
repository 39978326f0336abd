package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/store"
	"github.com/ballot-kv/ballot/transport"
)

// Snapshot files live in <data>/snapshots: "<slot>.snap" for complete snapshots
// (the latest two are kept, so a peer part-way through fetching the older one can
// finish), "incoming-<slot>.part" for one being received from a peer, and
// temporary files of a snapshot being written.
const (
	snapshotDirName = "snapshots"
	snapSuffix      = ".snap"
	partPrefix      = "incoming-"
	partSuffix      = ".part"
	// fetchChunk is how much of a snapshot one fetch_snapshot call asks for.
	fetchChunk = 1 << 20
)

// snapshotFiles manages a replica's snapshot files: taking them, serving them to
// peers and backups in chunks, and receiving one from a peer. Safe for concurrent
// use.
type snapshotFiles struct {
	dir    string
	store  *store.Store
	logger *slog.Logger

	mu       sync.Mutex
	latest   store.SnapshotInfo // Index 0: none
	previous store.SnapshotInfo
	takeMu   sync.Mutex // one snapshot written at a time

	// chunkTimeout bounds each fetch_snapshot call of a transfer (0: the
	// transfer's own deadline), so a stalled sender fails the transfer and the
	// next request can go to another replica.
	chunkTimeout time.Duration
}

// openSnapshotFiles opens (creating) the snapshot directory under dataDir, checks
// the complete snapshots in it and removes what an interrupted write or a
// damaged file left. A damaged snapshot is logged with its name and removed: it
// is a copy, the store holds the state.
func openSnapshotFiles(dataDir string, st *store.Store, logger *slog.Logger) (*snapshotFiles, error) {
	dir := filepath.Join(dataDir, snapshotDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot directory %s: %w", dir, err)
	}
	f := &snapshotFiles{dir: dir, store: st, logger: logger}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot directory %s: %w", dir, err)
	}
	var good []store.SnapshotInfo
	for _, e := range names {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, partPrefix) && strings.HasSuffix(name, partSuffix):
			// A transfer to resume.
		case strings.HasSuffix(name, snapSuffix):
			info, err := store.ReadSnapshotInfo(path)
			if err != nil {
				logger.Warn("removing a damaged snapshot", "path", path, "err", err)
				_ = os.Remove(path)
				continue
			}
			good = append(good, info)
		default:
			_ = os.Remove(path) // a temporary file of an interrupted write
		}
	}
	sort.Slice(good, func(i, j int) bool { return good[i].Index < good[j].Index })
	for i, info := range good {
		switch {
		case i == len(good)-1:
			f.latest = info
		case i == len(good)-2:
			f.previous = info
		default:
			_ = os.Remove(info.Path)
		}
	}
	return f, nil
}

func snapPath(dir string, index uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", index, snapSuffix))
}

// Latest returns the newest complete snapshot (Index 0: none).
func (f *snapshotFiles) Latest() store.SnapshotInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest
}

// take writes a snapshot of the store as it is now and makes it the latest. If
// the latest already holds the applied slot, it is the snapshot: a new file of
// the same slot would replace it under the same name while peers and backups may
// be reading it, and differ from it if the log was compacted in between (the
// header records the compacted slot).
func (f *snapshotFiles) take() (store.SnapshotInfo, error) {
	f.takeMu.Lock()
	defer f.takeMu.Unlock()
	if latest := f.Latest(); latest.Index != 0 && latest.Index == f.store.Applied() {
		return latest, nil
	}
	tmp := filepath.Join(f.dir, "writing"+snapSuffix+".new")
	info, err := f.store.WriteSnapshot(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return store.SnapshotInfo{}, fmt.Errorf("take snapshot: %w", err)
	}
	final := snapPath(f.dir, info.Index)
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return store.SnapshotInfo{}, fmt.Errorf("take snapshot: %w", err)
	}
	if err := syncDir(f.dir); err != nil {
		return store.SnapshotInfo{}, fmt.Errorf("take snapshot: fsync %s: %w", f.dir, err)
	}
	info.Path = final
	f.adopt(info)
	return info, nil
}

// adopt makes info (a complete, verified file in the directory) the latest
// snapshot, keeps the one before it and removes older ones.
func (f *snapshotFiles) adopt(info store.SnapshotInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info.Index == f.latest.Index {
		f.latest = info
		return
	}
	if info.Index < f.latest.Index {
		_ = os.Remove(info.Path)
		return
	}
	if f.previous.Index != 0 {
		_ = os.Remove(f.previous.Path)
	}
	f.previous, f.latest = f.latest, info
}

// lookup returns the snapshot with this index if it is still kept, else the
// latest.
func (f *snapshotFiles) lookup(index uint64) store.SnapshotInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index != 0 && f.previous.Index == index {
		return f.previous
	}
	return f.latest
}

// SnapshotChunk serves peers (transport.SnapshotSource): up to maxBytes of the
// snapshot with this index from offset, or of the latest snapshot from offset 0
// when that one is no longer kept (index 0: the latest). A replica with no
// snapshot yet takes one.
func (f *snapshotFiles) SnapshotChunk(ctx context.Context, from, index uint64, offset int64, maxBytes int) (transport.SnapshotChunk, error) {
	info := f.lookup(index)
	if info.Index == 0 {
		var err error
		if info, err = f.take(); err != nil {
			return transport.SnapshotChunk{}, err
		}
	}
	if info.Index != index {
		offset = 0
	}
	return readChunk(info, offset, maxBytes)
}

// readChunk reads up to maxBytes of the snapshot file info from offset.
func readChunk(info store.SnapshotInfo, offset int64, maxBytes int) (transport.SnapshotChunk, error) {
	if offset < 0 || offset > info.Size {
		return transport.SnapshotChunk{}, fmt.Errorf("snapshot %d: offset %d outside its %d bytes", info.Index, offset, info.Size)
	}
	file, err := os.Open(info.Path)
	if err != nil {
		return transport.SnapshotChunk{}, fmt.Errorf("snapshot %d: %w", info.Index, err)
	}
	defer file.Close()
	n := min(int64(maxBytes), info.Size-offset)
	data := make([]byte, n)
	if _, err := file.ReadAt(data, offset); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return transport.SnapshotChunk{}, fmt.Errorf("read snapshot %s at %d: %w", info.Path, offset, err)
	}
	return transport.SnapshotChunk{Index: info.Index, Size: info.Size, Sum: info.Sum, Offset: offset, Data: data}, nil
}

// snapshotFetcher is what fetch needs of a peer: transport.PeerClient.
type snapshotFetcher interface {
	FetchSnapshot(ctx context.Context, from, index uint64, offset int64, maxBytes int) (transport.SnapshotChunk, error)
}

// fetch receives the latest snapshot of the peer behind src into the snapshot
// directory, resuming a transfer a failure or a restart interrupted if the peer
// still holds that snapshot, and verifies it (the SHA-256 the peer announced,
// then the file's own checksums) before returning it. Nothing is installed here;
// a file that fails verification is removed and the next fetch starts over.
func (f *snapshotFiles) fetch(ctx context.Context, self uint64, src snapshotFetcher) (store.SnapshotInfo, error) {
	index, offset := f.partial()
	var sum [32]byte
	var size int64 = -1
	var file *os.File
	defer func() {
		if file != nil {
			_ = file.Close()
		}
	}()
	// writeFailed removes the part file after a write to it failed. What reached
	// it is uncertain, and on a full disk it holds the space the store's own
	// writes need: the transfer starts over next time.
	writeFailed := func(err error) (store.SnapshotInfo, error) {
		name := file.Name()
		_ = file.Close()
		file = nil
		_ = os.Remove(name)
		return store.SnapshotInfo{}, fmt.Errorf("snapshot transfer: %w (part file removed)", err)
	}
	for {
		chunk, err := f.fetchChunk(ctx, src, self, index, offset)
		if err != nil && size < 0 && offset > 0 && refusedResume(err) {
			// The peer refused to resume this part file: it does not fit the
			// peer's copy (a file of the same slot from another replica can be
			// shorter). Start over rather than fail the same way forever.
			f.removeParts()
			index, offset = 0, 0
			chunk, err = f.fetchChunk(ctx, src, self, index, offset)
		}
		if err != nil {
			return store.SnapshotInfo{}, err
		}
		if chunk.Index == 0 {
			return store.SnapshotInfo{}, errors.New("the peer has no snapshot to give")
		}
		restart := chunk.Index != index || (size >= 0 && (chunk.Sum != sum || chunk.Size != size))
		if restart {
			if file != nil {
				_ = file.Close()
				file = nil
			}
			f.removeParts()
			index, offset = chunk.Index, 0
			if chunk.Offset != 0 {
				return store.SnapshotInfo{}, fmt.Errorf("peer started snapshot %d at offset %d", chunk.Index, chunk.Offset)
			}
		}
		if chunk.Offset != offset {
			return store.SnapshotInfo{}, fmt.Errorf("asked for snapshot %d at %d, got offset %d", index, offset, chunk.Offset)
		}
		sum, size = chunk.Sum, chunk.Size
		if file == nil {
			file, err = os.OpenFile(f.partPath(index), os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return store.SnapshotInfo{}, fmt.Errorf("snapshot transfer: %w", err)
			}
			if err := file.Truncate(offset); err != nil {
				return writeFailed(err)
			}
		}
		if _, err := file.WriteAt(chunk.Data, offset); err != nil {
			return writeFailed(err)
		}
		offset += int64(len(chunk.Data))
		if offset >= size {
			break
		}
		if len(chunk.Data) == 0 {
			return store.SnapshotInfo{}, fmt.Errorf("peer sent an empty chunk of snapshot %d at %d of %d", index, offset, size)
		}
	}
	part := file.Name()
	if err := file.Sync(); err != nil {
		return writeFailed(err)
	}
	_ = file.Close()
	file = nil
	got, err := fileSum(part)
	if err != nil {
		return store.SnapshotInfo{}, err
	}
	if got != sum {
		_ = os.Remove(part)
		return store.SnapshotInfo{}, fmt.Errorf("snapshot %d from the peer: SHA-256 %x, announced %x; discarded", index, got, sum)
	}
	info, err := store.ReadSnapshotInfo(part)
	if err != nil {
		_ = os.Remove(part)
		return store.SnapshotInfo{}, fmt.Errorf("snapshot %d from the peer: %w; discarded", index, err)
	}
	if info.Index != index {
		_ = os.Remove(part)
		return store.SnapshotInfo{}, fmt.Errorf("snapshot announced as slot %d holds slot %d; discarded", index, info.Index)
	}
	return info, nil
}

// partial returns the index and length of a transfer left in the directory.
func (f *snapshotFiles) partial() (uint64, int64) {
	names, _ := filepath.Glob(filepath.Join(f.dir, partPrefix+"*"+partSuffix))
	for _, p := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), partPrefix), partSuffix)
		index, err := strconv.ParseUint(base, 10, 64)
		fi, serr := os.Stat(p)
		if err != nil || serr != nil {
			continue
		}
		return index, fi.Size()
	}
	return 0, 0
}

func (f *snapshotFiles) partPath(index uint64) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s%020d%s", partPrefix, index, partSuffix))
}

func (f *snapshotFiles) removeParts() {
	names, _ := filepath.Glob(filepath.Join(f.dir, partPrefix+"*"+partSuffix))
	for _, p := range names {
		_ = os.Remove(p)
	}
}

// keepReceived moves a snapshot received from a peer (and installed) into place
// as this replica's latest, so it can pass it on.
func (f *snapshotFiles) keepReceived(info store.SnapshotInfo) {
	final := snapPath(f.dir, info.Index)
	if err := os.Rename(info.Path, final); err != nil {
		f.logger.Warn("keeping a received snapshot", "path", info.Path, "err", err)
		_ = os.Remove(info.Path)
		return
	}
	if err := syncDir(f.dir); err != nil {
		// The store already holds the installed state; only this copy, kept for
		// peers, may not survive a crash.
		f.logger.Warn("keeping a received snapshot: fsync of its directory failed", "dir", f.dir, "err", err)
	}
	info.Path = final
	f.adopt(info)
}

func fileSum(path string) ([32]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return [32]byte{}, fmt.Errorf("read %s: %w", path, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
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

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// refusedResume reports whether err is the peer's answer refusing a request (or
// an answer that does not fit it), not a failure to reach the peer.
func refusedResume(err error) bool {
	var ae thrift.TApplicationException
	return errors.As(err, &ae) || errors.Is(err, transport.ErrInvalidChunk)
}

// fetchChunk asks src for one chunk, within chunkTimeout.
func (f *snapshotFiles) fetchChunk(ctx context.Context, src snapshotFetcher, self, index uint64, offset int64) (transport.SnapshotChunk, error) {
	if f.chunkTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.chunkTimeout)
		defer cancel()
	}
	return src.FetchSnapshot(ctx, self, index, offset, fetchChunk)
}
