package xlang

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// waitFor polls cond every 20ms until it returns nil, and fails the test with what
// and cond's last error once timeout has passed.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last: %v", timeout, what, err)
		}
		tick := time.NewTimer(20 * time.Millisecond)
		<-tick.C
	}
}

// usedPorts holds every port freeAddr has handed out, so that no two replicas get
// the same one even after the first has let it go.
var usedPorts = struct {
	sync.Mutex // guards m
	m          map[int]bool
}{m: make(map[int]bool)}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		usedPorts.Lock()
		seen := usedPorts.m[port]
		usedPorts.m[port] = true
		usedPorts.Unlock()
		if !seen {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
	}
	t.Fatal("no unused free port after 100 tries")
	return ""
}

// replica is one ballotd process of a cluster.
type replica struct {
	id         int
	clientAddr string
	peerAddr   string
	dataDir    string
	logPath    string
	cmd        *exec.Cmd
	// done is closed once the process has exited.
	done chan struct{}
}

// cluster is three (or n) ballotd processes on loopback ports sharing one
// replicas file. Only the test goroutine uses it.
type cluster struct {
	t    testing.TB
	reps []*replica // reps[i] has id i+1
}

// startCluster starts n replicas and waits until one of them leads. A port taken
// by another process between freeAddr and ballotd's listen makes a replica exit;
// startCluster then tries again with new ports. Every process it starts is killed
// when the test ends.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := tryStartCluster(t, n)
		if err == nil {
			return c
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("starting the cluster again: %v", err)
	}
}

var errPortTaken = errors.New("a port was taken by another process")

func tryStartCluster(t testing.TB, n int) (*cluster, error) {
	dir := t.TempDir()
	file := filepath.Join(dir, "replicas.txt")
	c := &cluster{t: t}
	var lines strings.Builder
	for id := 1; id <= n; id++ {
		r := &replica{
			id:         id,
			clientAddr: freeAddr(t),
			peerAddr:   freeAddr(t),
			dataDir:    filepath.Join(dir, fmt.Sprintf("data-%d", id)),
			logPath:    filepath.Join(dir, fmt.Sprintf("replica-%d.log", id)),
		}
		c.reps = append(c.reps, r)
		fmt.Fprintf(&lines, "%d %s %s\n", id, r.clientAddr, r.peerAddr)
	}
	if err := os.WriteFile(file, []byte(lines.String()), 0o644); err != nil {
		return nil, err
	}
	t.Cleanup(c.killAll)
	for _, r := range c.reps {
		if err := r.start(file); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, r := range c.reps {
			select {
			case <-r.done:
				log, _ := os.ReadFile(r.logPath)
				if strings.Contains(string(log), "address already in use") {
					c.killAll()
					return nil, fmt.Errorf("replica %d: %w", r.id, errPortTaken)
				}
				return nil, fmt.Errorf("replica %d exited during start-up; its log:\n%s", r.id, log)
			default:
			}
		}
		if _, err := c.leader(); err == nil {
			return c, nil
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader 30s after start: %v", err)
		}
		tick := time.NewTimer(20 * time.Millisecond)
		<-tick.C
	}
}

func (r *replica) start(replicasFile string) error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(ballotdBin, "--id", strconv.Itoa(r.id), "--replicas", replicasFile, "--data", r.dataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start replica %d: %w", r.id, err)
	}
	r.cmd = cmd
	r.done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(r.done)
	}()
	return nil
}

// killAll kills every replica process still running, by its pid, and waits for
// it; if the test failed it logs the end of each replica's log first.
func (c *cluster) killAll() {
	for _, r := range c.reps {
		if r.cmd == nil {
			continue
		}
		select {
		case <-r.done:
		default:
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
	}
	if c.t.Failed() {
		for _, r := range c.reps {
			if log, err := os.ReadFile(r.logPath); err == nil {
				c.t.Logf("replica %d log (last 3000 bytes):\n%s", r.id, tail(log, 3000))
			}
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// endpoints returns the client addresses of every replica, the given one first.
func (c *cluster) endpoints(first int) string {
	addrs := []string{c.reps[first-1].clientAddr}
	for _, r := range c.reps {
		if r.id != first {
			addrs = append(addrs, r.clientAddr)
		}
	}
	return strings.Join(addrs, ",")
}

func (c *cluster) allAddrs() []string {
	var addrs []string
	for _, r := range c.reps {
		addrs = append(addrs, r.clientAddr)
	}
	return addrs
}

// leader returns the id of the replica that says it leads, if exactly one does.
func (c *cluster) leader() (int, error) {
	var leaders []int
	var errs []error
	for _, r := range c.reps {
		st, err := status(r.clientAddr)
		if err != nil {
			errs = append(errs, fmt.Errorf("replica %d: %w", r.id, err))
			continue
		}
		if st.IsLeader {
			leaders = append(leaders, r.id)
		}
	}
	if len(leaders) != 1 {
		return 0, fmt.Errorf("replicas leading: %v; %w", leaders, errors.Join(errs...))
	}
	return leaders[0], nil
}

// waitLeader waits until exactly one replica leads and returns its id.
func (c *cluster) waitLeader(t testing.TB) int {
	t.Helper()
	var id int
	waitFor(t, 30*time.Second, "a leader", func() (err error) {
		id, err = c.leader()
		return err
	})
	return id
}

// follower returns the id of a replica other than leader.
func (c *cluster) follower(leader int) int {
	return leader%len(c.reps) + 1
}

// status asks the replica at addr for its status over the KV service.
func status(addr string) (*kvapi.ReplicaStatus, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 2 * time.Second}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := trans.Open(); err != nil {
		return nil, err
	}
	defer trans.Close()
	kv := kvapi.NewKVClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(cfg))
	return kv.Status(context.Background())
}
