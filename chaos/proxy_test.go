package chaos

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer echoes every byte back and counts what it received.
type echoServer struct {
	ln       net.Listener
	received atomic.Int64
	wg       sync.WaitGroup
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					s.received.Add(int64(n))
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func newTestLink(t *testing.T, target string) *Link {
	t.Helper()
	l, err := NewLink(1, 2, target, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func dialLink(t *testing.T, l *Link) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within 5s.
func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// lostConns counts connections that have lost bytes forward and backward.
func (l *Link) lostConns() (fwd, bwd int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if c.lostFwd {
			fwd++
		}
		if c.lostBwd {
			bwd++
		}
	}
	return fwd, bwd
}

func waitLost(t *testing.T, l *Link, wantFwd, wantBwd int) {
	t.Helper()
	err := poll(context.Background(), 5*time.Second, "the proxy to drop bytes", func() error {
		if fwd, bwd := l.lostConns(); fwd != wantFwd || bwd != wantBwd {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// expectClosed checks that c is closed without delivering any byte.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 16))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v; want the connection closed with nothing delivered", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 5s: %v", err)
	}
}

func TestLinkPassesBytes(t *testing.T) {
	srv := newEchoServer(t)
	l := newTestLink(t, srv.ln.Addr().String())
	c := dialLink(t, l)
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
		t.Fatalf("echo through the proxy: %q, %v", got, err)
	}
	if l.Faulty() {
		t.Error("a new link reports a fault")
	}
}

func TestLinkCutForward(t *testing.T) {
	srv := newEchoServer(t)
	l := newTestLink(t, srv.ln.Addr().String())
	c := dialLink(t, l)
	if _, err := roundTrip(c, "warm"); err != nil {
		t.Fatal(err)
	}
	before := srv.received.Load()
	l.Cut(true, false)
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	waitLost(t, l, 1, 0)
	l.Heal()
	expectClosed(t, c)
	if got := srv.received.Load() - before; got != 0 {
		t.Errorf("server received %d bytes sent while the link was cut", got)
	}
	// Healed: a new connection works.
	if got, err := roundTrip(dialLink(t, l), "again"); err != nil || got != "again" {
		t.Fatalf("echo after healing: %q, %v", got, err)
	}
}

func TestLinkCutBackward(t *testing.T) {
	srv := newEchoServer(t)
	l := newTestLink(t, srv.ln.Addr().String())
	c := dialLink(t, l)
	l.Cut(false, true)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	// The request arrives; the reply does not.
	waitLost(t, l, 0, 1)
	if got := srv.received.Load(); got != 4 {
		t.Errorf("server received %d bytes, want the 4 of the request", got)
	}
	l.Heal()
	expectClosed(t, c)
}

func TestLinkDelay(t *testing.T) {
	srv := newEchoServer(t)
	l := newTestLink(t, srv.ln.Addr().String())
	c := dialLink(t, l)
	const d = 100 * time.Millisecond
	l.Delay(d, 0)
	begin := time.Now()
	if got, err := roundTrip(c, "slow"); err != nil || got != "slow" {
		t.Fatalf("echo with delay: %q, %v", got, err)
	}
	if took := time.Since(begin); took < 2*d {
		t.Errorf("round trip took %s with %s each way", took, d)
	}
	// Jitter must not reorder bytes.
	l.Delay(time.Millisecond, 20*time.Millisecond)
	for i := range 20 {
		msg := string(rune('a' + i))
		if got, err := roundTrip(c, msg); err != nil || got != msg {
			t.Fatalf("echo %d with jitter: %q, %v", i, got, err)
		}
	}
}

func TestLinkDrop(t *testing.T) {
	srv := newEchoServer(t)
	l := newTestLink(t, srv.ln.Addr().String())
	c := dialLink(t, l)
	l.Drop(1)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if got := srv.received.Load(); got != 0 {
		t.Errorf("server received %d bytes from a dropped connection", got)
	}
}

func TestLinkTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := newTestLink(t, addr)
	expectClosed(t, dialLink(t, l))
}
