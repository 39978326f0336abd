package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/transport"
)

// Config configures a replica. The zero value of each optional field means its
// default.
type Config struct {
	// ID is this replica's line in the replicas file.
	ID uint64
	// ReplicasFile lists every replica (see package replicas).
	ReplicasFile string
	// DataDir holds this replica's store.
	DataDir string
	// Tick is the core's clock period. Default 15ms: with the default election
	// timeout of 10 to 20 ticks a follower campaigns 150 to 300 ms after the
	// leader goes silent.
	Tick time.Duration
	// ElectionTicks and HeartbeatTicks: see peer.Config. Defaults 10 and 3.
	ElectionTicks  int
	HeartbeatTicks int
	// RequestTimeout bounds how long a client request waits for a quorum before
	// it fails with Unavailable. Default 3s.
	RequestTimeout time.Duration
	// PeerTimeout bounds one call to another replica. Default 1s.
	PeerTimeout time.Duration
	// MaxInFlightSlots is how many slots a leader may have proposed and not yet
	// chosen. While one is in flight, new writes wait to share the next slot
	// unless they fill one (1,024 writes or 4 MiB): only full slots overtake.
	// Default 4.
	MaxInFlightSlots int
	// AcceptsToAll makes a leader send every accept request to every follower.
	// By default it sends each slot only to as many followers as a majority
	// needs besides itself, the others learning chosen slots from execute
	// requests a tick at a time (peer.Config.Thrifty), which saves an fsync per
	// slot on every other follower.
	AcceptsToAll bool
	// ReadIndexOnly makes every linearizable read take a heartbeat round to a
	// majority. By default a leader serves them from its store while it holds a
	// lease: for an election timeout (less a 10 % bound on how much faster one
	// replica's clock may run than another's, and a tick) after a heartbeat round
	// that a majority answered. See docs/design.md, "Reads".
	ReadIndexOnly bool
	// SnapshotEverySlots and SnapshotEveryBytes: the replica snapshots its store
	// once this many slots, or this many bytes of log entries, have been applied
	// since the last snapshot. Defaults 10,000 slots and 64 MiB.
	SnapshotEverySlots uint64
	SnapshotEveryBytes int64
	// SnapshotRetainSlots is how many log slots below a snapshot are kept, so a
	// follower slightly behind catches up from the log rather than by a transfer.
	// Default 1,000; negative values are refused.
	SnapshotRetainSlots uint64
	// SnapshotRetainBytes bounds the slots kept below a snapshot by the size of
	// their entries: with big values a thousand slots can hold hundreds of MiB,
	// which every rewrite of the store file would copy. Default 16 MiB.
	SnapshotRetainBytes int64
	// RewriteMinBytes: the store file is rewritten (to drop the history buntdb
	// appends) once it is larger than this and than twice its size after the last
	// rewrite. Default 64 MiB.
	RewriteMinBytes int64
	// RestoreFrom, when set, names a snapshot file (ballot snapshot save) to
	// create the data directory from; the directory must not hold a store yet.
	RestoreFrom string
	// Join: a replica that starts with an empty data directory never founds a new
	// cluster; it waits until a member of a configuration that includes it
	// contacts it. For a replica added to a running cluster whose file lists no
	// replica of that cluster (replacing every member). Only for a replica that
	// has never been a member: one that lost its storage must rebuild instead.
	Join bool
	// IdleTimeout is how long a connection to either port may wait for its next
	// request before the replica closes it. Default transport.DefaultIdleTimeout.
	IdleTimeout time.Duration
	// ReadTimeout bounds each request on either port from its first byte to its
	// last, and each write of a reply. Default transport.DefaultReadTimeout.
	ReadTimeout time.Duration
	// MaxConns limits the connections open at once on each port; when a port is
	// full a new connection takes the place of the one idle longest (see
	// transport.ServerOptions). Default transport.DefaultMaxConns.
	MaxConns int
	// PeerTLS: mutual TLS on the peer port and for calls to the other replicas
	// (ballotd --peer-cert, --peer-key, --peer-ca; all three or none). A caller
	// must present a certificate of the CA valid for the host of a member's peer
	// address. Zero: plaintext, with a warning at start.
	PeerTLS tlsconfig.PeerFiles
	// ClientTLS: TLS on the client port (--client-cert, --client-key), with
	// client certificates of ClientCA required if it is set (--client-ca).
	// Zero: plaintext.
	ClientTLS tlsconfig.ClientPortFiles
	// Logger receives the replica's log. Nil discards.
	Logger *slog.Logger

	// hooks reach into the running replica for this package's tests; nil in
	// every replica ballotd runs, which cannot set an unexported field.
	hooks *testHooks
}

// serverOptions are the options of a port whose frames may be up to maxFrame
// bytes.
func (c Config) serverOptions(maxFrame int32, logger *slog.Logger) transport.ServerOptions {
	return transport.ServerOptions{
		MaxFrameSize: maxFrame,
		ReadTimeout:  c.ReadTimeout,
		IdleTimeout:  c.IdleTimeout,
		MaxConns:     c.MaxConns,
		Logger:       logger,
	}
}

func (c Config) withDefaults() Config {
	if c.Tick == 0 {
		c.Tick = 15 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 3
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 3 * time.Second
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = time.Second
	}
	if c.MaxInFlightSlots == 0 {
		c.MaxInFlightSlots = 4
	}
	if c.SnapshotEverySlots == 0 {
		c.SnapshotEverySlots = 10_000
	}
	if c.SnapshotEveryBytes == 0 {
		c.SnapshotEveryBytes = 64 << 20
	}
	if c.SnapshotRetainSlots == 0 {
		c.SnapshotRetainSlots = 1_000
	}
	if c.SnapshotRetainBytes == 0 {
		c.SnapshotRetainBytes = 16 << 20
	}
	if c.RewriteMinBytes == 0 {
		c.RewriteMinBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("--id must be a positive replica id from the replicas file")
	case c.ReplicasFile == "":
		return errors.New("--replicas must name the replicas file")
	case c.DataDir == "":
		return errors.New("--data must name a data directory")
	case c.Tick < 0 || c.RequestTimeout < 0 || c.PeerTimeout < 0 || c.MaxInFlightSlots < 0 ||
		c.SnapshotEveryBytes < 0 || c.RewriteMinBytes < 0:
		return fmt.Errorf("durations must not be negative")
	case c.SnapshotRetainBytes < 0:
		return fmt.Errorf("--snapshot-retain-bytes %d is negative", c.SnapshotRetainBytes)
	case c.IdleTimeout < 0:
		return fmt.Errorf("--idle-timeout %v is negative", c.IdleTimeout)
	case c.ReadTimeout < 0:
		return fmt.Errorf("--read-timeout %v is negative", c.ReadTimeout)
	case c.MaxConns < 0:
		return fmt.Errorf("--max-conns %d is negative", c.MaxConns)
	}
	if _, err := c.PeerTLS.Enabled(); err != nil {
		return err
	}
	if _, err := c.ClientTLS.Enabled(); err != nil {
		return err
	}
	return nil
}
