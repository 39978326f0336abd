package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/transport"
)

// peerWorkers is how many calls may be in flight to one replica at once: enough
// for the core's accept pipeline plus heartbeats and catch-up.
const peerWorkers = 12

// peerSender sends the core's requests to the other replicas over pooled Thrift
// connections and hands every reply, or news of a failure, back to the node.
type peerSender struct {
	links   map[uint64]*peerLink
	deliver func(peer.Message)
	timeout time.Duration
	logger  *slog.Logger
	wg      sync.WaitGroup

	ctx      context.Context
	maxFrame int32
	tls      *tls.Config // for calls to the other replicas; nil: plaintext
}

// peerLink is the way to one other replica.
type peerLink struct {
	id     uint64
	addr   string
	client *transport.PeerClient
	queue  chan peer.Message
	up     atomic.Bool // last call succeeded; logged on every change
}

func newPeerSender(ctx context.Context, addrs map[uint64]string, deliver func(peer.Message),
	timeout time.Duration, maxFrame int32, tlsConfig *tls.Config, logger *slog.Logger) *peerSender {
	s := &peerSender{links: make(map[uint64]*peerLink), deliver: deliver, timeout: timeout, logger: logger,
		ctx: ctx, maxFrame: maxFrame, tls: tlsConfig}
	for id, addr := range addrs {
		s.add(id, addr)
	}
	return s
}

// add makes replica id reachable at addr, unless it already is (at any address:
// a replica's id and addresses change together, by a new line in replicas.txt).
// Not safe for concurrent use with Send: the node loop calls both.
func (s *peerSender) add(id uint64, addr string) {
	if _, ok := s.links[id]; ok {
		return
	}
	opts := transport.ClientOptions{MaxFrameSize: s.maxFrame, CallTimeout: s.timeout, Logger: s.logger, TLS: s.tls}
	if s.tls != nil {
		// A TLS dial costs a handshake (a key exchange and a signature each
		// way): keep a connection for every worker, so that a burst of calls
		// above the default pool does not pay one per call and close it after.
		opts.MaxIdle = peerWorkers
	}
	l := &peerLink{
		id:     id,
		addr:   addr,
		client: transport.NewPeerClient(addr, opts),
		queue:  make(chan peer.Message, 1024),
	}
	l.up.Store(true)
	s.links[id] = l
	for range peerWorkers {
		s.wg.Add(1)
		go s.work(s.ctx, l)
	}
}

// Send queues m for its destination. A full queue drops it, which the protocol
// treats like any lost message.
func (s *peerSender) Send(m peer.Message) {
	l, ok := s.links[m.To]
	if !ok {
		return
	}
	select {
	case l.queue <- m:
	default:
		s.deliver(unreachable(m))
	}
}

func unreachable(m peer.Message) peer.Message {
	return peer.Message{Type: peer.MsgUnreachable, From: m.To, To: m.From, RoundTrip: m.RoundTrip}
}

func (s *peerSender) work(ctx context.Context, l *peerLink) {
	defer s.wg.Done()
	for {
		var m peer.Message
		select {
		case <-ctx.Done():
			return
		case m = <-l.queue:
		}
		callCtx, cancel := context.WithTimeout(ctx, s.timeout)
		reply, err := l.client.Call(callCtx, m)
		cancel()
		if err != nil {
			if l.up.Swap(false) {
				s.logger.Warn("peer unreachable", "peer", l.id, "addr", l.addr, "err", err)
			}
			s.deliver(unreachable(m))
			continue
		}
		if !l.up.Swap(true) {
			s.logger.Info("peer reachable again", "peer", l.id, "addr", l.addr)
		}
		s.deliver(reply)
	}
}

// close waits for the workers (after their context ended) and closes connections.
func (s *peerSender) close() {
	s.wg.Wait()
	for _, l := range s.links {
		l.client.Close()
	}
}
