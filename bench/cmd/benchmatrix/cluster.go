package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/bench/cmd/benchmatrix/matrix"
	"github.com/ballot-kv/ballot/client"
)

// How long a cluster may take to elect a leader, and a replica to stop on SIGTERM.
const (
	startTimeout = 30 * time.Second
	stopGrace    = 10 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// cluster is a set of ballotd processes on loopback that this program started.
type cluster struct {
	dir       string
	endpoints []string
	reps      []*replicaProc
}

type replicaProc struct {
	id      int
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // set before done is closed
}

// freeAddrs returns n distinct 127.0.0.1 addresses on ports that were free a
// moment ago, each held until all are chosen so that none repeats.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// startCluster writes a replicas file for n replicas on free loopback ports under
// a new directory in parent, starts ballotd for each with a fresh data directory,
// and waits until they agree on a leader.
func startCluster(ctx context.Context, ballotd, parent string, n int) (*cluster, error) {
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("cluster-%d-", n))
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(2 * n)
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
		r := &replicaProc{id: id, logPath: filepath.Join(dir, fmt.Sprintf("replica-%d.log", id)), done: make(chan struct{})}
		logf, err := os.Create(r.logPath)
		if err != nil {
			c.Stop()
			return nil, err
		}
		r.cmd = exec.Command(ballotd, "--id", fmt.Sprint(id), "--replicas", replicasFile,
			"--data", filepath.Join(dir, fmt.Sprintf("data-%d", id)), "--log-level", "warn")
		r.cmd.Stdout, r.cmd.Stderr = logf, logf
		// The replicas die with this program even if it is killed.
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := r.cmd.Start(); err != nil {
			logf.Close()
			c.Stop()
			return nil, fmt.Errorf("start replica %d: %w", id, err)
		}
		go func() {
			r.err = r.cmd.Wait()
			logf.Close()
			close(r.done)
		}()
		c.reps = append(c.reps, r)
	}
	if err := c.waitLeader(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

var _ matrix.Cluster = (*cluster)(nil)

// PIDs returns the replicas' process ids.
func (c *cluster) PIDs() []int {
	var pids []int
	for _, r := range c.reps {
		pids = append(pids, r.cmd.Process.Pid)
	}
	return pids
}

// Exited returns an error naming the first replica that is no longer running.
func (c *cluster) Exited() error {
	for _, r := range c.reps {
		select {
		case <-r.done:
			return fmt.Errorf("replica %d (pid %d) exited: %v; log %s", r.id, r.cmd.Process.Pid, r.err, r.logPath)
		default:
		}
	}
	return nil
}

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

// Stop sends SIGTERM to every replica still running, waits up to stopGrace, then
// sends SIGKILL to any left. It returns an error if a replica had to be killed.
func (c *cluster) Stop() error {
	for _, r := range c.reps {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	var errs []error
	for _, r := range c.reps {
		select {
		case <-r.done:
		case <-timer.C:
			// Later replicas get no more grace than the first.
			timer.Reset(0)
		}
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
			errs = append(errs, fmt.Errorf("replica %d (pid %d) needed SIGKILL", r.id, r.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
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
