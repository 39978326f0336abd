package xlang

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// call is one request as a scripted replica received it.
type call struct {
	method   string // "get", "put" or "remove"
	clientID int64
	seq      int64
	key      string
}

// errDrop, as a scripted answer, makes the replica close the connection instead of
// answering: the client sees a transport error and cannot know whether the write
// was applied.
var errDrop = errors.New("drop the connection")

// scriptedReplica serves the KV service on 127.0.0.1 from a map, after answering
// the first calls with a script of errors, and records every call. Its methods are
// safe for concurrent use.
type scriptedReplica struct {
	addr   string
	server *thrift.TSimpleServer
	ln     *trackingListener
	served chan struct{} // closed when the accept loop has returned

	mu     sync.Mutex // guards every field below
	script []error    // answers for the next calls, in order; nil serves the call
	calls  []call
	data   map[string][]byte
	slot   int64
}

// startScripted runs a scripted replica until the test ends.
func startScripted(t testing.TB) *scriptedReplica {
	t.Helper()
	sock, err := thrift.NewTServerSocketTimeout("127.0.0.1:0", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Listen(); err != nil {
		t.Fatal(err)
	}
	s := &scriptedReplica{
		addr:   sock.Addr().String(),
		ln:     &trackingListener{TServerSocket: sock},
		served: make(chan struct{}),
		data:   make(map[string][]byte),
	}
	cfg := &thrift.TConfiguration{MaxFrameSize: 4 << 20, SocketTimeout: 30 * time.Second}
	s.server = thrift.NewTSimpleServer4(
		kvapi.NewKVProcessor(scriptedHandler{s}),
		s.ln,
		thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), cfg),
		thrift.NewTBinaryProtocolFactoryConf(cfg),
	)
	// AcceptLoop, unlike Serve, leaves the server's log context unset, and the
	// server dereferences it when a connection ends with an error (a client
	// that drops mid-request): set it, or that panics the test binary.
	s.server.SetLogContext(context.Background())
	go func() {
		defer close(s.served)
		s.server.AcceptLoop()
	}()
	t.Cleanup(func() {
		s.ln.closeAll()
		s.server.Stop()
		<-s.served
	})
	return s
}

// answer makes the next calls fail with errs, in order (errDrop: close the
// connection); the calls after them are served.
func (s *scriptedReplica) answer(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, errs...)
}

// value returns what the replica stores under key.
func (s *scriptedReplica) value(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// set stores v under key.
func (s *scriptedReplica) set(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = v
}

func (s *scriptedReplica) received() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// trackingListener remembers the connections it accepts so that they can be cut.
type trackingListener struct {
	*thrift.TServerSocket

	mu       sync.Mutex // guards accepted and closed
	accepted []thrift.TTransport
	closed   bool
}

func (l *trackingListener) Accept() (thrift.TTransport, error) {
	tr, err := l.TServerSocket.Accept()
	if err != nil {
		return tr, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		tr.Close()
		return tr, nil
	}
	l.accepted = append(l.accepted, tr)
	return tr, nil
}

// dropAll closes every connection accepted so far; new ones are still accepted.
func (l *trackingListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.accepted {
		tr.Close()
	}
	l.accepted = nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.dropAll()
}

type scriptedHandler struct{ s *scriptedReplica }

var _ kvapi.KV = scriptedHandler{}

// next records c and returns its scripted answer, nil when it is to be served.
func (h scriptedHandler) next(c call) error {
	h.s.mu.Lock()
	h.s.calls = append(h.s.calls, c)
	var err error
	if len(h.s.script) > 0 {
		err = h.s.script[0]
		h.s.script = h.s.script[1:]
	}
	h.s.mu.Unlock()
	if err == errDrop {
		h.s.ln.dropAll()
	}
	return err
}

func (h scriptedHandler) Get(_ context.Context, key string, _ kvapi.Consistency) (*kvapi.GetResult_, error) {
	if err := h.next(call{method: "get", key: key}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	v, ok := h.s.data[key]
	if !ok {
		return nil, &kvapi.NotFound{Key: key}
	}
	return &kvapi.GetResult_{Value: v, Applied: h.s.slot}, nil
}

func (h scriptedHandler) Put(_ context.Context, clientID, seq int64, key string, value []byte) (*kvapi.WriteResult_, error) {
	if err := h.next(call{method: "put", clientID: clientID, seq: seq, key: key}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	_, existed := h.s.data[key]
	h.s.data[key] = slices.Clone(value)
	h.s.slot++
	return &kvapi.WriteResult_{Slot: h.s.slot, Existed: existed}, nil
}

func (h scriptedHandler) Remove(_ context.Context, clientID, seq int64, key string) (*kvapi.WriteResult_, error) {
	if err := h.next(call{method: "remove", clientID: clientID, seq: seq, key: key}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	_, existed := h.s.data[key]
	delete(h.s.data, key)
	h.s.slot++
	return &kvapi.WriteResult_{Slot: h.s.slot, Existed: existed}, nil
}

func (h scriptedHandler) Status(context.Context) (*kvapi.ReplicaStatus, error) {
	return &kvapi.ReplicaStatus{ClientAddr: h.s.addr}, nil
}

func (h scriptedHandler) Digest(context.Context) (*kvapi.Digest, error) {
	return nil, &kvapi.Unavailable{Message: "digest is not scripted"}
}

func (h scriptedHandler) Backup(context.Context, int64, int64, int32) (*kvapi.BackupChunk, error) {
	return nil, &kvapi.Unavailable{Message: "backup is not scripted"}
}

func (h scriptedHandler) Reconfigure(context.Context, []*kvapi.ReplicaAddress) (*kvapi.ReconfigureResult_, error) {
	return nil, &kvapi.Unavailable{Message: "reconfigure is not scripted"}
}
