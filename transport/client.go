package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/internal/wire"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// Defaults for ClientOptions.
const (
	DefaultConnectTimeout = 500 * time.Millisecond
	DefaultMaxIdle        = 4
	DefaultCallTimeout    = 5 * time.Second
)

// ClientOptions configures a PeerClient. A field that is zero or negative means
// its default.
type ClientOptions struct {
	// ConnectTimeout bounds each dial, TLS handshake included. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxIdle is how many connections the client keeps open between calls.
	// Default DefaultMaxIdle.
	MaxIdle int
	// MaxFrameSize is the largest reply frame, and the largest string, binary or
	// list a reply may announce. Default PeerMaxFrameSize.
	MaxFrameSize int32
	// CallTimeout bounds a Call whose context has no deadline. Default
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// Logger receives dial failures at debug level. Default: discard.
	Logger *slog.Logger
	// TLS, when set, makes every connection begin with a TLS handshake under a
	// copy of this configuration whose ServerName is the host of the address
	// dialled, unless it names one (tlsconfig.PeerClient). Nil: plaintext.
	TLS *tls.Config
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = DefaultMaxIdle
	}
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = PeerMaxFrameSize
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// PeerClient calls the Peer service of one replica. It is safe for concurrent use:
// each Call takes a connection of its own from a pool of idle ones, dialing when
// none is idle, and returns it afterwards unless the call failed.
type PeerClient struct {
	addr string
	opts ClientOptions
	log  *slog.Logger
	// cfg configures every connection's socket, framed transport and protocol; it
	// is never changed. Its SocketTimeout is zero: each call's deadline comes from
	// its context, through callConn.
	cfg *thrift.TConfiguration
	// tls is opts.TLS for this address, nil for plaintext.
	tls *tls.Config

	mu     sync.Mutex  // guards idle and closed
	idle   []*peerConn // most recently used last
	closed bool
}

// peerConn is one connection and the Thrift client on it, used by one call at a
// time.
type peerConn struct {
	conn   *callConn
	sock   *thrift.TSocket
	client *peerapi.PeerClient
	tls    bool // sock runs over TLS on conn
}

// NewPeerClient returns a client for the Peer service at addr. It dials lazily.
func NewPeerClient(addr string, opts ClientOptions) *PeerClient {
	opts = opts.withDefaults()
	strict := true
	return &PeerClient{
		addr: addr,
		opts: opts,
		tls:  tlsconfig.ForHost(opts.TLS, addr),
		log:  opts.Logger.With("peer_addr", addr),
		cfg: &thrift.TConfiguration{
			MaxFrameSize:       opts.MaxFrameSize,
			MaxMessageSize:     opts.MaxFrameSize,
			ConnectTimeout:     opts.ConnectTimeout,
			TBinaryStrictRead:  &strict,
			TBinaryStrictWrite: &strict,
		},
	}
}

// Call sends req, a MsgPrepare, MsgAccept or MsgExecute, and returns the reply:
// MsgPromise, MsgAccepted or MsgExecuted from the answering replica, with To set to
// req.From and Token to req.Token. The context's deadline (or CallTimeout when it
// has none) bounds the whole call, dial included, and cancelling the context
// aborts it.
//
// A call that finds its pooled connection closed by the server (after its idle
// timeout, say) is sent once more on a new connection. Peer requests may be
// repeated safely: an acceptor answers a repeated prepare, accept or execute as it
// answered the first.
func (c *PeerClient) Call(ctx context.Context, req peer.Message) (peer.Message, error) {
	if err := ctx.Err(); err != nil {
		return peer.Message{}, fmt.Errorf("%s to %s: %w", req.Type, c.addr, err)
	}
	send, err := c.prepareCall(req)
	if err != nil {
		return peer.Message{}, fmt.Errorf("%s to %s: %w", req.Type, c.addr, err)
	}
	var reply peer.Message
	err = c.roundTrip(ctx, func(ctx context.Context, cl *peerapi.PeerClient) error {
		var err error
		reply, err = send(ctx, cl)
		return err
	})
	if err != nil {
		return peer.Message{}, fmt.Errorf("%s to %s: %w", req.Type, c.addr, err)
	}
	reply.To = req.From
	reply.Token = req.Token
	return reply, nil
}

// FetchSnapshot asks the replica for at most maxBytes bytes of its snapshot
// index from offset on, on behalf of replica from. Index 0 (with offset 0) asks
// for the replica's latest snapshot; a replica that no longer holds index answers
// with its latest from offset 0, and one with none answers Index 0. maxBytes is
// capped at MaxSnapshotChunk, and below the client's MaxFrameSize.
//
// The answer is checked against the request: a checksum that is not 32 bytes, an
// offset other than the one asked for (or 0 for a new snapshot), more bytes than
// asked for or bytes beyond the file's size are ErrInvalidChunk. A negative
// offset, an offset other than 0 with index 0 or a maxBytes below 1 is
// ErrOutOfRange, and nothing is sent. Deadline and retry are as for Call: the
// request changes nothing, so it may be sent twice.
func (c *PeerClient) FetchSnapshot(ctx context.Context, from, index uint64, offset int64, maxBytes int) (SnapshotChunk, error) {
	fail := func(err error) (SnapshotChunk, error) {
		return SnapshotChunk{}, fmt.Errorf("fetch_snapshot %d at %d from %s: %w", index, offset, c.addr, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	req := snapshotRequest{from: from, index: index, offset: offset, maxBytes: maxBytes}
	if err := req.check(); err != nil {
		return fail(err)
	}
	req.maxBytes = min(req.maxBytes, MaxSnapshotChunk, int(c.opts.MaxFrameSize)-snapshotReplyOverhead)
	if req.maxBytes <= 0 {
		return fail(fmt.Errorf("MaxFrameSize %d leaves no room for snapshot data: %w", c.opts.MaxFrameSize, ErrOutOfRange))
	}
	r, err := snapshotRequestToThrift(req)
	if err != nil {
		return fail(err)
	}
	var ch SnapshotChunk
	err = c.roundTrip(ctx, func(ctx context.Context, cl *peerapi.PeerClient) error {
		reply, err := cl.FetchSnapshot(ctx, r)
		if err != nil {
			return err
		}
		ch, err = snapshotChunkFromThrift(reply)
		return err
	})
	if err == nil {
		err = checkChunk(req, ch)
	}
	if err != nil {
		return fail(err)
	}
	return ch, nil
}

// Inquire asks the replica, on behalf of replica from, what a replica starting
// without its acceptor state must know before it votes. Deadline and retry are as
// for Call: the request changes nothing.
func (c *PeerClient) Inquire(ctx context.Context, from uint64) (Inquiry, error) {
	var q Inquiry
	err := c.roundTrip(ctx, func(ctx context.Context, cl *peerapi.PeerClient) error {
		reply, err := cl.Inquire(ctx, &peerapi.InquiryRequest{Sender: int64(from)})
		if err != nil {
			return err
		}
		q, err = InquiryFromThrift(reply)
		return err
	})
	if err != nil {
		return Inquiry{}, fmt.Errorf("inquire at %s: %w", c.addr, err)
	}
	return q, nil
}

// roundTrip runs fn once on a pooled or new connection, under ctx's deadline or
// CallTimeout if ctx has none. A pooled connection that turns out closed by the
// server is replaced and fn run once more.
func (c *PeerClient) roundTrip(ctx context.Context, fn callFunc) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CallTimeout)
		defer cancel()
	}
	for {
		pc, reused, err := c.get(ctx)
		if err != nil {
			return err
		}
		err = c.send(ctx, pc, fn)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("%w (%w)", ctxErr, err)
			}
			if reused && isHangUp(err) {
				continue // the next get finds no pooled connection or another one
			}
			return err
		}
		return nil
	}
}

// callFunc performs one request on a Thrift client.
type callFunc func(ctx context.Context, cl *peerapi.PeerClient) error

// send runs one call on pc under ctx's deadline, and returns pc to the pool if it
// is still fit for use.
func (c *PeerClient) send(ctx context.Context, pc *peerConn, fn callFunc) error {
	deadline, _ := ctx.Deadline()
	pc.conn.setLimit(deadline)
	stop := context.AfterFunc(ctx, pc.conn.expire)
	err := fn(ctx, pc.client)
	interrupted := !stop()
	switch {
	case err != nil:
		pc.close()
	case interrupted:
		// The context ended as the reply arrived, and expire may still be
		// running: the reply is good, the connection's deadline is not.
		pc.close()
	default:
		pc.conn.setLimit(time.Time{})
		c.put(pc)
	}
	return err
}

// sendFunc performs one converted request on a Thrift client.
type sendFunc func(ctx context.Context, cl *peerapi.PeerClient) (peer.Message, error)

// prepareCall converts req before any connection is taken, so that a request the
// wire cannot carry costs no connection.
func (c *PeerClient) prepareCall(req peer.Message) (sendFunc, error) {
	switch req.Type {
	case peer.MsgPrepare:
		r, err := PrepareToThrift(req)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, cl *peerapi.PeerClient) (peer.Message, error) {
			p, err := cl.Prepare(ctx, r)
			if err != nil {
				return peer.Message{}, err
			}
			return PromiseFromThrift(p)
		}, nil
	case peer.MsgAccept:
		r, err := AcceptToThrift(req)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, cl *peerapi.PeerClient) (peer.Message, error) {
			a, err := cl.Accept(ctx, r)
			if err != nil {
				return peer.Message{}, err
			}
			return AcceptedFromThrift(a)
		}, nil
	case peer.MsgExecute:
		r, err := ExecuteToThrift(req)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, cl *peerapi.PeerClient) (peer.Message, error) {
			e, err := cl.Execute(ctx, r)
			if err != nil {
				return peer.Message{}, err
			}
			return ExecutedFromThrift(e)
		}, nil
	}
	return nil, fmt.Errorf("not a request: %w", ErrUnsupported)
}

// get takes an idle connection that is still open (reused is then true), or
// dials a new one.
func (c *PeerClient) get(ctx context.Context) (pc *peerConn, reused bool, err error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, false, ErrClosed
		}
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		pc = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		// No liveness probe here (it would cost a system call per call): a
		// connection the server closed fails at once, and Call retries it once
		// on a fresh connection.
		return pc, true, nil
	}
	pc, err = c.dial(ctx)
	return pc, false, err
}

func (c *PeerClient) dial(ctx context.Context) (*peerConn, error) {
	begin := time.Now()
	d := net.Dialer{Timeout: c.opts.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		c.log.Debug("dial failed", "err", err)
		return nil, fmt.Errorf("dial: %w", err)
	}
	cc := &callConn{Conn: conn}
	var nc net.Conn = cc
	if c.tls != nil {
		// Over callConn, so that a call's deadline and cancellation reach the
		// socket under the TLS layer.
		tc := tls.Client(cc, c.tls)
		hctx, cancel := context.WithDeadline(ctx, begin.Add(c.opts.ConnectTimeout))
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			c.log.Debug("TLS handshake failed", "err", err)
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	sock := thrift.NewTSocketFromConnConf(nc, c.cfg)
	prot := newFramedBinary(wire.NewCoalescer(sock), c.cfg)
	return &peerConn{
		conn:   cc,
		sock:   sock,
		client: peerapi.NewPeerClient(thrift.NewTStandardClient(prot, prot)),
		tls:    c.tls != nil,
	}, nil
}

// put returns a healthy connection to the pool, or closes it if the pool is full
// or the client closed.
func (c *PeerClient) put(pc *peerConn) {
	c.mu.Lock()
	if c.closed || len(c.idle) >= c.opts.MaxIdle {
		c.mu.Unlock()
		pc.close()
		return
	}
	c.idle = append(c.idle, pc)
	c.mu.Unlock()
}

// numIdle is the number of pooled connections.
func (c *PeerClient) numIdle() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// Close closes the idle connections; calls in progress close theirs when they
// finish, and later calls fail with ErrClosed.
func (c *PeerClient) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.closed = true
	c.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
	return nil
}

func (pc *peerConn) close() {
	// The connection is being discarded; a close error changes nothing. Under
	// TLS the socket is closed without a close_notify alert, whose write could
	// wait for a peer that reads nothing.
	if pc.tls {
		_ = pc.conn.Close()
		return
	}
	_ = pc.sock.Close()
}

// callConn caps every deadline the socket sets at the current call's deadline.
// TSocket sets a read or write deadline before each read and write (none, since
// the client's SocketTimeout is zero); callConn turns that into the call's.
type callConn struct {
	net.Conn

	// mu guards limit and makes each deadline change atomic with the limit it
	// used, so that expire, run by context.AfterFunc on another goroutine, is never
	// overwritten by a deadline computed from the old limit.
	mu    sync.Mutex
	limit time.Time // the current call's deadline; zero: none
}

func (c *callConn) capped(t time.Time) time.Time {
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

// setLimit makes t the deadline of everything until the next setLimit.
func (c *callConn) setLimit(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = t
	_ = c.Conn.SetDeadline(t) // fails only on a closed connection, which the call will report
}

// expire fails the read or write in progress and every later one.
func (c *callConn) expire() { c.setLimit(time.Unix(1, 0)) }

func (c *callConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.capped(t))
}

func (c *callConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.capped(t))
}

func (c *callConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.capped(t))
}

// SyscallConn exposes the descriptor so that TSocket.IsOpen can peek at it.
func (c *callConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor", c.Conn)
	}
	return sc.SyscallConn()
}
