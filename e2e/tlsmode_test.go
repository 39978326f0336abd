package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/internal/certs"
	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/replicas"
)

// envTLS is the TLS every cluster of this run uses when BALLOT_TEST_TLS=1
// (make test-tls): mutual TLS between replicas, TLS with client certificates
// on the client port, and every client (Go, raw Thrift, the ballot command)
// trusting the CA and presenting the client certificate. Nil, the default:
// plaintext everywhere. Set once by TestMain, read-only afterwards.
var envTLS *clusterTLS

// envTLSReplicas is how many replica ids envTLS has certificates for.
const envTLSReplicas = 32

// clusterTLS is a CA, a certificate per replica id and a client certificate,
// as `ballot certs` writes them.
type clusterTLS struct {
	files certs.Written
	// client trusts the CA and presents the client certificate.
	client *tls.Config
	// member trusts the CA and presents replica 1's certificate, which both
	// ports of every replica on 127.0.0.1 accept.
	member *tls.Config
}

// setupEnvTLS sets envTLS if BALLOT_TEST_TLS=1, writing its files under dir.
// Every replica of these tests listens on 127.0.0.1, so each certificate names
// every replica's host; the ports in the list are placeholders.
func setupEnvTLS(dir string) error {
	switch v := os.Getenv("BALLOT_TEST_TLS"); v {
	case "", "0":
		return nil
	case "1":
	default:
		return fmt.Errorf("BALLOT_TEST_TLS=%q: want 1 (TLS on) or 0", v)
	}
	list := make([]replicas.Replica, envTLSReplicas)
	for i := range list {
		id := i + 1
		list[i] = replicas.Replica{ID: uint64(id),
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", 20000+2*id), PeerAddr: fmt.Sprintf("127.0.0.1:%d", 20001+2*id)}
	}
	s, err := newClusterTLS(filepath.Join(dir, "certs"), list)
	if err != nil {
		return fmt.Errorf("BALLOT_TEST_TLS=1: %w", err)
	}
	envTLS = s
	return nil
}

// newClusterTLS generates certificates for list into dir.
func newClusterTLS(dir string, list []replicas.Replica) (*clusterTLS, error) {
	w, err := certs.Generate(dir, list, certs.Options{})
	if err != nil {
		return nil, err
	}
	client, err := tlsconfig.Client(tlsconfig.ClientFiles{CACert: w.CA, Cert: w.Client.Cert, Key: w.Client.Key}, tlsconfig.Options{})
	if err != nil {
		return nil, err
	}
	first := w.Replicas[list[0].ID]
	member, err := tlsconfig.PeerClient(tlsconfig.PeerFiles{Cert: first.Cert, Key: first.Key, CA: w.CA}, tlsconfig.Options{})
	if err != nil {
		return nil, err
	}
	return &clusterTLS{files: w, client: client, member: member}, nil
}

// replicaFlags are ballotd's TLS flags for replica id: its certificate on both
// ports, the CA for the other replicas and for clients. Nil for a nil s.
func (s *clusterTLS) replicaFlags(id int) ([]string, error) {
	if s == nil {
		return nil, nil
	}
	f, ok := s.files.Replicas[uint64(id)]
	if !ok {
		return nil, fmt.Errorf("no TLS certificate for replica %d (the run has %d)", id, len(s.files.Replicas))
	}
	return []string{
		"--peer-cert", f.Cert, "--peer-key", f.Key, "--peer-ca", s.files.CA,
		"--client-cert", f.Cert, "--client-key", f.Key, "--client-ca", s.files.CA,
	}, nil
}

// cliFlags are the ballot command's TLS flags. Nil for a nil s.
func (s *clusterTLS) cliFlags() []string {
	if s == nil {
		return nil
	}
	return []string{"--cacert", s.files.CA, "--cert", s.files.Client.Cert, "--key", s.files.Client.Key}
}

// clientConfig is the Go clients' TLS configuration; nil (plaintext) for a nil s.
func (s *clusterTLS) clientConfig() *tls.Config {
	if s == nil {
		return nil
	}
	return s.client
}

// openKVSocket opens a Thrift socket to addr configured by cfg, over TLS with
// tlsConfig (for addr's host) if it is not nil.
func openKVSocket(addr string, cfg *thrift.TConfiguration, tlsConfig *tls.Config) (thrift.TTransport, error) {
	var sock thrift.TTransport
	if tlsConfig != nil {
		cfg.TLSConfig = tlsconfig.ForHost(tlsConfig, addr)
		sock = thrift.NewTSSLSocketConf(addr, cfg)
	} else {
		sock = thrift.NewTSocketConf(addr, cfg)
	}
	if err := sock.Open(); err != nil {
		return nil, err
	}
	return sock, nil
}

// dialForRequest opens a connection to a replica's client or peer port on
// which a test writes raw request bytes (half a frame, a byte at a time): plain
// TCP, or with BALLOT_TEST_TLS=1 a TLS connection whose handshake is done, so
// that the bytes reach the replica's Thrift layer as they would in plaintext.
// A handshake the replica cuts short (it closed the connection as it came in)
// is an error wrapping errRefusedAtHandshake.
func dialForRequest(addr string, timeout time.Duration) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil || envTLS == nil {
		return raw, err
	}
	tc := tls.Client(raw, tlsconfig.ForHost(envTLS.member, addr))
	raw.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w: %w", errRefusedAtHandshake, err)
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

// errRefusedAtHandshake: the replica closed a connection before its TLS
// handshake was over.
var errRefusedAtHandshake = errors.New("closed during the TLS handshake")
