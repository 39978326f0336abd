package server

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/store"
)

// snapshotPolicy says when a replica snapshots its store, how much log it keeps
// behind the snapshot, and when it rewrites its store file.
type snapshotPolicy struct {
	everySlots   uint64 // take a snapshot after this many applied slots...
	everyBytes   int64  // ...or this many bytes of applied log entries
	retainSlots  uint64 // log slots kept below the snapshot, for followers slightly behind...
	retainBytes  int64  // ...as long as their entries hold no more than this
	rewriteBytes int64  // rewrite the store file once it exceeds this and twice its last rewritten size
}

// A failed snapshot is tried again after minSnapshotRetry, then after twice as
// long each time it fails again, up to maxSnapshotRetry.
const (
	minSnapshotRetry = time.Second
	maxSnapshotRetry = time.Minute
)

// compaction is the node's loop-owned state of snapshots, compaction, rewrites
// and snapshot transfers.
type compaction struct {
	policy  snapshotPolicy
	files   *snapshotFiles
	fetcher func(id uint64) snapshotFetcher // a peer's snapshot service; nil for an unknown id

	lastSnapshot uint64 // applied slot of the latest snapshot taken or installed
	bytesSince   int64  // bytes of entries applied since
	// After a snapshot fails (a full disk, say), the next waits until retryAt;
	// retryDelay doubles with each failure in a row, up to maxSnapshotRetry.
	retryAt     time.Time
	retryDelay  time.Duration
	taking      bool
	fetching    bool
	rewriting   bool
	rewrittenAt int64 // store file size after the last rewrite (or at start)
}

// afterApply counts applied bytes and starts a snapshot when the policy says so.
func (n *node) afterApply(entries []peer.Entry) {
	c := n.compact
	if c == nil {
		return
	}
	for _, e := range entries {
		c.bytesSince += int64(len(e.Data))
	}
	applied := n.storage.Applied()
	if c.taking || applied <= c.lastSnapshot || time.Now().Before(c.retryAt) {
		return
	}
	if applied-c.lastSnapshot < c.policy.everySlots && c.bytesSince < c.policy.everyBytes {
		return
	}
	n.snapshotNow()
}

// snapshotNow takes a snapshot whatever the policy says: a replica that starts a
// new configuration needs one that carries it, for members that join by fetching.
func (n *node) snapshotNow() {
	c := n.compact
	if c == nil {
		return
	}
	c.taking = true
	go func() {
		start := time.Now()
		info, err := c.files.take()
		n.post(func() { n.snapshotTaken(info, err, time.Since(start)) })
	}()
}

// snapshotTaken compacts the log up to retainSlots (or retainBytes of entries)
// below a snapshot just written, and rewrites the store file if it has grown
// enough.
func (n *node) snapshotTaken(info store.SnapshotInfo, err error, took time.Duration) {
	c := n.compact
	c.taking = false
	if errors.Is(err, store.ErrDiskFailed) {
		n.fail(err)
		return
	}
	if err != nil {
		// A snapshot is a second copy in a file of its own: the store is as it
		// was, and the replica goes on. But the log cannot be compacted until
		// one is taken, so it tries again, less often while it keeps failing.
		c.retryDelay = min(max(2*c.retryDelay, minSnapshotRetry), maxSnapshotRetry)
		c.retryAt = time.Now().Add(c.retryDelay)
		n.logger.Error("snapshot failed; the log is not compacted until one succeeds", "err", err,
			"retry_in", c.retryDelay)
		return
	}
	c.retryDelay, c.retryAt = 0, time.Time{}
	c.lastSnapshot = max(c.lastSnapshot, info.Index)
	c.bytesSince = 0
	n.logger.Info("snapshot taken", "slot", info.Index, "keys", info.Keys, "bytes", info.Size,
		"took", took.Round(time.Millisecond))
	n.compactLog(n.core.CompactionPoint(info.Index, c.policy.retainSlots, c.policy.retainBytes))
}

// compactLog drops the log up to upTo, on disk and in the core.
func (n *node) compactLog(upTo uint64) {
	c := n.compact
	if upTo <= n.core.Compacted() {
		return
	}
	if err := n.storage.Compact(upTo); err != nil {
		n.fail(err)
		return
	}
	if err := n.core.Compact(upTo); err != nil {
		n.logger.Error("compact", "err", err)
	}
	n.publish()
	size := n.storage.FileSize()
	if c.rewriting || size < c.policy.rewriteBytes || size < 2*c.rewrittenAt {
		return
	}
	c.rewriting = true
	go func() {
		start := time.Now()
		err := n.storage.Rewrite()
		n.post(func() {
			c.rewriting = false
			if errors.Is(err, store.ErrDiskFailed) {
				n.fail(err)
				return
			}
			if err != nil {
				// The old file is intact; the next compaction tries again.
				n.logger.Warn("store file rewrite failed", "err", err)
				return
			}
			c.rewrittenAt = n.storage.FileSize()
			n.logger.Info("store file rewritten", "bytes_before", size, "bytes_after", c.rewrittenAt,
				"took", time.Since(start).Round(time.Millisecond))
		})
	}()
}

// wantSnapshot starts fetching a snapshot from the replica the core named, unless
// a transfer is already running.
func (n *node) wantSnapshot(w peer.SnapshotWanted) {
	c := n.compact
	if c == nil || c.fetching {
		return
	}
	src := c.fetcher(w.From)
	if src == nil {
		return
	}
	c.fetching = true
	n.logger.Info("snapshot transfer started", "from", w.From, "slot", w.Index, "applied", n.storage.Applied())
	self, parent := n.core.ID(), n.ctx
	go func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(parent, 10*time.Minute)
		defer cancel()
		info, err := c.files.fetch(ctx, self, src)
		n.post(func() { n.snapshotReceived(w.From, info, err, time.Since(start)) })
	}()
}

// snapshotReceived installs a snapshot fetched from a peer.
func (n *node) snapshotReceived(from uint64, info store.SnapshotInfo, err error, took time.Duration) {
	c := n.compact
	c.fetching = false
	if err != nil {
		n.logger.Warn("snapshot transfer failed; it resumes on the next request", "from", from, "err", err)
		return
	}
	// Entries held back must not be left to apply under a snapshot that
	// overtakes them.
	if err := n.applyDeferred(); err != nil {
		n.fail(err)
		return
	}
	if info.Index <= n.storage.Applied() {
		n.logger.Info("snapshot transfer outdated by the log; discarded", "slot", info.Index, "applied", n.storage.Applied())
		_ = os.Remove(info.Path)
		return
	}
	start := time.Now()
	if _, err := n.storage.InstallSnapshot(info.Path); err != nil {
		if errors.Is(err, store.ErrDiskFailed) {
			n.fail(err)
			return
		}
		// The store is unchanged (a stale or damaged file, or no room for the
		// new file: store.ErrNoSpace); the file is removed, which frees its
		// space, and the next request fetches again.
		n.logger.Warn("snapshot not installed", "path", info.Path, "err", err)
		_ = os.Remove(info.Path)
		return
	}
	if changed, err := n.configChanged(); err != nil {
		n.fail(err)
		return
	} else if changed {
		// Taken in a later configuration (or the first this replica learns):
		// go on in it from the snapshot's slot.
		if err := n.adoptStoredConfig(); err != nil {
			n.fail(err)
			return
		}
	} else if err := n.core.InstallSnapshot(info.Index); err != nil {
		n.logger.Error("install snapshot", "err", err)
	}
	c.lastSnapshot = max(c.lastSnapshot, info.Index)
	c.bytesSince = 0
	c.files.keepReceived(info)
	n.logger.Info("snapshot installed", "from", from, "slot", info.Index, "keys", info.Keys, "bytes", info.Size,
		"transfer", took.Round(time.Millisecond), "install", time.Since(start).Round(time.Millisecond))
	n.publish()
}

// post runs fn on the node loop.
func (n *node) post(fn func()) {
	select {
	case n.jobs <- fn:
	case <-n.stopped:
	}
}

// fail stops the loop with a storage error (fail-stop: the replica cannot trust
// its state any more).
func (n *node) fail(err error) {
	if n.fatal == nil {
		n.fatal = err
	}
}
