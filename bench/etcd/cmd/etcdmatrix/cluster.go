package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/bench/cmd/benchmatrix/matrix"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// How long a cluster may take to serve, and how often it is asked meanwhile.
const (
	startTimeout = 30 * time.Second
	pollEvery    = 50 * time.Millisecond
	// dialTimeout bounds a worker's first connection to the cluster.
	dialTimeout = 5 * time.Second
)

// cluster is a set of etcd members on loopback that this program started.
type cluster struct {
	dir       string
	endpoints []string // the members' client addresses, host:port
	members   []*matrix.Process
	// sharedClient says whether all workers share one clientv3.Client.
	sharedClient bool

	mu     sync.Mutex       // guards shared
	shared *clientv3.Client // the workers' client if sharedClient, made by the first
}

var _ matrix.Cluster = (*cluster)(nil)

// startCluster starts n members, each "self server" with a fresh data directory
// under a new directory in parent and its own client and peer ports on
// 127.0.0.1, and waits until every member answers a linearizable get.
func startCluster(ctx context.Context, self, parent string, n int, sharedClient bool) (*cluster, error) {
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("etcd-%d-", n))
	if err != nil {
		return nil, err
	}
	addrs, err := matrix.FreeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, sharedClient: sharedClient}
	var initial []string
	for i := range n {
		c.endpoints = append(c.endpoints, addrs[2*i])
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i+1, addrs[2*i+1]))
	}
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		p, err := matrix.StartProcess("member "+name, filepath.Join(dir, name+".log"), self, memberArgs(dir, name, addrs[2*i], addrs[2*i+1], initial)...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.members = append(c.members, p)
	}
	if err := c.waitServing(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// memberArgs are the arguments of one member: only what must differ between
// members, and logging; everything else is etcd's default.
func memberArgs(dir, name, clientAddr, peerAddr string, initial []string) []string {
	return []string{"server",
		"--name", name,
		"--data-dir", filepath.Join(dir, name+".etcd"),
		"--listen-client-urls", "http://" + clientAddr,
		"--advertise-client-urls", "http://" + clientAddr,
		"--listen-peer-urls", "http://" + peerAddr,
		"--initial-advertise-peer-urls", "http://" + peerAddr,
		"--initial-cluster", strings.Join(initial, ","),
		// Its log goes to stderr, which is the member's log file.
		"--log-level", "warn",
	}
}

// PIDs returns the members' process ids.
func (c *cluster) PIDs() []int { return matrix.PIDs(c.members) }

// Exited returns an error naming the first of the members that is no longer running.
func (c *cluster) Exited() error { return matrix.FirstExited(c.members) }

// Stop closes the workers' shared client, if any, and stops every member:
// SIGTERM, then SIGKILL after matrix.StopGrace.
func (c *cluster) Stop() error {
	c.mu.Lock()
	if c.shared != nil {
		c.shared.Close()
		c.shared = nil
	}
	c.mu.Unlock()
	return matrix.StopProcesses(c.members)
}

// waitServing asks every member, through a client that knows only that member,
// for a linearizable get, until all answer or startTimeout passes. A member
// answers one only once the cluster has a leader and the member has caught up.
func (c *cluster) waitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	clients := make([]*clientv3.Client, len(c.endpoints))
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	serving := make([]bool, len(c.endpoints))
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var last error
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		last = nil
		for i, ep := range c.endpoints {
			if serving[i] {
				continue
			}
			if clients[i] == nil {
				cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: time.Second, Logger: zap.NewNop()})
				if err != nil {
					last = errors.Join(last, fmt.Errorf("connect to %s: %w", ep, err))
					continue
				}
				clients[i] = cl
			}
			gctx, gcancel := context.WithTimeout(ctx, time.Second)
			_, err := clients[i].Get(gctx, "bench/ready")
			gcancel()
			if err != nil {
				last = errors.Join(last, fmt.Errorf("get through %s: %w", ep, err))
				continue
			}
			serving[i] = true
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not serving within %s: %w (logs in %s)", startTimeout, last, c.dir)
		case <-tick.C:
		}
	}
}

// NewKV gives worker i its own clientv3.Client, hence its own connections, with
// the members listed from the i-th, as Ballot's workers list the replicas;
// clientv3 spreads a client's requests over all its endpoints, round-robin. With
// sharedClient, every worker uses one client instead, and gRPC multiplexes all
// their requests over one connection per member, as etcd's own tools do.
func (c *cluster) NewKV(i int, timeout time.Duration) (bench.KV, error) {
	if c.sharedClient {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.shared == nil {
			cl, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: dialTimeout, Logger: zap.NewNop()})
			if err != nil {
				return nil, fmt.Errorf("the workers' shared etcd client: %w", err)
			}
			c.shared = cl
		}
		return &kv{c: c.shared, timeout: timeout}, nil
	}
	n := len(c.endpoints)
	eps := append(append([]string{}, c.endpoints[i%n:]...), c.endpoints[:i%n]...)
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: dialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client of worker %d: %w", i, err)
	}
	return ownKV{&kv{c: cl, timeout: timeout}}, nil
}
