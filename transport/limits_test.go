package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// expectOpen fails the test if the server has closed c: a read must wait out a
// short deadline instead of ending.
func expectOpen(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	n, err := c.Read(b[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection from %s: read %d bytes, %v; want it open and silent", c.LocalAddr(), n, err)
	}
}

// connStates counts the served connections that are idle and busy.
func (s *Server) connStates() (idle, busy int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		switch v := c.idleSince.Load(); {
		case v > 0:
			idle++
		case v == connBusy:
			busy++
		}
	}
	return idle, busy
}

// TestMaxConnsEvictsLongestIdle fills the server with connections that send
// nothing: each new connection takes the place of the one idle longest, and a
// client that uses its connection keeps it.
func TestMaxConnsEvictsLongestIdle(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{MaxConns: 3})
	a := dialRaw(t, srv)
	waitFor(t, "the first connection to be served", func() bool { return srv.numConns() == 1 })
	b := dialRaw(t, srv)
	waitFor(t, "the second connection to be served", func() bool { return srv.numConns() == 2 })
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)

	d := dialRaw(t, srv) // a has been idle longest
	expectClosed(t, a)
	expectOpen(t, b)
	mustCall(t, c, 2) // on its pooled connection, which was used last
	if n := srv.ln.accepts.Load(); n != 4 {
		t.Fatalf("%d connections accepted, want 4: the client's pooled connection was evicted", n)
	}
	dialRaw(t, srv) // now b
	expectClosed(t, b)
	expectOpen(t, d)
	mustCall(t, c, 3)
	if n := srv.numConns(); n != 3 {
		t.Fatalf("%d connections served, want the limit, 3", n)
	}
	if n := srv.logs.count("closing the connection idle longest"); n != 1 {
		t.Errorf("%d log lines for 2 evictions, want 1:\n%s", n, srv.logs)
	}
	if n := srv.logs.count("connection limit"); n != 1 {
		t.Errorf("%d connection limit lines, want 1:\n%s", n, srv.logs)
	}
}

// TestMaxConnsRefusesWhenAllBusy fills the server with requests in progress (one
// in its handler, one half sent): new connections are closed, and neither
// request is cut off.
func TestMaxConnsRefusesWhenAllBusy(t *testing.T) {
	bs := newBlockingStep()
	srv := startServer(t, bs.step, ServerOptions{MaxConns: 2, ReadTimeout: time.Minute})
	c := newClient(t, srv, ClientOptions{})
	callErr := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare, From: 1, Ballot: peer.Ballot{Round: 1, ID: 1}})
		callErr <- err
	}()
	<-bs.entered
	payload := encode(t, true, prepareCall)
	request := append(frame(payload), payload...)
	half := dialRaw(t, srv)
	if _, err := half.Write(request[:len(request)/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both connections to be busy", func() bool { _, busy := srv.connStates(); return busy == 2 })

	for range 5 {
		expectClosed(t, dialRaw(t, srv))
	}
	if n := srv.logs.count("every connection is busy"); n != 1 {
		t.Errorf("%d log lines for 5 refused connections, want 1:\n%s", n, srv.logs)
	}

	close(bs.release)
	if err := <-callErr; err != nil {
		t.Fatalf("the request in its handler: %v", err)
	}
	if _, err := half.Write(request[len(request)/2:]); err != nil {
		t.Fatal(err)
	}
	half.SetReadDeadline(time.Now().Add(waitLimit))
	var size [4]byte
	if _, err := half.Read(size[:]); err != nil {
		t.Fatalf("the half-sent request was not answered once complete: %v", err)
	}
}

// TestReadTimeoutBoundsWholeRequest drips a request a byte at a time, each byte
// well within ReadTimeout of the last: the request as a whole must still be cut
// off at ReadTimeout.
func TestReadTimeoutBoundsWholeRequest(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	srv := startServer(t, echoStep, ServerOptions{IdleTimeout: time.Minute, ReadTimeout: readTimeout})
	conn := dialRaw(t, srv)
	start := time.Now()
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		// 200 bytes at one per 50 ms would take 10 s.
		drip := append([]byte{0, 0, 0, 196}, make([]byte, 196)...)
		for _, b := range drip {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // the attacker's pace, not synchronisation
		}
	}()
	expectClosed(t, conn)
	took := time.Since(start)
	conn.Close()
	<-dripped
	if took < readTimeout || took > readTimeout+time.Second {
		t.Fatalf("a dripped request was closed after %v, want about the read timeout %v", took, readTimeout)
	}
	if !strings.Contains(srv.logs.String(), "request stalled") {
		t.Errorf("stall not logged:\n%s", srv.logs)
	}
}

// stubKV answers put; the other methods are never called.
type stubKV struct{ kvapi.KV }

func (stubKV) Put(context.Context, int64, int64, string, []byte) (*kvapi.WriteResult_, error) {
	return &kvapi.WriteResult_{Slot: 1}, nil
}

// callBytes is one framed call of method whose arguments body writes (without
// their closing stop field, so they can end halfway).
func callBytes(t testing.TB, method string, body func(ctx context.Context, p thrift.TProtocol) error) []byte {
	t.Helper()
	payload := encode(t, true, func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteMessageBegin(ctx, method, thrift.CALL, 1); err != nil {
			return err
		}
		if err := p.WriteStructBegin(ctx, "args"); err != nil {
			return err
		}
		return body(ctx, p)
	})
	return append(frame(payload), payload...)
}

// lengthField writes field id of type typ whose length prefix announces n, then
// a few bytes where n should follow.
func lengthField(id int16, n int32) func(ctx context.Context, p thrift.TProtocol) error {
	return func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteFieldBegin(ctx, "f", thrift.STRING, id); err != nil {
			return err
		}
		if err := p.WriteI32(ctx, n); err != nil {
			return err
		}
		_, err := p.Transport().Write([]byte("short"))
		return err
	}
}

// listField writes list field id of structs announcing n elements, and none.
func listField(id int16, n int) func(ctx context.Context, p thrift.TProtocol) error {
	return func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteFieldBegin(ctx, "f", thrift.LIST, id); err != nil {
			return err
		}
		return p.WriteListBegin(ctx, thrift.STRUCT, n)
	}
}

// inStruct wraps inner in struct field id, as the peer calls' single request
// argument is.
func inStruct(id int16, inner func(ctx context.Context, p thrift.TProtocol) error) func(ctx context.Context, p thrift.TProtocol) error {
	return func(ctx context.Context, p thrift.TProtocol) error {
		if err := p.WriteFieldBegin(ctx, "req", thrift.STRUCT, id); err != nil {
			return err
		}
		return inner(ctx, p)
	}
}

// frameHeader is a length prefix announcing n bytes.
func frameHeader(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// TestOversizedAnnouncementsAllocateNothing sends, to a real client and a real
// peer processor, frames and fields whose length prefixes announce far more than
// the limits or than the frame holds, each followed (for frames) by 4 MiB that a
// server trusting the prefix would buffer. Each connection must be closed and
// cost the server less than 1 MiB of allocation in all.
func TestOversizedAnnouncementsAllocateNothing(t *testing.T) {
	const budget = 1 << 20
	junk := make([]byte, 4<<20)
	type attack struct {
		name string
		data []byte
		junk bool   // follow with junk, as a body the prefix announced
		want string // in the exception the server answers with; "" for none
	}
	for _, port := range []struct {
		name    string
		proc    thrift.TProcessor
		limit   int32
		attacks []attack
	}{
		{
			name:  "client",
			proc:  kvapi.NewKVProcessor(stubKV{}),
			limit: DefaultMaxFrameSize,
			attacks: []attack{
				{"frame of 2 GiB", frameHeader(1 << 31), true, ""},
				{"frame of 2 GiB - 1", frameHeader(1<<31 - 1), true, ""},
				{"frame one byte over the limit", frameHeader(DefaultMaxFrameSize + 1), true, ""},
				{"key of 2 GiB in a small frame", callBytes(t, "put", lengthField(3, 1<<31-1)), false, "size exceeded max allowed"},
				{"value of 2 GiB in a small frame", callBytes(t, "put", lengthField(4, 1<<31-1)), false, "size exceeded max allowed"},
				{"key of 1 MiB in a small frame", callBytes(t, "put", lengthField(3, 1<<20)), false, "overruns its frame"},
				{"list of 2^31-1 members", callBytes(t, "reconfigure", listField(1, 1<<31-1)), false, "size exceeded max allowed"},
				{"list of a million members", callBytes(t, "reconfigure", listField(1, 1<<20)), false, "overruns its frame"},
			},
		},
		{
			name:  "peer",
			proc:  peerapi.NewPeerProcessor(NewPeerHandler(echoStep, nil, 0)),
			limit: PeerMaxFrameSize,
			attacks: []attack{
				{"frame of 2 GiB", frameHeader(1 << 31), true, ""},
				{"frame one byte over the limit", frameHeader(PeerMaxFrameSize + 1), true, ""},
				{"string of 2 GiB in a small frame", callBytes(t, "accept", inStruct(1, lengthField(7, 1<<31-1))), false, "size exceeded max allowed"},
				{"list of 60 million entries", callBytes(t, "accept", inStruct(1, listField(3, 60<<20))), false, "overruns its frame"},
				{"list of 2^31-1 entries", callBytes(t, "accept", inStruct(1, listField(3, 1<<31-1))), false, "size exceeded max allowed"},
			},
		},
	} {
		t.Run(port.name, func(t *testing.T) {
			srv := startProcessor(t, port.proc, ServerOptions{MaxFrameSize: port.limit})
			for _, a := range port.attacks {
				t.Run(a.name, func(t *testing.T) {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					conn := dialRaw(t, srv)
					conn.SetWriteDeadline(time.Now().Add(waitLimit))
					// The server may close before reading it all.
					if _, err := conn.Write(a.data); err == nil && a.junk {
						for off := 0; off < len(junk); off += 64 << 10 {
							if _, err := conn.Write(junk[off : off+64<<10]); err != nil {
								break
							}
						}
					}
					reply := expectClosed(t, conn)
					waitFor(t, "the server to let the connection go", func() bool { return srv.numConns() == 0 })
					runtime.ReadMemStats(&after)
					if d := after.TotalAlloc - before.TotalAlloc; d > budget {
						t.Errorf("cost %d KiB of allocation, want under %d KiB", d>>10, budget>>10)
					}
					if a.want == "" {
						if len(reply) != 0 {
							t.Errorf("answered with %d bytes, want none", len(reply))
						}
						return
					}
					if ex := readException(t, reply); !strings.Contains(ex.Error(), a.want) {
						t.Errorf("answered %q, want an exception with %q", ex.Error(), a.want)
					}
				})
			}
			// Still serving.
			switch port.name {
			case "client":
				conn := dialRaw(t, srv)
				cfg := &thrift.TConfiguration{SocketTimeout: waitLimit}
				p := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, cfg), cfg), cfg)
				if _, err := kvapi.NewKVClient(thrift.NewTStandardClient(p, p)).Put(ctxWithTimeout(t), 1, 1, "k", []byte("v")); err != nil {
					t.Fatalf("put after the attacks: %v", err)
				}
			case "peer":
				mustCall(t, newClient(t, srv, ClientOptions{}), 1)
			}
			// The first attack is logged; the rest, within ten seconds, are counted.
			if !strings.Contains(srv.logs.String(), "Incorrect frame size (2147483648)") {
				t.Errorf("the first oversized frame is not logged:\n%s", srv.logs)
			}
		})
	}
}
