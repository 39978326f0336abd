package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/bench/cmd/benchmatrix/matrix"
	"github.com/ballot-kv/ballot/client"
)

// How long a cluster may take to elect a leader.
const (
	startTimeout = 30 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// cluster is a set of ballotd processes on loopback that this program started.
type cluster struct {
	dir       string
	endpoints []string
	reps      []*matrix.Process
}

var _ matrix.Cluster = (*cluster)(nil)

// startCluster writes a replicas file for n replicas on free loopback ports under
// a new directory in parent, starts ballotd for each with a fresh data directory,
// and waits until they agree on a leader.
func startCluster(ctx context.Context, ballotd, parent string, n int) (*cluster, error) {
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("cluster-%d-", n))
	if err != nil {
		return nil, err
	}
	addrs, err := matrix.FreeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir}
	var file strings.Builder
	file.WriteString("# id  client address  peer address\n")
	for i := range n {
		fmt.Fprintf(&file, "%d  %s  %s\n", i+1, addrs[2*i], addrs[2*i+1])
		c.endpoints = append(c.endpoints, addrs[2*i])
	}
	replicasFile := filepath.Join(dir, "replicas.txt")
	if err := os.WriteFile(replicasFile, []byte(file.String()), 0o644); err != nil {
		return nil, err
	}
	for i := range n {
		id := i + 1
		p, err := matrix.StartProcess(fmt.Sprintf("replica %d", id), filepath.Join(dir, fmt.Sprintf("replica-%d.log", id)),
			ballotd, "--id", fmt.Sprint(id), "--replicas", replicasFile,
			"--data", filepath.Join(dir, fmt.Sprintf("data-%d", id)), "--log-level", "warn")
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.reps = append(c.reps, p)
	}
	if err := c.waitLeader(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// PIDs returns the replicas' process ids.
func (c *cluster) PIDs() []int { return matrix.PIDs(c.reps) }

// Exited returns an error naming the first of the replicas that is no longer running.
func (c *cluster) Exited() error { return matrix.FirstExited(c.reps) }

// Stop stops every replica: SIGTERM, then SIGKILL after matrix.StopGrace.
func (c *cluster) Stop() error { return matrix.StopProcesses(c.reps) }

// waitLeader polls every replica's status until one leads and every replica
// names it, or startTimeout passes.
func (c *cluster) waitLeader(ctx context.Context) error {
	cl, err := client.New(client.Config{Endpoints: c.endpoints, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last error
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		if last = c.agreeOnLeader(ctx, cl); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader within %s: %w (logs in %s)", startTimeout, last, c.dir)
		case <-tick.C:
		}
	}
}

func (c *cluster) agreeOnLeader(ctx context.Context, cl *client.Client) error {
	var leader int64
	for _, ep := range c.endpoints {
		st, err := cl.Status(ctx, ep)
		if err != nil {
			return err
		}
		if st.GetLeaderID() == 0 {
			return fmt.Errorf("%s knows no leader", ep)
		}
		if leader != 0 && st.GetLeaderID() != leader {
			return fmt.Errorf("replicas name leaders %d and %d", leader, st.GetLeaderID())
		}
		leader = st.GetLeaderID()
	}
	return nil
}

// NewKV gives worker i its own client, hence its own connection and session,
// listing the replicas from the i-th so that stale reads spread over them.
func (c *cluster) NewKV(i int, timeout time.Duration) (bench.KV, error) {
	n := len(c.endpoints)
	eps := append(append([]string{}, c.endpoints[i%n:]...), c.endpoints[:i%n]...)
	kc, err := client.New(client.Config{Endpoints: eps, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	return closingKV{bench.ClientKV{C: kc}}, nil
}

// closingKV closes each worker's client when the run ends.
type closingKV struct{ bench.ClientKV }

func (k closingKV) Close() error { return k.C.Close() }
