package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// frame prefixes payload with its length, as the framed transport does.
func frame(payload []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
}

// encode serializes a Thrift message with the binary protocol, strict or not.
func encode(t testing.TB, strict bool, write func(ctx context.Context, p thrift.TProtocol) error) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{TBinaryStrictWrite: &strict})
	if err := write(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// prepareCall is a valid prepare call message.
func prepareCall(ctx context.Context, p thrift.TProtocol) error {
	if err := p.WriteMessageBegin(ctx, "prepare", thrift.CALL, 1); err != nil {
		return err
	}
	args := peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{Sender: 1, Ballot: &peerapi.Ballot{Round: 1, Replica: 1}}}
	if err := args.Write(ctx, p); err != nil {
		return err
	}
	return p.WriteMessageEnd(ctx)
}

// readException decodes the exception the server wrote in reply.
func readException(t testing.TB, reply []byte) thrift.TApplicationException {
	t.Helper()
	if len(reply) < 4 {
		t.Fatalf("no reply frame (%d bytes)", len(reply))
	}
	buf := thrift.NewTMemoryBuffer()
	buf.Write(reply[4:])
	p := thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})
	ctx := context.Background()
	_, typ, _, err := p.ReadMessageBegin(ctx)
	if err != nil || typ != thrift.EXCEPTION {
		t.Fatalf("reply is %v, %v; want an exception", typ, err)
	}
	ex := thrift.NewTApplicationException(0, "")
	if err := ex.Read(ctx, p); err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestListenAddressInUse(t *testing.T) {
	first, err := Listen("127.0.0.1:0", peerapi.NewPeerProcessor(NewPeerHandler(echoStep, nil, 0)), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := first.Addr().String()
	_, err = Listen(addr, peerapi.NewPeerProcessor(NewPeerHandler(echoStep, nil, 0)), ServerOptions{})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want EADDRINUSE naming %s", err, addr)
	}
}

func TestListenRejectsNegativeOptions(t *testing.T) {
	for _, opts := range []ServerOptions{{MaxFrameSize: -1}, {ReadTimeout: -1}, {IdleTimeout: -1}, {MaxConns: -1}} {
		if _, err := Listen("127.0.0.1:0", peerapi.NewPeerProcessor(NewPeerHandler(echoStep, nil, 0)), opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
}

func TestListenServesRealCalls(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", peerapi.NewPeerProcessor(NewPeerHandler(echoStep, nil, 0)), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	c := NewPeerClient(srv.Addr().String(), ClientOptions{})
	defer c.Close()
	mustCall(t, c, 5)
	if err := srv.Serve(); err == nil {
		t.Error("second Serve succeeded")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestHandlerPanic(t *testing.T) {
	step := func(ctx context.Context, req peer.Message) (peer.Message, error) {
		if req.Slot == 13 {
			panic("slot 13 is unlucky")
		}
		return echoStep(ctx, req)
	}
	srv := startServer(t, step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)
	_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare, From: 1, Slot: 13})
	if err == nil {
		t.Fatal("call into a panicking handler succeeded")
	}
	mustCall(t, c, 2)
	// The panic closed the pooled connection under the call, which the client
	// then sent once more on a new one, where it panicked again; the next call
	// needed a third.
	if n := srv.ln.accepts.Load(); n != 3 {
		t.Errorf("%d connections, want 3: each panic closes its connection", n)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, "panicked") || !strings.Contains(logs, "slot 13 is unlucky") || !strings.Contains(logs, "goroutine ") {
		t.Errorf("panic not logged with its stack:\n%s", logs)
	}
}

// TestGarbageClosesConnection sends what a port scanner or a misdirected client
// might, and checks that each connection is closed, the server logs once for all
// of them, and it still serves a valid client.
func TestGarbageClosesConnection(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{ReadTimeout: 200 * time.Millisecond})
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	// A pre-0.9 message: name length, name, type, sequence id, empty struct.
	unversioned := []byte{0, 0, 0, 7, 'p', 'r', 'e', 'p', 'a', 'r', 'e', 1, 0, 0, 0, 1, 0}
	garbage := map[string][]byte{
		"http":        []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
		"random":      random,
		"2 GiB frame": {0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"no version":  append(frame(unversioned), unversioned...),
		"negative":    {0x80, 0, 0, 0},
	}
	for name, b := range garbage {
		t.Run(name, func(t *testing.T) {
			conn := dialRaw(t, srv)
			conn.Write(b) // the server may close before reading it all
			expectClosed(t, conn)
		})
	}
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)
	if n := srv.logs.count("level=WARN"); n != 1 {
		t.Errorf("%d log lines for %d malformed connections, want 1:\n%s", n, len(garbage), srv.logs)
	}
}

// TestHugeFrameHeaderAllocatesNothing announces a 2 GiB frame and keeps sending:
// the server must refuse it on the length alone.
func TestHugeFrameHeaderAllocatesNothing(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{MaxFrameSize: PeerMaxFrameSize})
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1) // warm up

	chunk := make([]byte, 1<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conn := dialRaw(t, srv)
	if _, err := conn.Write([]byte{0x7f, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	// Without the size check the server would buffer all of this.
	for range 96 {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
	}
	expectClosed(t, conn)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Fatalf("a 2 GiB frame header cost %d MiB of allocation", d>>20)
	}
	if !strings.Contains(srv.logs.String(), "Incorrect frame size (2147483647)") {
		t.Errorf("frame size not logged:\n%s", srv.logs)
	}
	mustCall(t, c, 2)
}

// TestMaxFrameSizeApplies checks the framed transport uses ServerOptions.MaxFrameSize.
func TestMaxFrameSizeApplies(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{MaxFrameSize: 1024})
	c := newClient(t, srv, ClientOptions{})
	req := peer.Message{Type: peer.MsgAccept, From: 1, Entries: []peer.Entry{{Slot: 1, Data: make([]byte, 1100)}}}
	if _, err := c.Call(ctxWithTimeout(t), req); err == nil {
		t.Fatal("a 1100-byte entry passed a 1024-byte frame limit")
	}
	if !strings.Contains(srv.logs.String(), "Incorrect frame size") {
		t.Errorf("oversized frame not logged:\n%s", srv.logs)
	}
	req.Entries[0].Data = make([]byte, 800)
	if _, err := c.Call(ctxWithTimeout(t), req); err != nil {
		t.Fatalf("an 800-byte entry within the limit: %v\n%s", err, srv.logs)
	}
}

// TestMaxMessageSizeApplies checks the protocol refuses a length prefix above the
// limit inside a frame that is itself within it.
func TestMaxMessageSizeApplies(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	payload := encode(t, true, func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteMessageBegin(ctx, "prepare", thrift.CALL, 1); err != nil {
			return err
		}
		if err := p.WriteStructBegin(ctx, "args"); err != nil {
			return err
		}
		if err := p.WriteFieldBegin(ctx, "junk", thrift.STRING, 99); err != nil {
			return err
		}
		// 50 MiB: above MaxMessageSize, below Thrift's default limit.
		return p.WriteI32(ctx, 50<<20)
	})
	conn := dialRaw(t, srv)
	if _, err := conn.Write(append(frame(payload), payload...)); err != nil {
		t.Fatal(err)
	}
	ex := readException(t, expectClosed(t, conn))
	if ex.TypeId() != thrift.PROTOCOL_ERROR || !strings.Contains(ex.Error(), "size exceeded max allowed: 52428800") {
		t.Fatalf("got exception %d %q, want a size limit protocol error", ex.TypeId(), ex.Error())
	}
}

// TestStrictReadApplies checks the protocol refuses a message without a version.
func TestStrictReadApplies(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	payload := encode(t, false, prepareCall)
	conn := dialRaw(t, srv)
	if _, err := conn.Write(append(frame(payload), payload...)); err != nil {
		t.Fatal(err)
	}
	if got := expectClosed(t, conn); len(got) != 0 {
		t.Fatalf("server answered an unversioned message with %d bytes", len(got))
	}
	if !strings.Contains(srv.logs.String(), "Missing version") {
		t.Errorf("unversioned message not logged:\n%s", srv.logs)
	}

	// The same call, strict, is answered.
	payload = encode(t, true, prepareCall)
	conn = dialRaw(t, srv)
	if _, err := conn.Write(append(frame(payload), payload...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	var size [4]byte
	if _, err := conn.Read(size[:]); err != nil {
		t.Fatalf("strict call not answered: %v", err)
	}
}

// TestHandlerErrorKeepsConnection checks that a failed request is answered with
// an exception and the connection serves the next request.
func TestHandlerErrorKeepsConnection(t *testing.T) {
	step := func(ctx context.Context, req peer.Message) (peer.Message, error) {
		if req.Slot == 0 {
			return peer.Message{}, errors.New("not today")
		}
		return echoStep(ctx, req)
	}
	srv := startServer(t, step, ServerOptions{})
	conn := dialRaw(t, srv)
	p := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{SocketTimeout: waitLimit}), nil), nil)
	cl := peerapi.NewPeerClient(thrift.NewTStandardClient(p, p))
	ctx := ctxWithTimeout(t)
	ballot := &peerapi.Ballot{Round: 1, Replica: 1}
	_, err := cl.Prepare(ctx, &peerapi.PrepareRequest{Sender: 1, Ballot: ballot})
	var ae thrift.TApplicationException
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "not today") {
		t.Fatalf("got %v, want an application exception", err)
	}
	promise, err := cl.Prepare(ctx, &peerapi.PrepareRequest{Sender: 1, Ballot: ballot, FirstSlot: 4})
	if err != nil || promise.Chosen != 4 {
		t.Fatalf("second request on the connection: %+v, %v", promise, err)
	}
	if n := srv.ln.accepts.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{IdleTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute})
	// The server counts idle time from its accept, which may come before the
	// dial returns here; it cannot come before the dial starts.
	start := time.Now()
	conn := dialRaw(t, srv)
	expectClosed(t, conn)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	if !strings.Contains(srv.logs.String(), "idle connection closed") {
		t.Errorf("idle close not logged:\n%s", srv.logs)
	}
	if strings.Contains(srv.logs.String(), "WARN") {
		t.Errorf("idle close logged as a warning:\n%s", srv.logs)
	}
}

// TestIdleTimeoutBetweenRequests checks that the idle timeout is rearmed after
// each request.
func TestIdleTimeoutBetweenRequests(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{IdleTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute})
	payload := encode(t, true, prepareCall)
	conn := dialRaw(t, srv)
	if _, err := conn.Write(append(frame(payload), payload...)); err != nil {
		t.Fatal(err)
	}
	if got := expectClosed(t, conn); len(got) == 0 {
		t.Fatal("no reply before the idle close")
	}
}

// TestReadTimeoutMidRequest checks that a request which stops arriving halfway is
// cut off after ReadTimeout, not after the much longer IdleTimeout.
func TestReadTimeoutMidRequest(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{IdleTimeout: time.Minute, ReadTimeout: 100 * time.Millisecond})
	conn := dialRaw(t, srv)
	if _, err := conn.Write(append([]byte{0, 0, 0, 100}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	if !strings.Contains(srv.logs.String(), "request stalled") {
		t.Errorf("stall not logged:\n%s", srv.logs)
	}
}

// TestCloseEndsConnections checks that Close closes idle connections, cancels
// requests in progress, and waits for both.
func TestCloseEndsConnections(t *testing.T) {
	bs := newBlockingStep()
	srv := startServer(t, bs.step, ServerOptions{})
	idle := dialRaw(t, srv)
	c := newClient(t, srv, ClientOptions{})
	callErr := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare})
		callErr <- err
	}()
	<-bs.entered
	waitFor(t, "both connections to be served", func() bool { return srv.numConns() == 2 })
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if n := srv.numConns(); n != 0 {
		t.Fatalf("%d connections after close", n)
	}
	select {
	case err := <-bs.exited:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request in progress ended with %v, want Canceled", err)
		}
	default:
		t.Fatal("Close returned before the request in progress ended")
	}
	expectClosed(t, idle)
	if err := <-callErr; err == nil {
		t.Fatal("call cut off by Close succeeded")
	}
	if _, err := net.DialTimeout("tcp", srv.addr(), waitLimit); err == nil {
		t.Fatal("closed server still accepts")
	}
}

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(10 * time.Second)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{9 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{11 * time.Second, false, 0},
		{30 * time.Second, true, 1},
		{40 * time.Second, true, 0},
	}
	for _, s := range steps {
		ok, n := l.allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Errorf("at %v: got (%v, %d), want (%v, %d)", s.at, ok, n, s.ok, s.suppressed)
		}
	}
}
