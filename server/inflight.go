package server

import (
	"context"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// inflight wraps the client service's processor and counts the requests in
// progress (each one read, handled and its answer written), so that a replica
// stopping because its storage failed can let the answers to the clients it was
// serving, which name the failure, go out before it closes their connections.
type inflight struct {
	thrift.TProcessor

	mu   sync.Mutex // guards n and idle
	n    int
	idle chan struct{} // closed when n drops to 0; nil while nobody waits for that
}

func newInflight(p thrift.TProcessor) *inflight { return &inflight{TProcessor: p} }

func (p *inflight) Process(ctx context.Context, in, out thrift.TProtocol) (bool, thrift.TException) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	defer p.done()
	return p.TProcessor.Process(ctx, in, out)
}

func (p *inflight) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.n == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// waitIdle waits until no request is in progress, or for at most limit (clients
// that keep sending new requests could hold it off for ever).
func (p *inflight) waitIdle(limit time.Duration) {
	p.mu.Lock()
	if p.n == 0 {
		p.mu.Unlock()
		return
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	idle := p.idle
	p.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-idle:
	case <-timer.C:
	}
}
