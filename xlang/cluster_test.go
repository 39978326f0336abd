package xlang

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/ballot-kv/ballot/internal/certs"
	"github.com/ballot-kv/ballot/replicas"
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
	// certs are the files of a cluster started withTLS; zero otherwise.
	certs certs.Written
	// tls is what the test's own calls to a client port use: nil for plaintext.
	tls *tls.Config
}

// clusterOptions change how startCluster starts the replicas.
type clusterOptions struct {
	// withTLS generates certificates for the replicas file with internal/certs
	// and starts every replica with mutual TLS on its peer port and TLS on its
	// client port that requires a client certificate from the same CA.
	withTLS bool
}

// startCluster starts n replicas and waits until one of them leads. A port taken
// by another process between freeAddr and ballotd's listen makes a replica exit;
// startCluster then tries again with new ports. Every process it starts is killed
// when the test ends.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return startClusterWith(t, n, clusterOptions{})
}

// startClusterWith is startCluster with options.
func startClusterWith(t testing.TB, n int, opts clusterOptions) *cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := tryStartCluster(t, n, opts)
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

func tryStartCluster(t testing.TB, n int, opts clusterOptions) (*cluster, error) {
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
	if opts.withTLS {
		if err := c.makeCerts(file, filepath.Join(dir, "certs")); err != nil {
			return nil, err
		}
	}
	t.Cleanup(c.killAll)
	for _, r := range c.reps {
		if err := r.start(file, c.tlsArgs(r.id)...); err != nil {
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

// makeCerts generates a CA and certificates for the replicas of replicasFile into
// dir, and the client TLS configuration of the test's own calls.
func (c *cluster) makeCerts(replicasFile, dir string) error {
	list, err := replicas.Load(replicasFile)
	if err != nil {
		return err
	}
	if c.certs, err = certs.Generate(dir, list, certs.Options{}); err != nil {
		return err
	}
	c.tls, err = clientTLS(c.certs.CA, c.certs.Client)
	return err
}

// clientTLS is a TLS client configuration trusting the CA in caFile and
// presenting the certificate in files.
func clientTLS(caFile string, files certs.CertFiles) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// tlsArgs are the ballotd flags that turn TLS on for replica id: its own
// certificate on both ports, the CA for the peers' certificates and for the
// clients'. None for a plaintext cluster.
func (c *cluster) tlsArgs(id int) []string {
	if c.certs.CA == "" {
		return nil
	}
	own := c.certs.Replicas[uint64(id)]
	return []string{
		"--peer-cert", own.Cert, "--peer-key", own.Key, "--peer-ca", c.certs.CA,
		"--client-cert", own.Cert, "--client-key", own.Key, "--client-ca", c.certs.CA,
	}
}

// clientTLSArgs are the example clients' flags for TLS with the cluster's client
// certificate; none for a plaintext cluster.
func (c *cluster) clientTLSArgs() []string {
	if c.certs.CA == "" {
		return nil
	}
	return []string{"--cacert", c.certs.CA, "--cert", c.certs.Client.Cert, "--key", c.certs.Client.Key}
}

func (r *replica) start(replicasFile string, extraArgs ...string) error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	args := append([]string{"--id", strconv.Itoa(r.id), "--replicas", replicasFile, "--data", r.dataDir}, extraArgs...)
	cmd := exec.Command(ballotdBin, args...)
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
		st, err := status(r.clientAddr, c.tls)
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

// status asks the replica at addr for its status over the KV service, with TLS
// when tlsConfig is not nil.
func status(addr string, tlsConfig *tls.Config) (*kvapi.ReplicaStatus, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 2 * time.Second, TLSConfig: tlsConfig}
	var sock thrift.TTransport = thrift.NewTSocketConf(addr, cfg)
	if tlsConfig != nil {
		sock = thrift.NewTSSLSocketConf(addr, cfg)
	}
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	if err := trans.Open(); err != nil {
		return nil, err
	}
	defer trans.Close()
	kv := kvapi.NewKVClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(cfg))
	st, err := kv.Status(context.Background())
	if err == nil && st.GetStarting() != "" {
		// Still starting: it serves nothing and reports no state yet.
		return nil, fmt.Errorf("%s is starting: %s", addr, st.GetStarting())
	}
	return st, err
}
