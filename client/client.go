package client

import (
	"fmt"
	"log/slog"
	"sync"
)

// Client talks to a Ballot cluster. It is safe for concurrent use; Close it to
// release its connections.
type Client struct {
	cfg      Config
	log      *slog.Logger
	sessions sessionPool

	mu sync.Mutex // guards pools, leader and closed
	// pools holds one connection pool per address used so far: the endpoints and
	// any leader address a replica named.
	pools map[string]*connPool
	// leader is the address that last served a write or linearizable read, or that
	// a NotLeader named; "" when none is known.
	leader string
	closed bool
}

// WriteResult is the outcome of a Put or Delete.
type WriteResult struct {
	// Slot is the log slot in which the write was chosen.
	Slot uint64
	// Existed reports whether the key held a value before the write.
	Existed bool
}

// New returns a Client for the replicas at cfg.Endpoints. It does not connect:
// connections are opened by the first operations and then reused.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Client{
		cfg:   cfg,
		log:   cfg.Logger,
		pools: make(map[string]*connPool),
	}, nil
}

// Leader returns the last known leader's client address, or "" if none is known.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Close closes the client's idle connections; connections in use are closed as
// their calls finish. Operations started after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	pools := c.pools
	c.pools = nil
	c.closed = true
	c.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	return nil
}

// pool returns the connection pool for addr, creating it on first use.
func (c *Client) pool(addr string) (*connPool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	p, ok := c.pools[addr]
	if !ok {
		p = newConnPool(addr, c.cfg.DialTimeout, c.cfg.TLS)
		c.pools[addr] = p
	}
	return p, nil
}

// noteLeader records addr as the leader.
func (c *Client) noteLeader(addr string) {
	c.mu.Lock()
	old := c.leader
	c.leader = addr
	c.mu.Unlock()
	if old != addr {
		c.log.Info("leader changed", "from", old, "to", addr)
	}
}

// forgetLeader forgets the leader if it is addr, which just failed as one.
func (c *Client) forgetLeader(addr string) {
	c.mu.Lock()
	forgot := c.leader == addr && addr != ""
	if forgot {
		c.leader = ""
	}
	c.mu.Unlock()
	if forgot {
		c.log.Info("leader lost", "leader", addr)
	}
}

func (c *Client) closedErr(op string) error {
	return fmt.Errorf("%s: %w", op, ErrClosed)
}
