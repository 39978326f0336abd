package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
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
	// ReadTimeout bounds each read once a request has started to arrive, and each
	// write of the reply. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout is how long a connection may wait for the first byte of its next
	// request before the server closes it. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns limits the connections open at once on this port. Connections over
	// the limit are closed as they are accepted. Default DefaultMaxConns.
	MaxConns int
	// Logger receives connection trouble, rate-limited. Default: discard.
	Logger *slog.Logger
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

	refusedLog *logLimiter // connections over MaxConns
	badLog     *logLimiter // malformed or stalled requests
	panicLog   *logLimiter // handler panics

	mu      sync.Mutex            // guards conns, closed and serving
	conns   map[net.Conn]struct{} // open connections, closed by Close
	closed  bool                  // Close was called
	serving bool                  // Serve was called
	wg      sync.WaitGroup        // the accept loop and the connection goroutines
}

// errHandlerPanic marks a request whose handler panicked.
var errHandlerPanic = errors.New("handler panicked")

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
		badLog:     newLogLimiter(logEvery),
		panicLog:   newLogLimiter(logEvery),
		conns:      make(map[net.Conn]struct{}),
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

// admit starts serving conn, or closes it if the server is closed or full.
func (s *Server) admit(conn net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if len(s.conns) >= s.opts.MaxConns {
		s.mu.Unlock()
		remote := conn.RemoteAddr().String()
		conn.Close()
		if ok, n := s.refusedLog.allow(time.Now()); ok {
			s.log.Warn("connection limit reached; closing new connections",
				"limit", s.opts.MaxConns, "refused", n+1, "remote", remote)
		}
		return
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveConn(conn)
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
func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()

	// All three layers share this connection's copy of the configuration: the
	// socket takes its timeouts from it, the framed transport MaxFrameSize, the
	// protocol MaxMessageSize and strictness.
	cfg := s.cfg
	sock := &phasedSocket{
		sock:   thrift.NewTSocketFromConnConf(conn, &cfg),
		cfg:    &cfg,
		idle:   s.opts.IdleTimeout,
		active: s.opts.ReadTimeout,
	}
	prot := newFramedBinary(wire.NewCoalescer(sock), &cfg)
	remote := conn.RemoteAddr().String()
	for {
		sock.awaitRequest()
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

// phasedSocket gives a server connection two timeouts through the socket's
// TConfiguration, which TSocket reads before every read and write: IdleTimeout
// while waiting for the first byte of a request, ReadTimeout from that byte until
// the reply is written. Only the connection's goroutine uses it.
type phasedSocket struct {
	sock    *thrift.TSocket
	cfg     *thrift.TConfiguration // the connection's own copy, shared with sock
	idle    time.Duration
	active  time.Duration
	waiting bool // no byte of the current request has arrived yet
}

var _ thrift.TTransport = (*phasedSocket)(nil)

// awaitRequest switches to the idle timeout until the next request begins.
func (p *phasedSocket) awaitRequest() {
	p.waiting = true
	p.cfg.SocketTimeout = p.idle
}

// started reports whether part of a request has arrived since awaitRequest.
func (p *phasedSocket) started() bool { return !p.waiting }

func (p *phasedSocket) Read(b []byte) (int, error) {
	n, err := p.sock.Read(b)
	if n > 0 && p.waiting {
		p.waiting = false
		p.cfg.SocketTimeout = p.active
	}
	return n, err
}

func (p *phasedSocket) Write(b []byte) (int, error)     { return p.sock.Write(b) }
func (p *phasedSocket) Flush(ctx context.Context) error { return p.sock.Flush(ctx) }
func (p *phasedSocket) RemainingBytes() uint64          { return p.sock.RemainingBytes() }
func (p *phasedSocket) Open() error                     { return p.sock.Open() }
func (p *phasedSocket) IsOpen() bool                    { return p.sock.IsOpen() }
func (p *phasedSocket) Close() error                    { return p.sock.Close() }
