package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/internal/wire"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Defaults for ServerOptions and ClientOptions.
const (
	// DefaultMaxFrameSize is just above the largest legal client request: a put of
	// a kvapi.MAX_VALUE_BYTES value under a kvapi.MAX_KEY_BYTES key, plus 4 KiB for
	// the message header and the other fields.
	DefaultMaxFrameSize = kvapi.MAX_VALUE_BYTES + kvapi.MAX_KEY_BYTES + 4<<10
	// PeerMaxFrameSize is a frame limit for the peer port, whose messages carry
	// batches of log entries; it is the default for PeerClient.
	PeerMaxFrameSize = 64 << 20
	// DefaultReadTimeout bounds each read and write on a connection once a request
	// has started to arrive.
	DefaultReadTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a connection may wait for its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns is the default number of connections a Server holds open.
	DefaultMaxConns = 1024
)

// ServerOptions configures a Server. The zero value of each field means its
// default; a negative value is an error.
type ServerOptions struct {
	// MaxFrameSize is the largest request frame, in bytes, and also the largest
	// string, binary or list a request may announce. A larger length prefix closes
	// the connection before anything is allocated for it. Default
	// DefaultMaxFrameSize (client port); the peer port passes its own, such as
	// PeerMaxFrameSize.
	MaxFrameSize int32
	// ReadTimeout bounds the whole request from its first byte to its last, and
	// each write of the reply. It is one deadline for the request, not one per
	// read: a client that drips a byte a second cannot hold its connection for
	// longer than this. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout is how long a connection may wait for the first byte of its next
	// request before the server closes it. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns limits the connections open at once on this port. A connection
	// accepted while MaxConns are open takes the place of the one that has waited
	// longest for its next request, which is closed; only when every connection
	// is in the middle of a request is the new one closed instead. Default
	// DefaultMaxConns.
	//
	// Evicting rather than refusing is what keeps the port open to a legitimate
	// client when someone holds hundreds of connections that send nothing: an
	// idle connection costs the server nothing to drop (no request is cut, and
	// Ballot's clients reconnect to a closed pooled connection), as nginx reuses
	// keep-alive connections when it runs out. The connections that cannot be
	// dropped, those mid-request, are bounded in time by ReadTimeout instead.
	MaxConns int
	// Logger receives connection trouble, rate-limited. Default: discard.
	Logger *slog.Logger
	// TLS, when set, makes every connection begin with a TLS handshake under
	// this configuration (tlsconfig.PeerServer, tlsconfig.ClientPortServer),
	// bounded as a request is (see startTLS). Nil: plaintext.
	TLS *tls.Config
}

// Validate reports the first invalid field.
func (o ServerOptions) Validate() error {
	switch {
	case o.MaxFrameSize < 0:
		return fmt.Errorf("server options: MaxFrameSize %d is negative", o.MaxFrameSize)
	case o.ReadTimeout < 0:
		return fmt.Errorf("server options: ReadTimeout %v is negative", o.ReadTimeout)
	case o.IdleTimeout < 0:
		return fmt.Errorf("server options: IdleTimeout %v is negative", o.IdleTimeout)
	case o.MaxConns < 0:
		return fmt.Errorf("server options: MaxConns %d is negative", o.MaxConns)
	}
	return nil
}

// withDefaults replaces zero fields with their defaults.
func (o ServerOptions) withDefaults() ServerOptions {
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server serves one Thrift service (framed transport, strict binary protocol) on
// one TCP address, with one goroutine per connection.
type Server struct {
	ln   net.Listener
	proc thrift.TProcessor
	opts ServerOptions
	log  *slog.Logger
	// cfg is the configuration every connection starts from. It is never changed:
	// each connection works on its own copy, whose SocketTimeout it switches.
	cfg thrift.TConfiguration

	// ctx is the parent of every request's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed by Close, ending the accept loop's back-off waits.
	done chan struct{}

	refusedLog *logLimiter // connections over MaxConns closed on arrival
	evictedLog *logLimiter // idle connections closed to admit new ones
	badLog     *logLimiter // malformed or stalled requests
	panicLog   *logLimiter // handler panics

	// epoch is when the server was made; idle stamps count from it on the
	// monotonic clock.
	epoch time.Time

	mu      sync.Mutex              // guards conns, closed and serving
	conns   map[net.Conn]*connState // open connections, closed by Close
	closed  bool                    // Close was called
	serving bool                    // Serve was called
	wg      sync.WaitGroup          // the accept loop and the connection goroutines
}

// Values of connState.idleSince other than idle stamps.
const (
	connBusy    int64 = 0  // a request is being read, handled or answered
	connEvicted int64 = -1 // chosen to make room for a new connection; closing
)

// connState is what the accept loop knows of a served connection, to choose one
// to evict when the server is full.
type connState struct {
	conn   net.Conn
	remote string
	// idleSince is when the connection began waiting for its next request (a
	// stamp from Server.stamp, always positive), connBusy while a request is in
	// progress, or connEvicted. The connection's goroutine and the accept loop
	// change it only by compare-and-swap from the value they last saw, so a
	// connection is evicted only if no byte of a new request has been taken
	// from it: a request is never cut off halfway, and a request whose first
	// byte loses the race is never processed. (The framed transport's buffer
	// could take the start of a request from the socket together with the end
	// of the last one, and the connection would count as idle while it is
	// handled; that needs a client which sends before it has its reply, and no
	// Thrift client does.)
	idleSince atomic.Int64
}

// Errors that end a connection.
var (
	// errHandlerPanic marks a request whose handler panicked.
	errHandlerPanic = errors.New("handler panicked")
	// errEvicted: the connection was closed to make room for a new one.
	errEvicted = errors.New("connection evicted to admit a new one")
)

// Listen binds addr now, so that a busy address fails here and names itself, and
// returns a Server that serves processor once Serve is called.
func Listen(addr string, processor thrift.TProcessor, opts ServerOptions) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return newServer(ln, processor, opts), nil
}

// newServer serves on an existing listener, which it owns from now on.
func newServer(ln net.Listener, processor thrift.TProcessor, opts ServerOptions) *Server {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	strict := true
	return &Server{
		ln:   ln,
		proc: processor,
		opts: opts,
		log:  opts.Logger.With("addr", ln.Addr().String()),
		cfg: thrift.TConfiguration{
			MaxFrameSize:       opts.MaxFrameSize,
			MaxMessageSize:     opts.MaxFrameSize,
			SocketTimeout:      opts.IdleTimeout,
			TBinaryStrictRead:  &strict,
			TBinaryStrictWrite: &strict,
		},
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		refusedLog: newLogLimiter(logEvery),
		evictedLog: newLogLimiter(logEvery),
		badLog:     newLogLimiter(logEvery),
		panicLog:   newLogLimiter(logEvery),
		epoch:      time.Now(),
		conns:      make(map[net.Conn]*connState),
	}
}

// Addr is the address the server listens on (with the port the system chose, if
// the address asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close and returns nil after Close. It returns
// an error if it is called twice.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.serving {
		s.mu.Unlock()
		return fmt.Errorf("serve %s: already serving", s.Addr())
	}
	s.serving = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	const maxBackoff = time.Second
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			// Out of descriptors or a similar condition: wait, as net/http does,
			// instead of spinning, and keep serving the open connections.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxBackoff)
			if ok, n := s.badLog.allow(time.Now()); ok {
				s.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff, "suppressed", n)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		s.admit(conn)
	}
}

// stamp is the time since the server was made, on the monotonic clock, as a
// positive idle stamp for connState.idleSince.
func (s *Server) stamp() int64 { return int64(time.Since(s.epoch)) + 1 }

// admit starts serving conn. If the server is full it first closes the
// connection that has waited longest for its next request; if every connection
// is in the middle of one, it closes conn instead. If the server is closed it
// closes conn.
func (s *Server) admit(conn net.Conn) {
	st := &connState{conn: conn, remote: conn.RemoteAddr().String()}
	st.idleSince.Store(s.stamp())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if len(s.conns) >= s.opts.MaxConns {
		victim, idleFor := s.evictLocked()
		if victim == nil {
			s.mu.Unlock()
			conn.Close()
			if ok, n := s.refusedLog.allow(time.Now()); ok {
				s.log.Warn("connection limit reached and every connection is busy; closing new connections",
					"limit", s.opts.MaxConns, "refused", n+1, "remote", st.remote)
			}
			return
		}
		if ok, n := s.evictedLog.allow(time.Now()); ok {
			s.log.Warn("connection limit reached; closing the connection idle longest to admit a new one",
				"limit", s.opts.MaxConns, "evicted", n+1, "evicted_remote", victim.remote,
				"idle_for", idleFor.Round(time.Millisecond), "remote", st.remote)
		}
	}
	s.conns[conn] = st
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveConn(st)
}

// evictLocked closes the connection that has waited longest for its next
// request and forgets it, so that its place is free at once (its goroutine
// finishes on its own). It returns nil if every connection is busy. s.mu must be
// held.
func (s *Server) evictLocked() (victim *connState, idleFor time.Duration) {
	// A connection may start a request between the scan and the swap; then
	// look again, a bounded number of times.
	for range 3 {
		var oldest *connState
		var since int64
		for _, c := range s.conns {
			if v := c.idleSince.Load(); v > 0 && (oldest == nil || v < since) {
				oldest, since = c, v
			}
		}
		if oldest == nil {
			return nil, 0
		}
		if oldest.idleSince.CompareAndSwap(since, connEvicted) {
			delete(s.conns, oldest.conn)
			oldest.conn.Close()
			return oldest, time.Duration(s.stamp() - since)
		}
	}
	return nil, 0
}

// Close stops accepting, closes every open connection, cancels the requests in
// progress and returns once every connection goroutine has finished.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	s.cancel()
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close listener %s: %w", s.Addr(), err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// numConns is the number of connections being served.
func (s *Server) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// serveConn runs requests on conn, one after another, until the peer closes it, a
// timeout or a malformed request ends it, or the server closes.
func (s *Server) serveConn(st *connState) {
	conn := st.conn
	defer s.wg.Done()
	defer func() {
		conn.Close()
		s.mu.Lock()
		if s.conns[conn] == st {
			delete(s.conns, conn)
		}
		s.mu.Unlock()
	}()
	served, ok := s.startTLS(conn, st.remote)
	if !ok {
		return
	}

	// All three layers share this connection's copy of the configuration: the
	// socket takes its timeouts from it, the framed transport MaxFrameSize, the
	// protocol MaxMessageSize and strictness.
	cfg := s.cfg
	sock := &phasedSocket{
		sock:   thrift.NewTSocketFromConnConf(served, &cfg),
		cfg:    &cfg,
		state:  st,
		stamp:  s.stamp,
		last:   st.idleSince.Load(),
		idle:   s.opts.IdleTimeout,
		active: s.opts.ReadTimeout,
	}
	prot := newFramedBinary(wire.NewCoalescer(sock), &cfg)
	remote := st.remote
	for {
		if !sock.awaitRequest() {
			s.ended(remote, errEvicted, false)
			return
		}
		ok, err := s.process(prot, remote)
		switch {
		case ok && err == nil:
			continue
		case ok:
			// The handler failed; the client has its error and the stream is intact.
			s.log.Debug("request failed", "remote", remote, "err", err)
			continue
		}
		s.ended(remote, err, sock.started())
		return
	}
}

// process runs one request, turning a handler panic into an error so that only
// this connection ends.
func (s *Server) process(prot thrift.TProtocol, remote string) (ok bool, err thrift.TException) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			if allow, n := s.panicLog.allow(time.Now()); allow {
				s.log.Error("request handler panicked; closing its connection",
					"remote", remote, "panic", fmt.Sprint(r), "stack", string(stack), "suppressed", n)
			}
			ok, err = false, thrift.WrapTException(fmt.Errorf("%w: %v", errHandlerPanic, r))
		}
	}()
	return s.proc.Process(s.ctx, prot, prot)
}

// ended logs why a connection is being closed: quietly when the peer hung up or
// sat idle, rate-limited when it sent something malformed or stalled mid-request.
func (s *Server) ended(remote string, err error, midRequest bool) {
	switch {
	case s.isClosed(), errors.Is(err, errHandlerPanic):
		// Closing, or already logged.
	case errors.Is(err, errEvicted) || errors.Is(err, net.ErrClosed):
		// Only the server closes its side: this connection was evicted, and
		// that is logged (rate-limited) where it was chosen.
		s.log.Debug("connection evicted", "remote", remote)
	case errors.Is(err, thrift.ErrAbandonRequest):
		s.log.Debug("request abandoned; closing connection", "remote", remote)
	case errors.Is(err, os.ErrDeadlineExceeded) && midRequest:
		if ok, n := s.badLog.allow(time.Now()); ok {
			s.log.Warn("request stalled; closing connection",
				"remote", remote, "read_timeout", s.opts.ReadTimeout, "suppressed", n)
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("idle connection closed", "remote", remote, "idle_timeout", s.opts.IdleTimeout)
	case isHangUp(err):
		s.log.Debug("connection closed by peer", "remote", remote)
	default:
		if ok, n := s.badLog.allow(time.Now()); ok {
			s.log.Warn("malformed request; closing connection", "remote", remote, "err", err, "suppressed", n)
		}
	}
}

// isHangUp reports whether err means the other side closed or reset the
// connection.
func isHangUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// phasedSocket gives a server connection its timeouts through the socket's
// TConfiguration, which TSocket reads before every read and write: IdleTimeout
// while waiting for the first byte of a request; from that byte, whatever is
// left of ReadTimeout for every read of the request, so the whole request must
// arrive within ReadTimeout; and ReadTimeout for each write of the reply. It also
// marks the connection idle or busy in its connState, for eviction. Only the
// connection's goroutine uses it.
type phasedSocket struct {
	sock     *thrift.TSocket
	cfg      *thrift.TConfiguration // the connection's own copy, shared with sock
	state    *connState
	stamp    func() int64 // the server's idle stamps
	last     int64        // the value this goroutine last stored in state.idleSince
	idle     time.Duration
	active   time.Duration
	waiting  bool      // no byte of the current request has arrived yet
	deadline time.Time // when the current request must have arrived in full
}

var _ thrift.TTransport = (*phasedSocket)(nil)

// awaitRequest switches to the idle timeout and marks the connection idle until
// the next request begins. It returns false if the connection was evicted.
func (p *phasedSocket) awaitRequest() bool {
	if p.last == connBusy {
		// After a request. Nothing else changes a busy connection's state.
		p.last = p.stamp()
		p.state.idleSince.Store(p.last)
	} else if p.state.idleSince.Load() == connEvicted {
		// A new connection, idle since it was accepted, already evicted.
		return false
	}
	p.waiting = true
	p.cfg.SocketTimeout = p.idle
	return true
}

// started reports whether part of a request has arrived since awaitRequest.
func (p *phasedSocket) started() bool { return !p.waiting }

func (p *phasedSocket) Read(b []byte) (int, error) {
	if !p.waiting {
		left := time.Until(p.deadline)
		if left <= 0 {
			return 0, thrift.NewTTransportExceptionFromError(os.ErrDeadlineExceeded)
		}
		p.cfg.SocketTimeout = left
	}
	n, err := p.sock.Read(b)
	if n > 0 && p.waiting {
		// The first byte of a request: from now on the connection may not be
		// evicted, unless the accept loop chose it first, in which case the
		// request is dropped unread.
		if !p.state.idleSince.CompareAndSwap(p.last, connBusy) {
			return 0, thrift.NewTTransportExceptionFromError(errEvicted)
		}
		p.last = connBusy
		p.waiting = false
		p.deadline = time.Now().Add(p.active)
	}
	return n, err
}

func (p *phasedSocket) Write(b []byte) (int, error) {
	p.cfg.SocketTimeout = p.active
	return p.sock.Write(b)
}
func (p *phasedSocket) Flush(ctx context.Context) error { return p.sock.Flush(ctx) }
func (p *phasedSocket) RemainingBytes() uint64          { return p.sock.RemainingBytes() }
func (p *phasedSocket) Open() error                     { return p.sock.Open() }
func (p *phasedSocket) IsOpen() bool                    { return p.sock.IsOpen() }
func (p *phasedSocket) Close() error                    { return p.sock.Close() }
