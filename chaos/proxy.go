package chaos

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Link is a fault-injecting TCP proxy for one directed peer link From→To: every
// connection From opens to To's peer service passes through it. Bytes going
// forward are From's requests; bytes going backward are To's replies.
//
// A Link can drop the bytes of either direction (a cut: the connection stays
// open and silent, as behind a lost route), delay them (order is kept), or close
// connections at random. A connection that has lost bytes in a direction stays
// silent in that direction until it is closed, so a receiver never sees a frame
// with a hole in it; Heal closes such connections.
type Link struct {
	From, To int
	target   string
	ln       net.Listener
	wg       sync.WaitGroup // the accept loop and every pump

	mu        sync.Mutex // guards every field below
	dropFwd   bool
	dropBwd   bool
	delay     time.Duration
	jitter    time.Duration
	closeProb float64
	rng       *rand.Rand
	conns     map[*proxyConn]struct{}
	closed    bool
}

// proxyConn is one proxied connection: in comes from From, out goes to To.
type proxyConn struct {
	in, out net.Conn
	// Guarded by Link.mu.
	lostFwd, lostBwd bool
	closed           bool
}

// NewLink listens on a free loopback port and forwards to target.
func NewLink(from, to int, target string, seed uint64) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy %d→%d: %w", from, to, err)
	}
	l := &Link{
		From: from, To: to, target: target, ln: ln,
		rng:   rand.New(rand.NewPCG(seed, uint64(from)<<32|uint64(to))),
		conns: make(map[*proxyConn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the proxy's listening address, the one From must dial for To.
func (l *Link) Addr() string { return l.ln.Addr().String() }

func (l *Link) String() string { return fmt.Sprintf("%d→%d", l.From, l.To) }

// Cut drops bytes: forward (From's requests), backward (To's replies), or both.
func (l *Link) Cut(forward, backward bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropFwd = l.dropFwd || forward
	l.dropBwd = l.dropBwd || backward
}

// Delay holds every chunk of bytes, both ways, for d plus up to jitter.
func (l *Link) Delay(d, jitter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delay, l.jitter = d, jitter
}

// Drop closes a connection with probability p each time a chunk of bytes
// passes, in either direction.
func (l *Link) Drop(p float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeProb = p
}

// Heal ends every fault and closes the connections that lost bytes.
func (l *Link) Heal() {
	l.mu.Lock()
	l.dropFwd, l.dropBwd = false, false
	l.delay, l.jitter = 0, 0
	l.closeProb = 0
	var lost []*proxyConn
	for c := range l.conns {
		if c.lostFwd || c.lostBwd {
			lost = append(lost, c)
		}
	}
	l.mu.Unlock()
	for _, c := range lost {
		l.closeConn(c)
	}
}

// Faulty reports whether any fault is set.
func (l *Link) Faulty() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropFwd || l.dropBwd || l.delay > 0 || l.closeProb > 0
}

// Close stops the proxy and closes every connection through it.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*proxyConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		l.closeConn(c)
	}
	l.wg.Wait()
}

func (l *Link) acceptLoop() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			// To is down: so is the connection through the proxy.
			in.Close()
			continue
		}
		c := &proxyConn{in: in, out: out}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pump(c, true)
		go l.pump(c, false)
	}
}

func (l *Link) closeConn(c *proxyConn) {
	l.mu.Lock()
	already := c.closed
	c.closed = true
	delete(l.conns, c)
	l.mu.Unlock()
	if !already {
		c.in.Close()
		c.out.Close()
	}
}

// chunk is bytes read from one side, to be written to the other at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pump copies one direction of c: a reader decides each chunk's fate (pass,
// drop, or close the connection) and when it is due; a writer delivers the
// chunks in order.
func (l *Link) pump(c *proxyConn, forward bool) {
	defer l.wg.Done()
	src, dst := c.in, c.out
	if !forward {
		src, dst = c.out, c.in
	}
	queue := make(chan chunk, 256)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ch := range queue {
			if wait := time.Until(ch.due); wait > 0 {
				// Pacing of the injected delay, not synchronisation.
				timer := time.NewTimer(wait)
				<-timer.C
			}
			if _, err := dst.Write(ch.data); err != nil {
				l.closeConn(c)
				for range queue {
				}
				return
			}
		}
	}()
	defer func() {
		// Deliver what is queued, then close both sides.
		close(queue)
		<-writerDone
		l.closeConn(c)
	}()
	var lastDue time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			l.mu.Lock()
			drop := l.dropFwd
			if !forward {
				drop = l.dropBwd
			}
			lost := &c.lostFwd
			if !forward {
				lost = &c.lostBwd
			}
			if drop {
				*lost = true
			}
			silent := *lost
			kill := l.closeProb > 0 && l.rng.Float64() < l.closeProb
			due := now.Add(l.delay)
			if l.jitter > 0 {
				due = due.Add(time.Duration(l.rng.Int64N(int64(l.jitter))))
			}
			l.mu.Unlock()
			if kill {
				l.closeConn(c)
				return
			}
			if !silent {
				if due.Before(lastDue) {
					due = lastDue // jitter must not reorder bytes
				}
				lastDue = due
				queue <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
			}
		}
		if err != nil {
			return
		}
	}
}
