package transport

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/internal/tlsconfig/tlstest"
	"github.com/ballot-kv/ballot/peer"
)

// peerTLS is a CA and the peer port's configurations for a replica on
// 127.0.0.1 whose configuration lists one member there.
type peerTLS struct {
	ca             *tlstest.CA
	server, client *tls.Config
}

func newPeerTLS(t testing.TB) peerTLS {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Replica(t, "replica-1").Write(t, dir, "replica-1")
	files := tlsconfig.PeerFiles{Cert: cert, Key: key, CA: ca.WriteCA(t, dir, "ca.pem")}
	server, err := tlsconfig.PeerServer(files, func() []string { return []string{"127.0.0.1:7001"} }, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsconfig.PeerClient(files, tlsconfig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return peerTLS{ca: ca, server: server, client: client}
}

// withCert is a peer client configuration presenting cert and trusting roots.
func withCert(cert tls.Certificate, ca *tlstest.CA) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool}
}

func TestTLSRoundTrip(t *testing.T) {
	p := newPeerTLS(t)
	srv := startServer(t, echoStep, ServerOptions{TLS: p.server})
	c := newClient(t, srv, ClientOptions{TLS: p.client})
	for slot := range uint64(5) {
		mustCall(t, c, slot+1)
	}
	if n := srv.ln.accepts.Load(); n != 1 {
		t.Errorf("%d connections for 5 calls, want 1: TLS connections are pooled too", n)
	}
	if n := srv.logs.count("level=WARN"); n != 0 {
		t.Errorf("warnings on good calls:\n%s", srv.logs)
	}
}

// TestTLSRefusals makes calls that the peer port must refuse at the handshake,
// and checks that each fails and is logged with the caller's address and the
// reason.
func TestTLSRefusals(t *testing.T) {
	p := newPeerTLS(t)
	other := tlstest.NewCA(t, "test CA") // the same name, another key
	cases := []struct {
		name   string
		client *tls.Config
		reason string
	}{
		{"plaintext client", nil, "first record does not look like a TLS handshake"},
		{"certificate of another CA", withCert(other.Replica(t, "replica-1").TLS, p.ca), "unknown authority"},
		{"client certificate without a replica name", withCert(p.ca.Client(t, "ballot-client").TLS, p.ca), "(no DNS or IP name) is valid for none of the members' peer hosts (127.0.0.1)"},
		{"no certificate", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: p.ca.Pool}, "didn't provide a certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, echoStep, ServerOptions{TLS: p.server})
			c := newClient(t, srv, ClientOptions{TLS: tc.client})
			req := peer.Message{Type: peer.MsgPrepare, From: 1, Ballot: peer.Ballot{Round: 1, ID: 1}, Slot: 1}
			if reply, err := c.Call(ctxWithTimeout(t), req); err == nil {
				t.Fatalf("call succeeded: %+v", reply)
			}
			waitFor(t, "the refusal to be logged", func() bool { return srv.logs.count("TLS handshake failed") == 1 })
			logs := srv.logs.String()
			if !strings.Contains(logs, tc.reason) || !strings.Contains(logs, "remote=127.0.0.1:") {
				t.Errorf("log does not name the caller and %q:\n%s", tc.reason, logs)
			}
			waitFor(t, "the connection to close", func() bool { return srv.numConns() == 0 })
		})
	}
}

// TestTLSHandshakeBounded checks that a connection that never starts its
// handshake is closed after IdleTimeout, and one that stalls halfway after
// ReadTimeout, whichever is the shorter of the two each time.
func TestTLSHandshakeBounded(t *testing.T) {
	p := newPeerTLS(t)
	const short, long = 200 * time.Millisecond, time.Minute
	cases := []struct {
		name  string
		opts  ServerOptions
		send  []byte
		log   string
		level string
	}{
		// Nothing sent: the idle timeout applies, the read timeout does not.
		{"silent", ServerOptions{IdleTimeout: short, ReadTimeout: long}, nil, "idle connection closed before its TLS handshake", "DEBUG"},
		// A record header announcing 512 bytes of handshake, and 3 of them.
		{"stalled", ServerOptions{IdleTimeout: long, ReadTimeout: short}, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}, "TLS handshake stalled", "WARN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.TLS = p.server
			srv := startServer(t, echoStep, tc.opts)
			begin := time.Now() // before the server can start its clock
			conn := dialRaw(t, srv)
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, conn)
			if took := time.Since(begin); took < short || took > short+2*time.Second {
				t.Errorf("closed after %v, want about %v", took, short)
			}
			waitFor(t, "the connection's goroutine to end", func() bool { return srv.numConns() == 0 })
			if n := srv.logs.count(tc.log); n != 1 || !strings.Contains(srv.logs.String(), "level="+tc.level+" msg=\""+tc.log) {
				t.Errorf("want one %s line %q:\n%s", tc.level, tc.log, srv.logs)
			}
			// The server still serves a good client.
			mustCall(t, newClient(t, srv, ClientOptions{TLS: p.client}), 1)
		})
	}
}

// TestTLSClientHandshakeBounded dials a server that accepts and never
// answers: the call must fail within ConnectTimeout, not the call's deadline.
func TestTLSClientHandshakeBounded(t *testing.T) {
	p := newPeerTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c // kept open, never read
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	c := NewPeerClient(ln.Addr().String(), ClientOptions{TLS: p.client, ConnectTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	_, err = c.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: 1, Slot: 1})
	took := time.Since(begin)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("got %v, want a failed TLS handshake", err)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("the handshake gave up after %v with a ConnectTimeout of 200ms", took)
	}
}

// BenchmarkAcceptRoundTripTLS is BenchmarkAcceptRoundTrip over mutual TLS.
func BenchmarkAcceptRoundTripTLS(b *testing.B) {
	p := newPeerTLS(b)
	srv := startServer(b, echoStep, ServerOptions{MaxFrameSize: PeerMaxFrameSize, TLS: p.server})
	c := newClient(b, srv, ClientOptions{TLS: p.client})
	req := benchAccept()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
