package server

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/replicas"
)

// startingKV answers the client service while the replica is starting: it
// serves nothing before it takes part (it may wait for the other replicas, or
// out a rebuild's hold, for seconds or minutes). A client told so at once goes
// on to another replica, where a port nobody read would hold it until its
// deadline.
type startingKV struct {
	self  replicas.Replica
	phase *atomic.Pointer[string] // what the replica is waiting for
}

var _ kvapi.KV = startingKV{}

func (s startingKV) reason() string {
	if p := s.phase.Load(); p != nil {
		return *p
	}
	return "starting"
}

func (s startingKV) unavailable() error {
	return &kvapi.Unavailable{Message: fmt.Sprintf("replica %d is starting: %s", s.self.ID, s.reason())}
}

func (s startingKV) Get(context.Context, string, kvapi.Consistency) (*kvapi.GetResult_, error) {
	return nil, s.unavailable()
}

func (s startingKV) Put(context.Context, int64, int64, string, []byte) (*kvapi.WriteResult_, error) {
	return nil, s.unavailable()
}

func (s startingKV) Remove(context.Context, int64, int64, string) (*kvapi.WriteResult_, error) {
	return nil, s.unavailable()
}

func (s startingKV) Digest(context.Context) (*kvapi.Digest, error) { return nil, s.unavailable() }

func (s startingKV) Backup(context.Context, int64, int64, int32) (*kvapi.BackupChunk, error) {
	return nil, s.unavailable()
}

func (s startingKV) Reconfigure(context.Context, []*kvapi.ReplicaAddress) (*kvapi.ReconfigureResult_, error) {
	return nil, s.unavailable()
}

// Status says who this replica is and what it waits for; status declares no
// exceptions, and an operator asking is better told than refused.
func (s startingKV) Status(context.Context) (*kvapi.ReplicaStatus, error) {
	return &kvapi.ReplicaStatus{ID: int64(s.self.ID), ClientAddr: s.self.ClientAddr, PeerAddr: s.self.PeerAddr,
		Starting: s.reason()}, nil
}

// startGate serves the client port with starting until open, then with serving.
type startGate struct {
	starting thrift.TProcessor
	serving  thrift.TProcessor
	open     atomic.Bool
}

func (g *startGate) Process(ctx context.Context, in, out thrift.TProtocol) (bool, thrift.TException) {
	if g.open.Load() {
		return g.serving.Process(ctx, in, out)
	}
	return g.starting.Process(ctx, in, out)
}

func (g *startGate) ProcessorMap() map[string]thrift.TProcessorFunction {
	return g.serving.ProcessorMap()
}

func (g *startGate) AddToProcessorMap(name string, fn thrift.TProcessorFunction) {
	g.serving.AddToProcessorMap(name, fn)
}
