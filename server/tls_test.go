package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/internal/tlsconfig/tlstest"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
)

// testCerts is a CA, one certificate for every replica on 127.0.0.1 and a
// client certificate, written into a directory.
type testCerts struct {
	ca            *tlstest.CA
	caFile        string
	cert, key     string // the replicas' certificate (valid for 127.0.0.1) and key
	client, clkey string
	clientTLS     *tls.Config
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	tc := testCerts{ca: ca, caFile: ca.WriteCA(t, dir, "ca.pem")}
	tc.cert, tc.key = ca.Replica(t, "replica").Write(t, dir, "replica")
	tc.client, tc.clkey = ca.Client(t, "ballot-client").Write(t, dir, "client")
	cfg, err := tlsconfig.Client(tlsconfig.ClientFiles{CACert: tc.caFile, Cert: tc.client, Key: tc.clkey}, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tc.clientTLS = cfg
	return tc
}

// configure turns on mutual TLS between replicas and TLS with client
// certificates on the client port.
func (tc testCerts) configure(_ uint64, cfg *Config) {
	cfg.PeerTLS = tlsconfig.PeerFiles{Cert: tc.cert, Key: tc.key, CA: tc.caFile}
	cfg.ClientTLS = tlsconfig.ClientPortFiles{Cert: tc.cert, Key: tc.key, ClientCA: tc.caFile}
}

func TestTLSClusterServes(t *testing.T) {
	certs := newTestCerts(t)
	c := newTestClusterWith(t, 3, certs.configure)
	var eps []string
	for _, a := range c.addrs {
		eps = append(eps, a)
	}
	cl, err := client.New(client.Config{Endpoints: eps, Timeout: 10 * time.Second, TLS: certs.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := range 20 {
		if _, err := cl.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if v, err := cl.Get(ctx, "k19"); err != nil || string(v) != "v" {
		t.Fatalf("get: %q, %v", v, err)
	}
	// A client without a certificate is refused; one without TLS as well.
	for name, cfg := range map[string]*tls.Config{"no certificate": {RootCAs: certs.ca.Pool}, "plaintext": nil} {
		other, err := client.New(client.Config{Endpoints: eps, Timeout: 500 * time.Millisecond, TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Get(ctx, "k1"); !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("%s: got %v, want ErrUnavailable", name, err)
		}
		other.Close()
	}
}

// TestPlaintextPeerPortWarns checks the one warning a replica without peer
// TLS logs, and that a replica with it does not.
func TestPlaintextPeerPortWarns(t *testing.T) {
	certs := newTestCerts(t)
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			logs := &logBuffer{}
			c := newTestClusterWith(t, 1, func(id uint64, cfg *Config) {
				if withTLS {
					certs.configure(id, cfg)
				}
				cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			waitForLog(t, logs, "replica started")
			want := fmt.Sprintf("peer port is not authenticated: anyone who can reach %s can vote; see docs/security.md", c.peerAddrs[1])
			n := strings.Count(logs.String(), "peer port is not authenticated")
			switch {
			case !withTLS && (n != 1 || !strings.Contains(logs.String(), want)):
				t.Errorf("want the line %q once:\n%s", want, logs)
			case withTLS && n != 0:
				t.Errorf("a replica with peer TLS warns of a plaintext peer port:\n%s", logs)
			}
		})
	}
}

func waitForLog(t *testing.T, l *logBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 10s:\n%s", s, l)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestTLSStartErrors(t *testing.T) {
	certs := newTestCerts(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "replicas.txt")
	os.WriteFile(file, []byte(fmt.Sprintf("1 %s %s\n", freePort(t), freePort(t))), 0o644)
	base := Config{ID: 1, ReplicasFile: file}
	cases := []struct {
		name string
		set  func(*Config)
		want []string
	}{
		{"peer key missing", func(c *Config) { c.PeerTLS = tlsconfig.PeerFiles{Cert: certs.cert, CA: certs.caFile} }, []string{"--peer-key"}},
		{"client key missing", func(c *Config) { c.ClientTLS = tlsconfig.ClientPortFiles{Cert: certs.cert} }, []string{"--client-key"}},
		{"client CA alone", func(c *Config) { c.ClientTLS = tlsconfig.ClientPortFiles{ClientCA: certs.caFile} }, []string{"--client-ca"}},
		{"peer cert is the client's", func(c *Config) {
			c.PeerTLS = tlsconfig.PeerFiles{Cert: certs.client, Key: certs.clkey, CA: certs.caFile}
		}, []string{"peer TLS", certs.client, "ServerAuth"}},
		{"client port key of another certificate", func(c *Config) {
			c.ClientTLS = tlsconfig.ClientPortFiles{Cert: certs.cert, Key: certs.clkey}
		}, []string{"client TLS", certs.clkey, "does not match"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.DataDir = filepath.Join(dir, fmt.Sprint(i))
			tc.set(&cfg)
			err := Run(context.Background(), cfg)
			if err == nil {
				t.Fatal("started; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestLiveMembersFollowsConfiguration checks what the peer port's handshakes
// are checked against: the configuration the replica starts from, then the
// one its node runs as it changes, and none while it waits to join.
func TestLiveMembersFollowsConfiguration(t *testing.T) {
	var live atomic.Pointer[node]
	members := liveMembers(&live, []string{"127.0.0.1:1", "127.0.0.1:2"})
	if got := members(); !slices.Equal(got, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Fatalf("before the node runs: %v", got)
	}
	core, err := peer.New(peer.Config{ID: 1, Members: []uint64{1}}, peer.Durable{})
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(core, nil, nil, time.Millisecond, 1, slog.New(slog.DiscardHandler))
	set := func(mem membership) {
		n.mem = mem
		n.publish()
	}
	set(membership{epoch: 2, members: []replicas.Replica{{ID: 1, PeerAddr: "10.0.0.1:7000"}, {ID: 4, PeerAddr: "db4:7000"}}})
	live.Store(n)
	if got := members(); !slices.Equal(got, []string{"10.0.0.1:7000", "db4:7000"}) {
		t.Fatalf("epoch 2: %v", got)
	}
	set(membership{epoch: 3, members: []replicas.Replica{{ID: 1, PeerAddr: "10.0.0.1:7000"}}})
	if got := members(); !slices.Equal(got, []string{"10.0.0.1:7000"}) {
		t.Fatalf("epoch 3, replica 4 removed: %v", got)
	}
	n.joining = true
	set(membership{members: []replicas.Replica{{ID: 1, PeerAddr: "10.0.0.1:7000"}}})
	if got := members(); got != nil {
		t.Fatalf("joining: %v, want nil (any replica certificate)", got)
	}
}
