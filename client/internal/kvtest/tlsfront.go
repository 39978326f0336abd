package kvtest

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
)

// TLSFront terminates TLS in front of a fake replica, as a replica's client
// port does with --client-cert: it accepts TLS connections on 127.0.0.1 and
// relays each to the replica over plain TCP.
type TLSFront struct {
	addr string

	mu       sync.Mutex // guards conns and accepted
	conns    []net.Conn // the raw sockets accepted and not yet cut
	accepted int
}

// StartTLSFront serves cfg's TLS in front of backend until the test ends.
func StartTLSFront(t testing.TB, backend string, cfg *tls.Config) *TLSFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &TLSFront{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.Cut()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, raw)
			f.accepted++
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.relay(raw, backend, cfg)
			}()
		}
	}()
	return f
}

func (f *TLSFront) relay(raw net.Conn, backend string, cfg *tls.Config) {
	defer raw.Close()
	back, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer back.Close()
	front := tls.Server(raw, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(back, front)
		back.Close()
	}()
	io.Copy(front, back)
	raw.Close()
	<-done
}

// Addr is the front's host:port.
func (f *TLSFront) Addr() string { return f.addr }

// Cut closes every connection accepted so far as a replica closes an idle
// one: the socket, without a close_notify alert.
func (f *TLSFront) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// Accepted is the number of connections accepted.
func (f *TLSFront) Accepted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}
