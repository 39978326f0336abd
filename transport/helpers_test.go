package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 5 * time.Second

// logBuffer collects log output from the server goroutines.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count is the number of log lines containing s.
func (l *logBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// testServer is a Server for the Peer service on 127.0.0.1 with its log and
// accept count.
type testServer struct {
	*Server
	ln   *countingListener
	logs *logBuffer
}

func (s *testServer) addr() string { return s.Addr().String() }

// startServer serves NewPeerHandler(step) until the test ends.
func startServer(t testing.TB, step StepFunc, opts ServerOptions) *testServer {
	t.Helper()
	return startPeer(t, NewPeerHandler(step, nil, 0), opts)
}

// startPeer serves handler as the Peer service until the test ends.
func startPeer(t testing.TB, handler peerapi.Peer, opts ServerOptions) *testServer {
	t.Helper()
	return startProcessor(t, peerapi.NewPeerProcessor(handler), opts)
}

// startProcessor serves proc until the test ends.
func startProcessor(t testing.TB, proc thrift.TProcessor, opts ServerOptions) *testServer {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = logs.logger()
	}
	srv := newServer(ln, proc, opts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve returned %v after close", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("serve did not return after close")
		}
	})
	return &testServer{Server: srv, ln: ln, logs: logs}
}

// newClient is a PeerClient for srv, closed when the test ends.
func newClient(t testing.TB, srv *testServer, opts ClientOptions) *PeerClient {
	t.Helper()
	c := NewPeerClient(srv.addr(), opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// echoStep answers every request as replica 2 would if it agreed, deriving the
// reply from the request so that callers can check they got their own answer.
func echoStep(_ context.Context, req peer.Message) (peer.Message, error) {
	switch req.Type {
	case peer.MsgPrepare:
		return peer.Message{Type: peer.MsgPromise, From: 2, OK: true, Ballot: req.Ballot, Commit: req.Slot}, nil
	case peer.MsgAccept:
		return peer.Message{Type: peer.MsgAccepted, From: 2, OK: true, Ballot: req.Ballot,
			Commit: req.Commit + uint64(len(req.Entries)), RoundTrip: req.RoundTrip}, nil
	case peer.MsgExecute:
		return peer.Message{Type: peer.MsgExecuted, From: 2, Commit: req.Commit}, nil
	}
	return peer.Message{}, errors.New("unexpected request")
}

func ctxWithTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// dialRaw opens a plain TCP connection to srv.
func dialRaw(t testing.TB, srv *testServer) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.addr(), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed reads from c until the server closes it, failing the test if that
// takes longer than waitLimit. It returns what was read.
func expectClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("server kept the connection open for %v", waitLimit)
	case err != nil && !isHangUp(err):
		t.Fatalf("read: %v", err)
	}
	return got.Bytes()
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// mustCall makes a prepare call that must succeed.
func mustCall(t testing.TB, c *PeerClient, slot uint64) {
	t.Helper()
	req := peer.Message{Type: peer.MsgPrepare, From: 1, Ballot: peer.Ballot{Round: 1, ID: 1}, Slot: slot, Token: slot}
	reply, err := c.Call(ctxWithTimeout(t), req)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if reply.Commit != slot || reply.Token != slot {
		t.Fatalf("reply %+v does not answer slot %d", reply, slot)
	}
}
