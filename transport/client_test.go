package transport

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/peer"
)

// recorder is a StepFunc that records each request and answers with a reply fixed
// per request type.
type recorder struct {
	replies map[peer.MessageType]peer.Message

	mu  sync.Mutex // guards got
	got []peer.Message
}

func (r *recorder) step(_ context.Context, req peer.Message) (peer.Message, error) {
	r.mu.Lock()
	r.got = append(r.got, req)
	r.mu.Unlock()
	reply, ok := r.replies[replyType(req.Type)]
	if !ok {
		return peer.Message{}, fmt.Errorf("no reply for %s", req.Type)
	}
	return reply, nil
}

func (r *recorder) last() peer.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

func replyType(t peer.MessageType) peer.MessageType {
	switch t {
	case peer.MsgPrepare:
		return peer.MsgPromise
	case peer.MsgAccept:
		return peer.MsgAccepted
	case peer.MsgExecute:
		return peer.MsgExecuted
	}
	return 0
}

// TestCallRoundTrip sends each request over a real socket and checks that the
// replica saw exactly what was sent and the caller got exactly what it answered.
func TestCallRoundTrip(t *testing.T) {
	b := peer.Ballot{Round: 4, ID: 1}
	rec := &recorder{replies: map[peer.MessageType]peer.Message{
		peer.MsgPromise:  {Type: peer.MsgPromise, From: 2, OK: true, Ballot: b, Entries: testEntries(), Commit: 6, Probe: true},
		peer.MsgAccepted: {Type: peer.MsgAccepted, From: 2, OK: true, Ballot: b, Commit: 8, RoundTrip: 77},
		peer.MsgExecuted: {Type: peer.MsgExecuted, From: 2, Commit: 9},
	}}
	srv := startServer(t, rec.step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})

	requests := []peer.Message{
		{Type: peer.MsgPrepare, From: 1, To: 2, Ballot: b, Slot: 7, Token: 101},
		{Type: peer.MsgPrepare, From: 1, To: 2, Ballot: b, Slot: 7, Probe: true, Token: 105},
		{Type: peer.MsgAccept, From: 1, To: 2, Ballot: b, Entries: testEntries(), Commit: 6, RoundTrip: 77, Token: 102},
		{Type: peer.MsgAccept, From: 1, To: 2, Ballot: b, Commit: 6, RoundTrip: 78, Token: 103}, // heartbeat
		{Type: peer.MsgExecute, From: 1, To: 2, Ballot: b, Entries: testEntries(), Commit: 9, Token: 104},
	}
	for _, req := range requests {
		t.Run(fmt.Sprint(req.Token), func(t *testing.T) {
			reply, err := c.Call(ctxWithTimeout(t), req)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			sent := req
			sent.To, sent.Token = 0, 0 // not on the wire
			if got := rec.last(); !reflect.DeepEqual(got, sent) {
				t.Errorf("replica got\n %+v\nwant\n %+v", got, sent)
			}
			want := rec.replies[replyType(req.Type)]
			want.To, want.Token = req.From, req.Token
			if !reflect.DeepEqual(reply, want) {
				t.Errorf("reply\n %+v\nwant\n %+v", reply, want)
			}
		})
	}
}

func TestCallRejectsNonRequest(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPromise})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
	if n := srv.ln.accepts.Load(); n != 0 {
		t.Fatalf("%d connections for requests that cannot be sent", n)
	}
}

func TestConnectionsPooled(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	for i := range 200 {
		mustCall(t, c, uint64(i))
	}
	if n := srv.ln.accepts.Load(); n > 2 {
		t.Fatalf("200 sequential calls used %d connections", n)
	}
}

// hammer makes calls from workers goroutines at once and checks every reply
// answers its own request.
func hammer(t *testing.T, c *PeerClient, workers, calls int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				token := uint64(w*calls + i)
				req := peer.Message{Type: peer.MsgAccept, From: 1, Ballot: peer.Ballot{Round: 1, ID: 1},
					Entries: testEntries()[:w%3], Commit: token, RoundTrip: token, Token: token}
				reply, err := c.Call(ctxWithTimeout(t), req)
				if err != nil {
					errs <- err
					return
				}
				if reply.Token != token || reply.RoundTrip != token || reply.Commit != token+uint64(w%3) {
					errs <- fmt.Errorf("request %d got reply %+v", token, reply)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	const workers = 16
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{MaxIdle: workers})
	hammer(t, c, workers, 50)
	if n := srv.ln.accepts.Load(); n > workers {
		t.Errorf("%d connections for %d concurrent callers with room for all in the pool", n, workers)
	}
	if n := c.numIdle(); n == 0 || n > workers {
		t.Errorf("%d idle connections, want 1 to %d", n, workers)
	}
}

func TestPoolKeepsAtMostMaxIdle(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{MaxIdle: 2})
	hammer(t, c, 16, 10)
	if n := c.numIdle(); n == 0 || n > 2 {
		t.Errorf("%d idle connections, want 1 to 2", n)
	}
	waitFor(t, "server to see surplus connections close", func() bool { return srv.numConns() <= 2 })
}

func TestCallExpiredContextReturnsPromptly(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("expired call took %v", d)
	}
	if n := srv.ln.accepts.Load(); n != 0 {
		t.Fatalf("expired call dialed %d connections", n)
	}
}

// blockingStep blocks prepare calls until release is closed or its context ends,
// reporting on exited how each blocked call ended.
type blockingStep struct {
	entered chan struct{}
	release chan struct{}
	exited  chan error
}

func newBlockingStep() *blockingStep {
	return &blockingStep{entered: make(chan struct{}, 16), release: make(chan struct{}), exited: make(chan error, 16)}
}

func (b *blockingStep) step(ctx context.Context, req peer.Message) (peer.Message, error) {
	if req.Type == peer.MsgPrepare {
		b.entered <- struct{}{}
		select {
		case <-b.release:
			b.exited <- nil
		case <-ctx.Done():
			b.exited <- ctx.Err()
			return peer.Message{}, ctx.Err()
		}
	}
	return echoStep(ctx, req)
}

func TestCallDeadlineWhileReplicaBusy(t *testing.T) {
	bs := newBlockingStep()
	defer close(bs.release)
	srv := startServer(t, bs.step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("call with a 100ms deadline took %v", d)
	}
	// The caller hung up, so the replica's step is cancelled rather than left to
	// run out its own timeout.
	select {
	case err := <-bs.exited:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("abandoned step ended with %v, want Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("abandoned step still running")
	}
	// The timed-out connection is not reused; a later call works.
	reply, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgExecute, From: 1, Commit: 3})
	if err != nil || reply.Commit != 3 {
		t.Fatalf("call after timeout: %+v, %v", reply, err)
	}
	if n := srv.ln.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestCallCancelWhileReplicaBusy(t *testing.T) {
	bs := newBlockingStep()
	defer close(bs.release)
	srv := startServer(t, bs.step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: 1})
		done <- err
	}()
	<-bs.entered
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("cancelled call did not return")
	}
}

func TestCallWithoutDeadlineUsesCallTimeout(t *testing.T) {
	bs := newBlockingStep()
	defer close(bs.release)
	srv := startServer(t, bs.step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{CallTimeout: 100 * time.Millisecond})
	_, err := c.Call(context.Background(), peer.Message{Type: peer.MsgPrepare, From: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestCallReportsReplicaError(t *testing.T) {
	step := func(ctx context.Context, req peer.Message) (peer.Message, error) {
		switch req.Slot {
		case 1:
			return peer.Message{}, errors.New("disk on fire")
		case 2:
			return peer.Message{Type: peer.MsgExecuted}, nil // wrong reply type
		case 3:
			return peer.Message{Type: peer.MsgPromise, From: 1 << 63}, nil // not representable
		}
		return echoStep(ctx, req)
	}
	srv := startServer(t, step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	for slot, want := range map[uint64]string{1: "disk on fire", 2: "replica answered executed", 3: "out of range"} {
		_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare, From: 1, Slot: slot})
		var ae thrift.TApplicationException
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), want) {
			t.Errorf("slot %d: got %v, want an application exception containing %q", slot, err, want)
		}
	}
	mustCall(t, c, 9)
}

func TestCallAfterClose(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := c.numIdle(); n != 0 {
		t.Fatalf("%d idle connections after close", n)
	}
	if _, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare}); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	waitFor(t, "server to see the pooled connection close", func() bool { return srv.numConns() == 0 })
}

func TestCallUnreachable(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{})
	addr := srv.addr()
	srv.Close()
	c := NewPeerClient(addr, ClientOptions{})
	defer c.Close()
	_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want a dial error naming %s", err, addr)
	}
}

// TestPooledConnectionClosedByServer checks that a connection the server closed
// while it sat in the pool is not used for the next call.
func TestPooledConnectionClosedByServer(t *testing.T) {
	srv := startServer(t, echoStep, ServerOptions{IdleTimeout: 50 * time.Millisecond})
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)
	waitFor(t, "idle timeout", func() bool { return srv.numConns() == 0 })
	mustCall(t, c, 2)
	if n := srv.ln.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestCallRetriesOnceOnClosedPooledConnection closes the pooled connection while
// the server holds the request, as an idle close racing a new call would.
func TestCallRetriesOnceOnClosedPooledConnection(t *testing.T) {
	var mu sync.Mutex // guards seen
	seen := 0
	step := func(ctx context.Context, req peer.Message) (peer.Message, error) {
		if req.Slot == 7 {
			mu.Lock()
			seen++
			first := seen == 1
			mu.Unlock()
			if first {
				panic("drop the connection")
			}
		}
		return echoStep(ctx, req)
	}
	srv := startServer(t, step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{})
	mustCall(t, c, 1)
	mustCall(t, c, 7)
	mu.Lock()
	defer mu.Unlock()
	if seen != 2 {
		t.Fatalf("replica saw the request %d times, want 2", seen)
	}
	if n := srv.ln.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestClientMaxFrameSizeApplies(t *testing.T) {
	big := peer.Message{Type: peer.MsgPromise, From: 2, OK: true,
		Entries: []peer.Entry{{Slot: 1, Data: make([]byte, 4096)}}}
	step := func(ctx context.Context, req peer.Message) (peer.Message, error) {
		if req.Slot == 1 {
			return big, nil
		}
		return echoStep(ctx, req)
	}
	srv := startServer(t, step, ServerOptions{})
	c := newClient(t, srv, ClientOptions{MaxFrameSize: 1024})
	_, err := c.Call(ctxWithTimeout(t), peer.Message{Type: peer.MsgPrepare, Slot: 1})
	if err == nil || !strings.Contains(err.Error(), "frame size") {
		t.Fatalf("got %v, want a frame size error", err)
	}
	mustCall(t, c, 2)
}

func BenchmarkAcceptRoundTrip(b *testing.B) {
	srv := startServer(b, echoStep, ServerOptions{MaxFrameSize: PeerMaxFrameSize})
	c := newClient(b, srv, ClientOptions{})
	req := benchAccept()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
