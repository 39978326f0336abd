package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Binaries built once by TestMain.
var (
	ballotdBin string
	ballotBin  string
)

// cliTimeout is the --timeout every ballot command runs with.
const cliTimeout = 3 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ballot-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := setupEnvTLS(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// buildBinaries builds ballotd and ballot into dir from the module root.
func buildBinaries(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("not inside the Go module")
	}
	root := filepath.Dir(gomod)
	ballotdBin = filepath.Join(dir, "ballotd")
	ballotBin = filepath.Join(dir, "ballot")
	for bin, pkg := range map[string]string{ballotdBin: "./server/cmd/ballotd", ballotBin: "./client/cmd/ballot"} {
		args := []string{"build"}
		if os.Getenv("BALLOT_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "-o", bin, pkg)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// waitFor polls cond until it returns nil, and fails the test with what and cond's
// last error if timeout passes first.
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
		poll := time.NewTimer(20 * time.Millisecond)
		<-poll.C
	}
}

// usedPorts holds every port handed out by freePort in this process, so that two
// replicas never get the same port even after the first has let it go.
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

// replica is one ballotd of a cluster and the process currently running it.
type replica struct {
	id         int
	clientAddr string
	peerAddr   string
	dataDir    string
	logPath    string
	// bin is the ballotd binary to run ("" for ballotdBin, the normal build), env
	// what is added to its environment (BALLOT_FAULTS=..., say).
	bin string
	env []string

	// Set by start, read by the test goroutine only.
	cmd    *exec.Cmd
	starts int
	// done is closed when the current process has exited; exitCode is set before.
	done     chan struct{}
	exitCode int
}

// running reports whether the replica's current process has not exited.
func (r *replica) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// cluster is a set of ballotd processes sharing one replicas file.
type cluster struct {
	t            testing.TB
	dir          string
	replicasFile string
	reps         []*replica // reps[i] has id i+1
	// args are extra ballotd flags given to every replica at every start.
	args []string
	// tls is what the replicas and the clients use for TLS (envTLS unless the
	// test sets its own before starting a replica); nil: plaintext.
	tls *clusterTLS
	// kept is the directory keptDir made, "" until then.
	kept string
}

// newCluster writes a replicas file for n replicas on free loopback ports, starts
// every replica and waits until each answers status. Every process it starts is
// killed when the test ends.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return newClusterWith(t, n)
}

// newClusterWith is newCluster with extra ballotd flags (such as
// "--snapshot-every-slots", "500") given to every replica at every start.
func newClusterWith(t testing.TB, n int, args ...string) *cluster {
	t.Helper()
	c := layoutCluster(t, n, args...)
	for id := 1; id <= n; id++ {
		c.startNoWait(id)
	}
	for id := 1; id <= n; id++ {
		c.waitServing(id)
	}
	return c
}

// layoutCluster writes the replicas file of a cluster of n replicas, each started
// with args, and starts none of them. Every process the cluster starts later is
// killed when the test ends.
func layoutCluster(t testing.TB, n int, args ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), args: slices.Clone(args), tls: envTLS}
	c.replicasFile = filepath.Join(c.dir, "replicas.txt")
	for range n {
		c.addReplica()
	}
	c.writeReplicasFile()
	t.Cleanup(c.cleanup)
	return c
}

// addReplica lays out one more replica, with the next id, new free ports and its
// own data directory, and returns its id. It neither starts it nor lists it in
// the replicas file: writeReplicasFile does, as an operator edits the file
// before starting a replica that a membership change will add. status and
// waitLeader expect the file to list every replica laid out.
func (c *cluster) addReplica() int {
	c.t.Helper()
	id := len(c.reps) + 1
	c.reps = append(c.reps, &replica{
		id:         id,
		clientAddr: freeAddr(c.t),
		peerAddr:   freeAddr(c.t),
		dataDir:    filepath.Join(c.dir, fmt.Sprintf("data-%d", id)),
		logPath:    filepath.Join(c.dir, fmt.Sprintf("replica-%d.log", id)),
	})
	return id
}

// writeReplicasFile rewrites the replicas file to list the replicas ids (every
// replica laid out if none), in order. A replica reads the file only when it
// starts, so running replicas go on as they were.
func (c *cluster) writeReplicasFile(ids ...int) {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.ids()
	}
	var file strings.Builder
	file.WriteString("# id  client address  peer address\n")
	for _, id := range ids {
		r := c.rep(id)
		fmt.Fprintf(&file, "%d  %s  %s\n", id, r.clientAddr, r.peerAddr)
	}
	if err := os.WriteFile(c.replicasFile, []byte(file.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) rep(id int) *replica {
	c.t.Helper()
	if id < 1 || id > len(c.reps) {
		c.t.Fatalf("no replica %d in a cluster of %d", id, len(c.reps))
	}
	return c.reps[id-1]
}

// ids returns every replica id, in order.
func (c *cluster) ids() []int {
	ids := make([]int, len(c.reps))
	for i := range c.reps {
		ids[i] = i + 1
	}
	return ids
}

// clientAddrs returns the client addresses of the given replicas (all if none).
func (c *cluster) clientAddrs(ids ...int) []string {
	if len(ids) == 0 {
		ids = c.ids()
	}
	addrs := make([]string, 0, len(ids))
	for _, id := range ids {
		addrs = append(addrs, c.rep(id).clientAddr)
	}
	return addrs
}

// start starts replica id on its data directory and waits until it answers status.
func (c *cluster) start(id int) {
	c.t.Helper()
	c.startNoWait(id)
	c.waitServing(id)
}

// startNoWait starts replica id's process, its output appended to its log file.
func (c *cluster) startNoWait(id int) {
	c.t.Helper()
	c.startNoWaitWith(id)
}

// startNoWaitWith starts replica id's process with extra flags for this start
// only (such as "--restore", FILE), after the cluster's own.
func (c *cluster) startNoWaitWith(id int, once ...string) {
	c.t.Helper()
	r := c.rep(id)
	if r.running() {
		c.t.Fatalf("replica %d is already running (pid %d)", id, r.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	r.starts++
	fmt.Fprintf(logf, "=== e2e: start #%d of replica %d at %s\n", r.starts, id, time.Now().Format(time.RFC3339Nano))
	args := []string{"--id", strconv.Itoa(id), "--replicas", c.replicasFile, "--data", r.dataDir}
	tlsFlags, err := c.tls.replicaFlags(id)
	if err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	args = append(append(append(args, tlsFlags...), c.args...), once...)
	fmt.Fprintf(logf, "=== e2e: ballotd %s\n", strings.Join(args, " "))
	bin := ballotdBin
	if r.bin != "" {
		bin = r.bin
	}
	cmd := exec.Command(bin, args...)
	if len(r.env) > 0 {
		cmd.Env = append(os.Environ(), r.env...)
		fmt.Fprintf(logf, "=== e2e: with %s\n", strings.Join(r.env, " "))
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start replica %d: %v", id, err)
	}
	done := make(chan struct{})
	r.cmd, r.done = cmd, done
	go func() {
		err := cmd.Wait()
		code := 0
		if err != nil {
			code = -1
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode() // -1 when killed by a signal
			}
		}
		fmt.Fprintf(logf, "=== e2e: replica %d (pid %d) exited: %v\n", id, cmd.Process.Pid, err)
		logf.Close()
		r.exitCode = code
		close(done)
	}()
}

// waitServing waits until replica id answers a status call on its client address.
func (c *cluster) waitServing(id int) {
	c.t.Helper()
	r := c.rep(id)
	waitFor(c.t, 15*time.Second, fmt.Sprintf("replica %d to serve at %s", id, r.clientAddr), func() error {
		if !r.running() {
			c.t.Fatalf("replica %d exited with code %d while starting:\n%s", id, r.exitCode, tail(r.logPath, 30))
		}
		_, err := rawStatusWith(r.clientAddr, c.tls.clientConfig())
		return err
	})
}

// kill sends SIGKILL to replica id's process and waits until it has exited.
func (c *cluster) kill(id int) {
	c.t.Helper()
	r := c.rep(id)
	if !r.running() {
		c.t.Fatalf("kill replica %d: not running", id)
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill replica %d (pid %d): %v", id, r.cmd.Process.Pid, err)
	}
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("replica %d (pid %d) still running 10s after SIGKILL", id, r.cmd.Process.Pid)
	}
}

// pause stops replica id's process with SIGSTOP: to the others its links stall
// with their connections still open, as on a stalled machine or a cut route.
func (c *cluster) pause(id int) {
	c.t.Helper()
	c.signal(id, syscall.SIGSTOP)
}

// resume lets a paused replica run again (SIGCONT).
func (c *cluster) resume(id int) {
	c.t.Helper()
	c.signal(id, syscall.SIGCONT)
}

func (c *cluster) signal(id int, sig syscall.Signal) {
	c.t.Helper()
	r := c.rep(id)
	if !r.running() {
		c.t.Fatalf("%v replica %d: not running", sig, id)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("%v replica %d (pid %d): %v", sig, id, r.cmd.Process.Pid, err)
	}
}

// wipe deletes replica id's data directory, as a lost disk would. The replica
// must not be running.
func (c *cluster) wipe(id int) {
	c.t.Helper()
	r := c.rep(id)
	if r.running() {
		c.t.Fatalf("wipe replica %d: still running (pid %d)", id, r.cmd.Process.Pid)
	}
	if err := os.RemoveAll(r.dataDir); err != nil {
		c.t.Fatalf("wipe replica %d: %v", id, err)
	}
}

// stop sends SIGTERM to replica id and waits up to grace for it to exit. It
// returns the exit code and how long the exit took, and fails the test if the
// process outlives grace.
func (c *cluster) stop(id int, grace time.Duration) (code int, took time.Duration) {
	c.t.Helper()
	r := c.rep(id)
	if !r.running() {
		c.t.Fatalf("stop replica %d: not running", id)
	}
	begin := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM replica %d (pid %d): %v", id, r.cmd.Process.Pid, err)
	}
	select {
	case <-r.done:
		return r.exitCode, time.Since(begin)
	case <-time.After(grace):
		c.t.Fatalf("replica %d (pid %d) still running %s after SIGTERM:\n%s", id, r.cmd.Process.Pid, grace, tail(r.logPath, 30))
		return 0, 0
	}
}

// cleanup kills every process the cluster started, then checks the replicas'
// logs for crashes, and prints their tails if the test failed.
func (c *cluster) cleanup() {
	for _, r := range c.reps {
		if r.running() {
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
	}
	for _, r := range c.reps {
		data, err := os.ReadFile(r.logPath)
		if err != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if bytes.Contains(data, []byte(bad)) {
				c.t.Errorf("replica %d's log contains %q", r.id, bad)
			}
		}
	}
	if c.t.Failed() {
		for _, r := range c.reps {
			c.t.Logf("---- last lines of replica %d's log (%s):\n%s", r.id, r.logPath, tail(r.logPath, 40))
		}
		// The test's temporary directory goes when it ends; the logs are the
		// evidence of the failure.
		if dir, err := c.keptDir(); err != nil {
			c.t.Logf("keeping the replicas' logs: %v", err)
		} else {
			for _, r := range c.reps {
				if data, err := os.ReadFile(r.logPath); err == nil {
					os.WriteFile(filepath.Join(dir, filepath.Base(r.logPath)), data, 0o644)
				}
			}
			c.t.Logf("replicas' logs kept in %s", dir)
		}
	}
}

// keptDir returns a directory outside the test's temporary directory for the
// evidence of a failure (the replicas' logs, a history), creating it on first use.
func (c *cluster) keptDir() (string, error) {
	if c.kept != "" {
		return c.kept, nil
	}
	name := strings.NewReplacer("/", "-", " ", "_").Replace(c.t.Name())
	dir, err := os.MkdirTemp("", "ballot-e2e-"+name+"-")
	if err != nil {
		return "", err
	}
	c.kept = dir
	return dir, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cliResult is what one run of the ballot command produced.
type cliResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// ballot runs the ballot command against the cluster with --timeout 3s.
func (c *cluster) ballot(args ...string) cliResult {
	c.t.Helper()
	return c.ballotIn(nil, args...)
}

// ballotIn runs the ballot command with stdin as its standard input.
func (c *cluster) ballotIn(stdin []byte, args ...string) cliResult {
	c.t.Helper()
	full := append(c.tls.cliFlags(), "--replicas", c.replicasFile, "--timeout", cliTimeout.String())
	return runCLI(c.t, stdin, append(full, args...)...)
}

// runCLI runs the ballot binary with args. A run that outlives 30s is killed and
// fails the test: every command has an explicit deadline.
func runCLI(t testing.TB, stdin []byte, args ...string) cliResult {
	t.Helper()
	return runCLIWithin(t, 30*time.Second, stdin, args...)
}

// runCLIWithin is runCLI for commands that may run longer than 30s (ballot
// bench): a run that outlives limit is killed and fails the test.
func runCLIWithin(t testing.TB, limit time.Duration, stdin []byte, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// With BALLOT_TEST_TLS=1 every command trusts the run's CA; flags given
	// after these (a cluster's own) take precedence.
	args = append(envTLS.cliFlags(), args...)
	cmd := exec.CommandContext(ctx, ballotBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	begin := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(begin)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("ballot %s: still running after %s", strings.Join(args, " "), limit)
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("ballot %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustBallot runs the ballot command and fails the test unless it exits 0.
func (c *cluster) mustBallot(args ...string) string {
	c.t.Helper()
	res := c.ballot(args...)
	if res.code != 0 {
		c.t.Fatalf("ballot %s: exit %d, stderr: %s", strings.Join(args, " "), res.code, res.stderr)
	}
	return res.stdout
}

// replicaStatus is one replica's entry in `ballot status --json`.
type replicaStatus struct {
	ID         int64  `json:"id"`
	ClientAddr string `json:"client_addr"`
	PeerAddr   string `json:"peer_addr"`
	Up         bool   `json:"up"`
	Leader     bool   `json:"leader"`
	LeaderID   int64  `json:"leader_id"`
	Ballot     string `json:"ballot"`
	Applied    int64  `json:"applied"`
	Chosen     int64  `json:"chosen"`
	LogEntries int64  `json:"log_entries"`
	Keys       int64  `json:"keys"`
	// SnapshotIndex is the applied slot of the replica's latest snapshot,
	// Compacted the slot up to which its log is discarded, DiskBytes the size of
	// its data directory.
	SnapshotIndex int64  `json:"snapshot_index"`
	Compacted     int64  `json:"compacted"`
	DiskBytes     int64  `json:"disk_bytes"`
	Error         string `json:"error"`
}

// status runs `ballot status --json` and returns the entries by replica id. It
// returns an error if the output is not one entry per replica of the cluster.
func (c *cluster) status() (map[int]replicaStatus, error) {
	res := c.ballot("status", "--json")
	var list []replicaStatus
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		// Accept an object holding the list as well.
		var obj struct {
			Replicas []replicaStatus `json:"replicas"`
		}
		if err2 := json.Unmarshal([]byte(res.stdout), &obj); err2 != nil || obj.Replicas == nil {
			return nil, fmt.Errorf("ballot status --json: exit %d, output %q is not a status list: %v; stderr: %s",
				res.code, res.stdout, err, res.stderr)
		}
		list = obj.Replicas
	}
	byID := make(map[int]replicaStatus, len(list))
	for _, s := range list {
		byID[int(s.ID)] = s
	}
	for _, r := range c.reps {
		s, ok := byID[r.id]
		if !ok {
			return nil, fmt.Errorf("ballot status --json: no entry for replica %d in %s", r.id, res.stdout)
		}
		if s.ClientAddr != r.clientAddr {
			return nil, fmt.Errorf("ballot status --json: replica %d has client_addr %q, want %q", r.id, s.ClientAddr, r.clientAddr)
		}
	}
	if len(byID) != len(c.reps) {
		return nil, fmt.Errorf("ballot status --json: %d entries for %d replicas: %s", len(byID), len(c.reps), res.stdout)
	}
	return byID, nil
}

// waitLeader waits until one of the running replicas among ids (all if none)
// reports that it leads and a majority of the cluster names it as leader, and
// returns its id.
func (c *cluster) waitLeader(ids ...int) int {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.ids()
	}
	leader := 0
	waitFor(c.t, 20*time.Second, fmt.Sprintf("a leader among replicas %v", ids), func() error {
		st, err := c.status()
		if err != nil {
			return err
		}
		var claims []int
		for id, s := range st {
			if s.Up && s.Leader {
				claims = append(claims, id)
			}
		}
		if len(claims) != 1 {
			return fmt.Errorf("replicas claiming to lead: %v", claims)
		}
		l := claims[0]
		if !slices.Contains(ids, l) {
			return fmt.Errorf("replica %d leads, want one of %v", l, ids)
		}
		votes := 0
		for _, s := range st {
			if s.Up && s.LeaderID == int64(l) {
				votes++
			}
		}
		if votes <= len(c.reps)/2 {
			return fmt.Errorf("only %d replicas name %d as leader", votes, l)
		}
		leader = l
		return nil
	})
	return leader
}

// client returns a Go client for the given replicas (all if none), closed when
// the test ends.
func (c *cluster) client(timeout time.Duration, ids ...int) *client.Client {
	c.t.Helper()
	cl, err := client.New(client.Config{Endpoints: c.clientAddrs(ids...), Timeout: timeout, TLS: c.tls.clientConfig()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// rawKV is a raw Thrift connection to one replica's client service: framed
// transport, strict binary protocol, as the IDL prescribes.
type rawKV struct {
	*kvapi.KVClient
	sock thrift.TTransport
}

// dialKV opens a raw Thrift connection to addr with a 5s socket timeout, over
// TLS with BALLOT_TEST_TLS=1.
func dialKV(addr string) (*rawKV, error) {
	return dialKVWith(addr, envTLS.clientConfig())
}

// dialKVWith is dialKV over TLS with tlsConfig, or plaintext if it is nil.
func dialKVWith(addr string, tlsConfig *tls.Config) (*rawKV, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 5 * time.Second}
	sock, err := openKVSocket(addr, cfg, tlsConfig)
	if err != nil {
		return nil, err
	}
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	proto := thrift.NewTBinaryProtocolConf(trans, cfg)
	return &rawKV{KVClient: kvapi.NewKVClient(thrift.NewTStandardClient(proto, proto)), sock: sock}, nil
}

func (r *rawKV) Close() error { return r.sock.Close() }

// mustDialKV opens a raw connection to addr, closed when the test ends.
func mustDialKV(t testing.TB, addr string) *rawKV {
	t.Helper()
	kv, err := dialKV(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { kv.Close() })
	return kv
}

// rawStatus asks the replica at addr for its status on a fresh connection.
func rawStatus(addr string) (*kvapi.ReplicaStatus, error) {
	return rawStatusWith(addr, envTLS.clientConfig())
}

// rawStatusWith is rawStatus over TLS with tlsConfig, or plaintext if it is nil.
func rawStatusWith(addr string, tlsConfig *tls.Config) (*kvapi.ReplicaStatus, error) {
	kv, err := dialKVWith(addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return notStarting(kv.Status(ctx))
}

// notStarting turns the status of a replica still starting, which serves
// nothing yet and reports no state, into an error, as before it answered.
func notStarting(st *kvapi.ReplicaStatus, err error) (*kvapi.ReplicaStatus, error) {
	if err == nil && st.GetStarting() != "" {
		return nil, fmt.Errorf("replica %d is starting: %s", st.GetID(), st.GetStarting())
	}
	return st, err
}

// waitCaughtUp waits until every replica is up and all report the same applied
// slot, at least atLeast, and returns that slot.
func (c *cluster) waitCaughtUp(timeout time.Duration, atLeast int64) int64 {
	c.t.Helper()
	var applied int64
	waitFor(c.t, timeout, fmt.Sprintf("every replica to apply the same slot >= %d", atLeast), func() error {
		st, err := c.status()
		if err != nil {
			return err
		}
		seen := make(map[int]int64, len(st))
		for id, s := range st {
			if !s.Up {
				return fmt.Errorf("replica %d is down: %s", id, s.Error)
			}
			seen[id] = s.Applied
		}
		first := seen[1]
		for _, a := range seen {
			if a != first || a < atLeast {
				return fmt.Errorf("applied slots by replica: %v", seen)
			}
		}
		applied = first
		return nil
	})
	return applied
}

// others returns the ids in all that are not in except.
func others(all []int, except ...int) []int {
	var out []int
	for _, id := range all {
		if !slices.Contains(except, id) {
			out = append(out, id)
		}
	}
	return out
}
