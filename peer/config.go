package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Config configures a Replica. The zero value of each optional field means its
// default.
type Config struct {
	// ID is this replica's id: non-zero and one of Members.
	ID uint64
	// Members are the ids of the voting replicas, this one included (1 to 64 of them).
	Members []uint64
	// ElectionTicks is the shortest election timeout in ticks; each timeout is drawn
	// at random from [ElectionTicks, 2*ElectionTicks). Default 10.
	ElectionTicks int
	// HeartbeatTicks is how often a leader sends heartbeats. Default 1.
	HeartbeatTicks int
	// MaxInflight bounds the accept requests in flight to one follower. Default 8.
	MaxInflight int
	// MaxEntriesPerMessage and MaxBytesPerMessage bound one accept or execute
	// message. Defaults 256 and 4 MiB.
	MaxEntriesPerMessage int
	MaxBytesPerMessage   int
	// Thrifty makes a leader send each slot's accept request only to as many
	// followers as a majority needs besides itself (those that answer), and the
	// chosen entries to the others in execute requests, at most one per tick.
	// Every follower still gets the heartbeats. A slot then costs one fsync on
	// a majority instead of on every replica, and the passive followers save
	// several slots with one fsync. A follower that fails a request, or leaves
	// one unanswered for ThriftyStaleTicks, is replaced by a passive one; with
	// too few answering followers, or while a configuration change is under
	// way, every follower gets every accept. Safety does not depend on it:
	// fewer acceptors asked never choose a different value.
	Thrifty bool
	// ThriftyStaleTicks: see Thrifty. Default 2.
	ThriftyStaleTicks int
	// ThriftyCensusTicks: every so many ticks a thrifty leader sends the next
	// slot to every follower and makes active those that answer first, so that
	// it does not keep waiting on a slow follower while a faster one idles.
	// Default 20.
	ThriftyCensusTicks int
	// HoldVotesAfterStart makes a replica that does not know a live leader refuse
	// to promise any candidate but itself for ElectionTicks after it starts, as it
	// refuses while it hears from a live leader. A leader that serves reads under
	// a lease (LeaseRound) relies on every acceptor that answered its heartbeats
	// refusing other candidates for an election timeout; an acceptor that
	// restarted in the meantime forgot whom it heard, and this keeps it to that.
	HoldVotesAfterStart bool
	// Seed seeds the randomised election timeouts, so a run can be replayed.
	Seed int64
	// Logger receives one line per event worth knowing (elections, leader
	// changes). Nil discards.
	Logger *slog.Logger
}

// Errors returned by Replica methods.
var (
	// ErrNotLeader: the request needs the leader, and this replica does not lead.
	ErrNotLeader = errors.New("not the leader")
	// ErrNotReady: the leader has not yet chosen the slots left open by its
	// predecessors, so it cannot yet order new commands or reads behind them.
	ErrNotReady = errors.New("leader not ready")
	// ErrStopped: a configuration change has been proposed (or chosen); this
	// configuration takes no more commands, the next one will.
	ErrStopped = errors.New("configuration change under way")
)

func (c Config) withDefaults() Config {
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 8
	}
	if c.ThriftyStaleTicks == 0 {
		c.ThriftyStaleTicks = 2
	}
	if c.ThriftyCensusTicks == 0 {
		c.ThriftyCensusTicks = 20
	}
	if c.MaxEntriesPerMessage == 0 {
		c.MaxEntriesPerMessage = 256
	}
	if c.MaxBytesPerMessage == 0 {
		c.MaxBytesPerMessage = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if c.ID == 0 {
		return errors.New("replica id must be non-zero")
	}
	if len(c.Members) == 0 || len(c.Members) > 64 {
		return fmt.Errorf("need 1 to 64 members, have %d", len(c.Members))
	}
	seen := make(map[uint64]bool, len(c.Members))
	for _, m := range c.Members {
		if m == 0 {
			return errors.New("member id 0 is not allowed")
		}
		if seen[m] {
			return fmt.Errorf("member %d listed twice", m)
		}
		seen[m] = true
	}
	if !slices.Contains(c.Members, c.ID) {
		return fmt.Errorf("replica %d is not among the members %v", c.ID, c.Members)
	}
	if c.ElectionTicks < 0 || c.HeartbeatTicks < 0 || c.MaxInflight < 0 || c.ThriftyStaleTicks < 0 || c.ThriftyCensusTicks < 0 ||
		c.MaxEntriesPerMessage < 0 || c.MaxBytesPerMessage < 0 {
		return errors.New("tick counts and limits must not be negative")
	}
	if c.HeartbeatTicks > 0 && c.ElectionTicks > 0 && c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("heartbeat interval (%d ticks) must be shorter than the election timeout (%d ticks)",
			c.HeartbeatTicks, c.ElectionTicks)
	}
	return nil
}
