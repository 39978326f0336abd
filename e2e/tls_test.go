package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/transport"
)

// Clusters here run with mutual TLS between replicas and TLS with client
// certificates on the client port, whatever BALLOT_TEST_TLS says, with
// certificates from internal/certs (what `ballot certs` writes). Each replica
// listens on a loopback address of its own, 127.0.0.(10+id), so that its
// certificate names its host and not the others': membership is then checked
// for real at every handshake. (`ballot certs` adds 127.0.0.1, localhost and
// ::1 to a loopback replica's names; no replica here listens there.)

// tlsHost is replica id's loopback address.
func tlsHost(id int) string { return fmt.Sprintf("127.0.0.%d", 10+id) }

// freeAddrOn returns host:PORT with a port that was free on host a moment ago.
func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s (the test needs the loopback range 127.0.0.0/8): %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// layoutTLSCluster lays out n replicas on their own loopback addresses, with
// certificates for them and for future more replicas that addTLSReplica will
// add, all from one CA.
func layoutTLSCluster(t *testing.T, n, future int) *cluster {
	t.Helper()
	c := layoutCluster(t, n)
	var list []replicas.Replica
	for id := 1; id <= n+future; id++ {
		r := replicas.Replica{ID: uint64(id), ClientAddr: tlsHost(id) + ":1", PeerAddr: tlsHost(id) + ":2"}
		if id <= n {
			rep := c.rep(id)
			rep.clientAddr, rep.peerAddr = freeAddrOn(t, tlsHost(id)), freeAddrOn(t, tlsHost(id))
			r.ClientAddr, r.PeerAddr = rep.clientAddr, rep.peerAddr
		}
		list = append(list, r)
	}
	c.writeReplicasFile()
	s, err := newClusterTLS(filepath.Join(c.dir, "certs"), list)
	if err != nil {
		t.Fatal(err)
	}
	c.tls = s
	return c
}

// addTLSReplica lays out the next replica on its own loopback address (see
// addReplica), whose certificate layoutTLSCluster made.
func (c *cluster) addTLSReplica() int {
	c.t.Helper()
	id := c.addReplica()
	r := c.rep(id)
	r.clientAddr, r.peerAddr = freeAddrOn(c.t, tlsHost(id)), freeAddrOn(c.t, tlsHost(id))
	return id
}

// tlsClient is a Go client of the cluster with its CA and client certificate.
func (c *cluster) tlsClient(timeout time.Duration) *client.Client {
	c.t.Helper()
	cl, err := client.New(client.Config{Endpoints: c.clientAddrs(), Timeout: timeout, TLS: c.tls.clientConfig()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// peerTLSWith is a peer-port client configuration presenting the certificate
// in certFile and keyFile and trusting the cluster's CA.
func (c *cluster) peerTLSWith(certFile, keyFile string) *tls.Config {
	c.t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		c.t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: c.tls.client.RootCAs}
}

// prepareWith sends one prepare to replica id's peer port as replica 9 would,
// over TLS with cfg, and returns the error.
func (c *cluster) prepareWith(id int, cfg *tls.Config) error {
	pc := transport.NewPeerClient(c.rep(id).peerAddr, transport.ClientOptions{TLS: cfg, ConnectTimeout: 2 * time.Second})
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := pc.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: 9, Ballot: peer.Ballot{Round: 1, ID: 9}, Slot: 1})
	return err
}

// logOf is replica id's log so far.
func (c *cluster) logOf(id int) string {
	data, err := os.ReadFile(c.rep(id).logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(data)
}

// TestTLSClusterServesTheCLI runs three replicas with TLS on both ports and
// writes and reads through `ballot` with --cacert, --cert and --key; without
// the client certificate, or without TLS, the client port refuses.
func TestTLSClusterServesTheCLI(t *testing.T) {
	c := layoutTLSCluster(t, 3, 0)
	for id := 1; id <= 3; id++ {
		c.startNoWait(id)
	}
	for id := 1; id <= 3; id++ {
		c.waitServing(id)
	}
	c.waitLeader()
	tlsArgs := []string{"--replicas", c.replicasFile, "--timeout", "5s",
		"--cacert", c.tls.files.CA, "--cert", c.tls.files.Client.Cert, "--key", c.tls.files.Client.Key}
	for i := range 5 {
		key, value := fmt.Sprintf("colour-%d", i), fmt.Sprintf("blue-%d", i)
		if r := runCLI(t, nil, append(tlsArgs, "put", key, value)...); r.code != 0 {
			t.Fatalf("ballot put over TLS: exit %d, stderr %s", r.code, r.stderr)
		}
		if r := runCLI(t, nil, append(tlsArgs, "get", key)...); r.code != 0 || r.stdout != value+"\n" {
			t.Fatalf("ballot get over TLS: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, nil, append(tlsArgs, "status")...); r.code != 0 || strings.Count(r.stdout, " up ") != 3 {
		t.Errorf("ballot status over TLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Plaintext: refused, and the replica says why. (This comes first: a port
	// logs one refused handshake per ten seconds.)
	kv, err := dialKVWith(c.rep(1).clientAddr, nil)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = kv.Status(ctx)
		cancel()
		kv.Close()
	}
	if err == nil {
		t.Error("a plaintext status call to a TLS client port succeeded")
	}
	waitFor(t, 5*time.Second, "replica 1 to log the plaintext client", func() error {
		if log := c.logOf(1); !strings.Contains(log, "TLS handshake failed") || !strings.Contains(log, "first record does not look like a TLS handshake") {
			return errors.New("no such line yet")
		}
		return nil
	})
	// Without a client certificate: refused at the handshake too. The CLI tries
	// until its deadline and names the last refusal; a deadline of 1 s once
	// ended inside the first dial (a loaded machine drops a SYN, and the next
	// leaves a second later), before any replica could refuse.
	noCert := []string{"--replicas", c.replicasFile, "--timeout", "5s", "--cacert", c.tls.files.CA, "--cert", "", "--key", ""}
	if r := runCLI(t, nil, append(noCert, "get", "colour-1")...); r.code != 3 || !strings.Contains(r.stderr, "certificate required") {
		t.Errorf("ballot get without a client certificate: exit %d, stderr %s; want exit 3, certificate required", r.code, r.stderr)
	}
	if log := c.logOf(1); strings.Contains(log, "peer port is not authenticated") {
		t.Error("a replica with peer TLS warns that its peer port is not authenticated")
	}
}

// TestTLSPeerPortRefusesClientCertificate makes a prepare call to a replica's
// peer port with the client certificate, which chains to the CA but names no
// member: it is refused at the handshake, and the replica logs who and why. The
// same call with a member's certificate passes the handshake.
func TestTLSPeerPortRefusesClientCertificate(t *testing.T) {
	c := layoutTLSCluster(t, 3, 0)
	for id := 1; id <= 3; id++ {
		c.startNoWait(id)
	}
	c.waitLeader()
	err := c.prepareWith(1, c.peerTLSWith(c.tls.files.Client.Cert, c.tls.files.Client.Key))
	if err == nil || !strings.Contains(err.Error(), "tls: bad certificate") {
		t.Fatalf("prepare with the client certificate: %v; want the handshake refused (bad certificate)", err)
	}
	waitFor(t, 5*time.Second, "replica 1 to log the refusal", func() error {
		log := c.logOf(1)
		for _, want := range []string{"TLS handshake failed", `\"ballot-client\" (no DNS or IP name) is valid for none of the members' peer hosts`} {
			if !strings.Contains(log, want) {
				return fmt.Errorf("no %q in replica 1's log", want)
			}
		}
		return nil
	})
	member := c.tls.files.Replicas[2]
	if err := c.prepareWith(1, c.peerTLSWith(member.Cert, member.Key)); err != nil && strings.Contains(err.Error(), "tls:") {
		t.Errorf("prepare with replica 2's certificate failed at the handshake: %v", err)
	}
}

// TestTLSReplicaOfAnotherCAIsNoVoter restarts replica 3 with certificates of
// another CA: replicas 1 and 2 go on as a majority; without replica 2 the two
// left have none (writes fail with Unavailable, since replica 3 cannot talk to
// replica 1); with replica 2 back, writes succeed again.
func TestTLSReplicaOfAnotherCAIsNoVoter(t *testing.T) {
	c := layoutTLSCluster(t, 3, 0)
	for id := 1; id <= 3; id++ {
		c.startNoWait(id)
	}
	c.waitLeader()
	cl := c.tlsClient(3 * time.Second)
	ctx := context.Background()
	if _, err := cl.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatalf("put with every replica good: %v", err)
	}

	var list []replicas.Replica
	for _, r := range c.reps {
		list = append(list, replicas.Replica{ID: uint64(r.id), ClientAddr: r.clientAddr, PeerAddr: r.peerAddr})
	}
	other, err := newClusterTLS(filepath.Join(c.dir, "other-certs"), list)
	if err != nil {
		t.Fatal(err)
	}
	c.kill(3)
	flags, err := other.replicaFlags(3)
	if err != nil {
		t.Fatal(err)
	}
	c.startNoWaitWith(3, flags...) // after the cluster's own flags, so these count
	leader := c.waitLeader(1, 2)
	if _, err := cl.Put(ctx, "with-3-foreign", []byte("2")); err != nil {
		t.Fatalf("put with replicas 1 and 2 good (leader %d): %v", leader, err)
	}

	c.kill(2)
	if _, err := cl.Put(ctx, "without-2", []byte("3")); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("put with replica 2 down and replica 3 of another CA: %v; want ErrUnavailable", err)
	}
	// Replica 3 refuses the others' certificates when it calls them (and so
	// never shows them its own); they see their certificate refused.
	for id, want := range map[int]string{1: "TLS handshake failed", 3: "certificate signed by unknown authority"} {
		if log := c.logOf(id); !strings.Contains(log, want) {
			t.Errorf("replica %d's log does not say %q", id, want)
		}
	}

	c.startNoWait(2)
	waitFor(t, 20*time.Second, "a put once replica 2 is back", func() error {
		_, err := cl.Put(ctx, "after", []byte("4"))
		return err
	})
}

// TestTLSReconfigureAddsReplica adds a fourth replica to a TLS cluster with
// `ballot reconfigure` and removes the third: the new replica is refused by the
// members until the change that adds it is applied, then joins and serves;
// the removed one is refused from then on.
func TestTLSReconfigureAddsReplica(t *testing.T) {
	c := layoutTLSCluster(t, 3, 1)
	for id := 1; id <= 3; id++ {
		c.startNoWait(id)
	}
	c.waitLeader()
	cl := c.tlsClient(5 * time.Second)
	ctx := context.Background()
	if _, err := cl.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}

	added := c.addTLSReplica()
	c.writeReplicasFile()
	c.startNoWait(added)
	// The new replica asks the members about the cluster; not yet one of them,
	// it is refused at every handshake.
	waitFor(t, 10*time.Second, "replica 1 to refuse replica 4", func() error {
		if !strings.Contains(c.logOf(1), `\"replica-4\"`) {
			return errors.New("replica 1's log does not name replica-4 yet")
		}
		return nil
	})

	c.writeReplicasFile(1, 2, added)
	if r := c.ballot("reconfigure"); r.code != 0 {
		t.Fatalf("ballot reconfigure: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, 20*time.Second, "replica 4 to vote and the others to agree", func() error {
		for _, id := range []int{1, 2, added} {
			st, err := rawStatusWith(c.rep(id).clientAddr, c.tls.clientConfig())
			if err != nil {
				return fmt.Errorf("replica %d: %w", id, err)
			}
			if got := statusIDs(st.Members); !st.Member || fmt.Sprint(got) != fmt.Sprint([]int{1, 2, added}) {
				return fmt.Errorf("replica %d: member %v, members %v", id, st.Member, got)
			}
		}
		return nil
	})
	cl4, err := client.New(client.Config{Endpoints: c.clientAddrs(added), Timeout: 5 * time.Second, TLS: c.tls.clientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl4.Close()
	if _, err := cl4.Put(ctx, "after", []byte("2")); err != nil {
		t.Fatalf("put through replica 4: %v", err)
	}
	if v, err := cl4.GetStale(ctx, "before"); err != nil || string(v) != "1" {
		t.Fatalf("replica 4's copy of a key written before it joined: %q, %v", v, err)
	}
	// Replica 3, removed, is now refused by the members; replica 4 is not.
	removed, joined := c.tls.files.Replicas[3], c.tls.files.Replicas[uint64(added)]
	if err := c.prepareWith(1, c.peerTLSWith(removed.Cert, removed.Key)); err == nil || !strings.Contains(err.Error(), "tls: bad certificate") {
		t.Errorf("prepare with the removed replica's certificate: %v; want the handshake refused", err)
	}
	if err := c.prepareWith(1, c.peerTLSWith(joined.Cert, joined.Key)); err != nil && strings.Contains(err.Error(), "tls:") {
		t.Errorf("prepare with the added replica's certificate failed at the handshake: %v", err)
	}
}

// TestTLSJoinFromAnotherFile adds replica 4, started with --join and a
// replicas file that lists only itself: the member that contacts it is none
// it knows of, and it has no configuration to check that member against. It
// must accept the member's certificate all the same (any replica certificate
// of the CA, while it waits to join), join, and then serve.
func TestTLSJoinFromAnotherFile(t *testing.T) {
	c := layoutTLSCluster(t, 3, 1)
	for id := 1; id <= 3; id++ {
		c.startNoWait(id)
	}
	c.waitLeader()
	added := c.addTLSReplica()
	c.writeReplicasFile()
	r := c.rep(added)
	own := filepath.Join(c.dir, "replicas-4.txt")
	if err := os.WriteFile(own, []byte(fmt.Sprintf("%d %s %s\n", added, r.clientAddr, r.peerAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	c.startNoWaitWith(added, "--replicas", own, "--join")
	c.waitServing(added)
	if res := c.ballot("reconfigure"); res.code != 0 {
		t.Fatalf("ballot reconfigure: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	waitFor(t, 20*time.Second, "replica 4 to vote", func() error {
		st, err := rawStatusWith(r.clientAddr, c.tls.clientConfig())
		if err != nil {
			return err
		}
		if !st.Member || len(st.Members) != 4 {
			return fmt.Errorf("member %v, members %v", st.Member, st.Members)
		}
		return nil
	})
	cl4, err := client.New(client.Config{Endpoints: []string{r.clientAddr}, Timeout: 5 * time.Second, TLS: c.tls.clientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl4.Close()
	if _, err := cl4.Put(context.Background(), "joined", []byte("yes")); err != nil {
		t.Fatalf("put through replica 4: %v", err)
	}
	if log := c.logOf(added); strings.Contains(log, "TLS handshake failed") {
		t.Errorf("replica 4 refused a member:\n%s", tail(r.logPath, 20))
	}
}
