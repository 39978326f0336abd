package server

import (
	"context"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// inflight is the client service's processor, counting the requests in
// progress from the moment a request's name has been read to the moment its
// answer is written, so that a replica stopping because its storage failed can
// let the answers to the clients it was serving, which name the failure, go out
// before it closes their connections. A connection waiting for its next request
// is not counted (the processor's own Process waits for it).
type inflight struct {
	thrift.TProcessor

	mu   sync.Mutex // guards n and idle
	n    int
	idle chan struct{} // closed when n drops to 0; nil while nobody waits for that
}

// newInflight makes every function of p count its calls, and returns p so
// counted.
func newInflight(p thrift.TProcessor) *inflight {
	in := &inflight{TProcessor: p}
	for name, fn := range p.ProcessorMap() {
		p.AddToProcessorMap(name, trackedFunction{fn: fn, in: in})
	}
	return in
}

// trackedFunction is one function of a processor, counted.
type trackedFunction struct {
	fn thrift.TProcessorFunction
	in *inflight
}

func (f trackedFunction) Process(ctx context.Context, seqID int32, in, out thrift.TProtocol) (bool, thrift.TException) {
	f.in.mu.Lock()
	f.in.n++
	f.in.mu.Unlock()
	defer f.in.done()
	return f.fn.Process(ctx, seqID, in, out)
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
