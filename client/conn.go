package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/internal/wire"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// maxIdlePerEndpoint bounds the idle connections kept open to one endpoint.
const maxIdlePerEndpoint = 16

// maxFrameBytes is just above the largest legal message (a put of the largest key
// and value, or a get answering with the largest value), so a garbage length prefix
// cannot make the client allocate a large buffer.
const maxFrameBytes = kvapi.MAX_KEY_BYTES + kvapi.MAX_VALUE_BYTES + 64<<10

// conn is one open Thrift connection to an endpoint. It is used by one call at a
// time: a goroutine takes it from its pool, calls, and gives it back.
type conn struct {
	sock *thrift.TSocket
	// cfg belongs to this connection alone (socket, framed transport and protocol
	// share it), so call can set SocketTimeout without racing other connections.
	cfg *thrift.TConfiguration
	kv  *kvapi.KVClient
	// broken is set when the connection must not be reused: a transport or
	// protocol error, or a call cut short by its context, may leave it out of step.
	broken bool
}

func newConn(nc net.Conn, dialTimeout time.Duration) *conn {
	cfg := &thrift.TConfiguration{
		ConnectTimeout: dialTimeout,
		MaxFrameSize:   maxFrameBytes,
		MaxMessageSize: maxFrameBytes,
	}
	sock := thrift.NewTSocketFromConnConf(nc, cfg)
	trans := thrift.NewTFramedTransportConf(wire.NewCoalescer(sock), cfg)
	proto := thrift.NewTBinaryProtocolConf(trans, cfg)
	return &conn{
		sock: sock,
		cfg:  cfg,
		kv:   kvapi.NewKVClient(thrift.NewTStandardClient(proto, proto)),
	}
}

// call runs fn on the connection, bounded by ctx: the socket timeout is the time
// left before ctx's deadline, and the connection is closed if ctx ends first.
func (c *conn) call(ctx context.Context, fn func(context.Context, *kvapi.KVClient) error) error {
	if dl, ok := ctx.Deadline(); ok {
		c.cfg.SocketTimeout = max(time.Until(dl), time.Millisecond)
	}
	stop := context.AfterFunc(ctx, func() { c.sock.Close() })
	err := fn(ctx, c.kv)
	if !stop() {
		c.broken = true
	}
	if err != nil && !isIDLException(err) {
		c.broken = true
	}
	return err
}

// alive reports whether the peer still holds the connection open, without blocking.
func (c *conn) alive() bool {
	return c.sock.IsOpen()
}

func (c *conn) close() { c.sock.Close() }

// isIDLException reports whether err is an exception declared in the IDL, after
// which the connection is still in step and can be reused.
func isIDLException(err error) bool {
	switch err.(type) {
	case *kvapi.NotLeader, *kvapi.Unavailable, *kvapi.InvalidArgument, *kvapi.NotFound:
		return true
	}
	return false
}

// connPool keeps the idle connections to one endpoint.
type connPool struct {
	addr        string
	dialTimeout time.Duration
	tls         *tls.Config // for this endpoint's host; nil: plaintext

	mu sync.Mutex // guards idle and closed
	// idle holds open connections not in use, most recently returned last.
	idle   []*conn
	closed bool
}

func newConnPool(addr string, dialTimeout time.Duration, tlsConfig *tls.Config) *connPool {
	return &connPool{addr: addr, dialTimeout: dialTimeout, tls: tlsconfig.ForHost(tlsConfig, addr)}
}

// get returns an idle connection that is still open, or dials a new one.
func (p *connPool) get(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if c.alive() {
			return c, nil
		}
		c.close()
	}
	begin := time.Now()
	d := net.Dialer{Timeout: p.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithDeadline(ctx, begin.Add(p.dialTimeout))
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", p.addr, err)
		}
		return newConn(&tlsConn{Conn: tc, raw: nc}, p.dialTimeout), nil
	}
	return newConn(nc, p.dialTimeout), nil
}

// tlsConn is a TLS connection whose idle state Thrift's TSocket.IsOpen can
// check, as it does a plain socket's, by peeking at the socket under it. That
// is sound between calls: the response has been read in full, and the TLS 1.3
// session tickets a server sends after its handshake were read with the first
// one, so a byte waiting or the end of file (a replica closes its side without
// a close_notify alert) says what it would on a plain socket.
type tlsConn struct {
	*tls.Conn
	raw net.Conn
}

// Close closes the socket without a close_notify alert, whose write could
// wait on a replica that reads nothing.
func (c *tlsConn) Close() error { return c.raw.Close() }

func (c *tlsConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor", c.raw)
	}
	return sc.SyscallConn()
}

// put gives c back for reuse, or closes it when it is broken, the pool is closed
// or already holds enough idle connections.
func (p *connPool) put(c *conn) {
	if !c.broken {
		p.mu.Lock()
		if !p.closed && len(p.idle) < maxIdlePerEndpoint {
			p.idle = append(p.idle, c)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	c.close()
}

// close closes the idle connections; connections in use are closed when put back.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}
