package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"
)

// startTLS returns the connection to serve requests on: raw itself without
// ServerOptions.TLS, or a TLS connection over raw whose handshake has
// completed. It reports false, having logged why, when the handshake failed;
// raw must then be closed.
//
// The handshake is held to the same bounds as a request: it may wait
// IdleTimeout for its first byte (a TLS library that handshakes lazily sends
// its hello only with the first request) and ReadTimeout from that byte to its
// end, so
// that neither a client that connects and says nothing nor one that stalls
// halfway holds the connection's goroutine longer than a plaintext one could.
// It runs on the connection's goroutine, never the accept loop's, and Close
// ends it by closing raw.
//
// Whoever closes the connection closes raw, not the TLS connection: no
// close_notify alert is sent, whose write could wait on a client that reads
// nothing, and a client probing its idle pooled connection sees the end of
// file at once.
func (s *Server) startTLS(raw net.Conn, remote string) (net.Conn, bool) {
	if s.opts.TLS == nil {
		return raw, true
	}
	hc := &handshakeConn{Conn: raw, active: s.opts.ReadTimeout}
	err := raw.SetDeadline(time.Now().Add(s.opts.IdleTimeout))
	tc := tls.Server(hc, s.opts.TLS)
	if err == nil {
		err = tc.Handshake()
	}
	if err == nil {
		// From here on the socket sets a deadline before every read and write.
		err = raw.SetDeadline(time.Time{})
	}
	if err != nil {
		s.handshakeFailed(remote, err, hc.started)
		return nil, false
	}
	return tc, true
}

// handshakeFailed logs a connection that ended before or during its TLS
// handshake: quietly when it closed or sat idle before sending a byte (a port
// probe, a health check, a pooled connection never used), and otherwise
// rate-limited like other bad connections, with the reason (a plaintext client,
// a certificate refused, a stall).
func (s *Server) handshakeFailed(remote string, err error, started bool) {
	switch {
	case s.isClosed():
	case errors.Is(err, net.ErrClosed):
		// Only the server closes raw: it made room for a new connection.
		s.log.Debug("connection closed by the server during its TLS handshake", "remote", remote)
	case !started && errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("idle connection closed before its TLS handshake", "remote", remote, "idle_timeout", s.opts.IdleTimeout)
	case !started && isHangUp(err):
		s.log.Debug("connection closed before its TLS handshake", "remote", remote)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if ok, n := s.badLog.allow(time.Now()); ok {
			s.log.Warn("TLS handshake stalled; closing connection",
				"remote", remote, "read_timeout", s.opts.ReadTimeout, "suppressed", n)
		}
	default:
		if ok, n := s.badLog.allow(time.Now()); ok {
			s.log.Warn("TLS handshake failed; closing connection", "remote", remote, "err", err, "suppressed", n)
		}
	}
}

// handshakeConn moves a connection from the idle timeout to the read timeout
// when the first byte of its TLS handshake arrives. Only the connection's
// goroutine uses it; after that byte it only passes reads through.
type handshakeConn struct {
	net.Conn
	active  time.Duration
	started bool // a byte has arrived
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.started {
		c.started = true
		if derr := c.Conn.SetDeadline(time.Now().Add(c.active)); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}
