package matrix

import (
	"context"
	"time"

	"github.com/ballot-kv/ballot/bench"
)

// System is the store a matrix measures: what its reports call it and how to start
// a cluster of it.
type System struct {
	// Program names the command in its progress lines ("benchmatrix").
	Program string
	// Name is the store in titles, tables and chart legends ("Ballot").
	Name string
	// Label, if set, starts the description of every cell, before the cluster
	// size, where the store is not evident ("etcd 3.6.16").
	Label string
	// Node is what one server of a cluster is called ("replica", "member").
	Node string
	// Process is the name of a server's process, in the report's notes ("ballotd").
	Process string
	// Server says, in the report, what each cell starts ("`bin/ballotd`").
	Server string
	// Clients says, in the report, how the workers connect.
	Clients string
	// FilePrefix starts the names of the report files ("bench").
	FilePrefix string
	// Start starts a fresh cluster of n servers, with its files under a new
	// directory in parent, and returns when it serves.
	Start func(ctx context.Context, parent string, n int) (Cluster, error)
}

// Cluster is one running cluster, started by System.Start.
type Cluster interface {
	// PIDs are the servers' process ids, whose CPU time is charged to the cell.
	PIDs() []int
	// NewKV returns worker i's own view of the cluster: its own client and
	// connections, listing the servers from the i-th, each operation bounded by
	// timeout. A KV that is an io.Closer is closed when the cell ends.
	NewKV(worker int, timeout time.Duration) (bench.KV, error)
	// Exited returns an error naming the first server that is no longer running.
	Exited() error
	// Stop stops every server, returning an error if one had to be killed.
	Stop() error
}

// nodes is "1 replica" or "N replicas".
func (s *System) nodes(n int) string { return plural(n, s.Node) }
