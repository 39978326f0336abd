package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

func newClient(t *testing.T, timeout time.Duration, endpoints ...string) *Client {
	t.Helper()
	c, err := New(Config{Endpoints: endpoints, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadAddr returns a 127.0.0.1 address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// writes returns the put and remove calls among calls.
func writes(calls []kvtest.Call) []kvtest.Call {
	var out []kvtest.Call
	for _, c := range calls {
		if c.Method == "put" || c.Method == "remove" {
			out = append(out, c)
		}
	}
	return out
}

func TestPutGetDelete(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()

	r1, err := c.Put(ctx, "colour", []byte("blue"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if r1.Existed {
		t.Errorf("first Put: Existed = true")
	}
	r2, err := c.Put(ctx, "colour", []byte("green"))
	if err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if !r2.Existed || r2.Slot <= r1.Slot {
		t.Errorf("second Put = %+v after %+v: want Existed and a later slot", r2, r1)
	}
	for name, get := range map[string]func(context.Context, string) ([]byte, error){
		"Get": c.Get, "GetStale": c.GetStale,
	} {
		v, err := get(ctx, "colour")
		if err != nil || string(v) != "green" {
			t.Errorf("%s = %q, %v; want green", name, v, err)
		}
	}
	d, err := c.Delete(ctx, "colour")
	if err != nil || !d.Existed {
		t.Fatalf("Delete = %+v, %v; want Existed", d, err)
	}
	if _, ok := srv.Value("colour"); ok {
		t.Errorf("server still holds colour after Delete")
	}
	d, err = c.Delete(ctx, "colour")
	if err != nil || d.Existed {
		t.Errorf("second Delete = %+v, %v; want success with Existed false", d, err)
	}
	if c.Leader() != srv.Addr() {
		t.Errorf("Leader() = %q, want %q", c.Leader(), srv.Addr())
	}
}

func TestEmptyValue(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	if _, err := c.Put(context.Background(), "k", nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	v, err := c.Get(context.Background(), "k")
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get = %#v, %v; want a non-nil empty value", v, err)
	}
}

func TestNotFound(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	for name, get := range map[string]func(context.Context, string) ([]byte, error){
		"Get": c.Get, "GetStale": c.GetStale,
	} {
		_, err := get(context.Background(), "missing")
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(missing) = %v, want ErrNotFound", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), `"missing"`) {
			t.Errorf("%s error %q does not name the key", name, err)
		}
	}
	if n := len(srv.Calls()); n != 2 {
		t.Errorf("server saw %d calls, want 2 (NotFound is final)", n)
	}
}

func TestNotLeaderRedirect(t *testing.T) {
	follower, leader := kvtest.Start(t), kvtest.Start(t)
	follower.SetHook(func(_ context.Context, call kvtest.Call) error {
		if call.Method == "get" && call.Consistency == kvapi.Consistency_STALE {
			return nil
		}
		return &kvapi.NotLeader{LeaderAddr: leader.Addr(), LeaderID: 2}
	})
	c := newClient(t, 0, follower.Addr())
	ctx := context.Background()

	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, ok := leader.Value("k"); !ok || string(v) != "v" {
		t.Fatalf("leader holds %q, %v; want v", v, ok)
	}
	if c.Leader() != leader.Addr() {
		t.Errorf("Leader() = %q, want %q", c.Leader(), leader.Addr())
	}
	fw, lw := writes(follower.Calls()), writes(leader.Calls())
	if len(fw) != 1 || len(lw) != 1 {
		t.Fatalf("follower saw %d writes, leader %d; want 1 each", len(fw), len(lw))
	}
	if fw[0].ClientID != lw[0].ClientID || fw[0].Seq != lw[0].Seq {
		t.Errorf("redirected write changed its session: %+v then %+v", fw[0], lw[0])
	}

	// Once the leader is known, writes and linearizable reads go straight to it.
	if _, err := c.Put(ctx, "k", []byte("w")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "w" {
		t.Fatalf("Get = %q, %v; want w", v, err)
	}
	if n := len(follower.Calls()); n != 1 {
		t.Errorf("follower saw %d calls, want 1: the known leader was not used", n)
	}
}

func TestRedirectLoopIsBounded(t *testing.T) {
	a, b := kvtest.Start(t), kvtest.Start(t)
	a.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.NotLeader{LeaderAddr: b.Addr()} })
	b.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.NotLeader{LeaderAddr: a.Addr()} })
	c := newClient(t, 300*time.Millisecond, a.Addr(), b.Addr())
	start := time.Now()
	_, err := c.Put(context.Background(), "k", []byte("v"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not leader") {
		t.Fatalf("Put = %v, want ErrUnavailable naming the NotLeader answers", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Put took %s with a 300ms timeout", elapsed)
	}
	// Backoff between rounds keeps the redirects to a few dozen, not thousands.
	if n := len(a.Calls()) + len(b.Calls()); n > 200 {
		t.Errorf("%d calls in 300ms: redirects are not backed off", n)
	}
}

// A NotLeader answer is kept as the reason given when the deadline then cuts an
// attempt in flight: the error says why no replica served, not only that the
// last one did not answer in time.
func TestNotLeaderReasonSurvivesTheDeadline(t *testing.T) {
	follower, slow := kvtest.Start(t), kvtest.Start(t)
	follower.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.NotLeader{} })
	release := make(chan struct{})
	defer close(release)
	slow.SetHook(func(context.Context, kvtest.Call) error {
		select { // answers only after the client's deadline (or the test) ends
		case <-release:
		case <-time.After(5 * time.Second):
		}
		return nil
	})
	c := newClient(t, 300*time.Millisecond, follower.Addr(), slow.Addr())
	_, err := c.Put(context.Background(), "k", []byte("v"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no answer before the deadline") ||
		!strings.Contains(err.Error(), "not leader") {
		t.Fatalf("Put = %v, want ErrUnavailable naming the cut attempt and the NotLeader answer", err)
	}
}

func TestUnavailableRetrySameSession(t *testing.T) {
	srv := kvtest.Start(t)
	var failed atomic.Bool
	srv.SetHook(func(_ context.Context, call kvtest.Call) error {
		if call.Method == "put" && failed.CompareAndSwap(false, true) {
			return &kvapi.Unavailable{Message: "no quorum"}
		}
		return nil
	})
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", []byte("v1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := c.Put(ctx, "k", []byte("v2")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	w := writes(srv.Calls())
	if len(w) != 3 {
		t.Fatalf("server saw %d writes, want 3 (one Unavailable, its retry, a new write): %+v", len(w), w)
	}
	if w[0].ClientID == 0 || w[0].ClientID != w[1].ClientID || w[0].Seq != w[1].Seq {
		t.Errorf("retry used (%d, %d), first attempt (%d, %d): want the same pair",
			w[1].ClientID, w[1].Seq, w[0].ClientID, w[0].Seq)
	}
	if w[2].ClientID != w[0].ClientID || w[2].Seq != w[0].Seq+1 {
		t.Errorf("next write used (%d, %d), want (%d, %d)", w[2].ClientID, w[2].Seq, w[0].ClientID, w[0].Seq+1)
	}
}

func TestUnavailableMovesToNextEndpoint(t *testing.T) {
	down, up := kvtest.Start(t), kvtest.Start(t)
	down.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "no quorum"} })
	c := newClient(t, 0, down.Addr(), up.Addr())
	if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	dw, uw := writes(down.Calls()), writes(up.Calls())
	if len(dw) != 1 || len(uw) != 1 {
		t.Fatalf("writes: %d at the failing replica, %d at the next; want 1 each", len(dw), len(uw))
	}
	if dw[0].ClientID != uw[0].ClientID || dw[0].Seq != uw[0].Seq {
		t.Errorf("retry at the next endpoint used (%d, %d), first attempt (%d, %d)",
			uw[0].ClientID, uw[0].Seq, dw[0].ClientID, dw[0].Seq)
	}
}

func TestTransportErrorMovesToNextEndpoint(t *testing.T) {
	up := kvtest.Start(t)
	dead := deadAddr(t)
	c := newClient(t, 0, dead, up.Addr())
	if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("Put with the first endpoint down: %v", err)
	}
	if _, ok := up.Value("k"); !ok {
		t.Errorf("the reachable replica did not get the write")
	}
}

func TestDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const margin = 400 * time.Millisecond
	cases := []struct {
		name string
		hook kvtest.Hook
		dead bool
		want []string
	}{
		{
			name: "unavailable",
			hook: func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "no quorum"} },
			want: []string{"Unavailable: no quorum", "within 300ms"},
		},
		{
			name: "no leader",
			hook: func(context.Context, kvtest.Call) error { return &kvapi.NotLeader{} },
			want: []string{"no leader known"},
		},
		{
			name: "unresponsive",
			hook: func(ctx context.Context, _ kvtest.Call) error { <-ctx.Done(); return ctx.Err() },
			want: []string{"no answer before the deadline"},
		},
		{
			name: "unreachable",
			dead: true,
			want: []string{"dial tcp", "refused"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addr string
			if tc.dead {
				addr = deadAddr(t)
			} else {
				srv := kvtest.Start(t)
				srv.SetHook(tc.hook)
				addr = srv.Addr()
			}
			c := newClient(t, timeout, addr)
			start := time.Now()
			_, err := c.Put(context.Background(), "colour", []byte("blue"))
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Put = %v, want ErrUnavailable", err)
			}
			if elapsed > timeout+margin {
				t.Errorf("Put returned after %s, timeout %s", elapsed, timeout)
			}
			msg := err.Error()
			for _, w := range append([]string{`put "colour"`, addr}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestContextDeadlineShortensTimeout(t *testing.T) {
	srv := kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "no quorum"} })
	c := newClient(t, time.Minute, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Get took %s, the context allowed 200ms", elapsed)
	}
}

func TestCancelledContext(t *testing.T) {
	srv := kvtest.Start(t)
	entered := make(chan struct{})
	srv.SetHook(func(ctx context.Context, _ kvtest.Call) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})
	c := newClient(t, time.Minute, srv.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err := c.Put(ctx, "k", []byte("v"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put = %v, want context.Canceled (the caller gave up, not the cluster)", err)
	}
}

func TestAmbiguousFailureSpendsSeq(t *testing.T) {
	srv := kvtest.Start(t)
	var fail atomic.Bool
	fail.Store(true)
	srv.SetHook(func(context.Context, kvtest.Call) error {
		if fail.Load() {
			return &kvapi.Unavailable{Message: "leadership lost"}
		}
		return nil
	})
	c := newClient(t, 100*time.Millisecond, srv.Addr())
	if _, err := c.Put(context.Background(), "k", []byte("a")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put = %v, want ErrUnavailable", err)
	}
	fail.Store(false)
	if _, err := c.Put(context.Background(), "k", []byte("b")); err != nil {
		t.Fatalf("Put after recovery: %v", err)
	}
	w := writes(srv.Calls())
	first, last := w[0], w[len(w)-1]
	if last.ClientID != first.ClientID || last.Seq != first.Seq+1 {
		t.Errorf("write after an ambiguous failure used (%d, %d), want (%d, %d): a seq must not be reused",
			last.ClientID, last.Seq, first.ClientID, first.Seq+1)
	}
	for _, call := range w[:len(w)-1] {
		if call.ClientID != first.ClientID || call.Seq != first.Seq {
			t.Errorf("retry used (%d, %d), want (%d, %d)", call.ClientID, call.Seq, first.ClientID, first.Seq)
		}
	}
}

func TestInvalidArgumentIsFinal(t *testing.T) {
	srv := kvtest.Start(t)
	const msg = "value is 2000 bytes, over the limit of 1000 bytes"
	var once atomic.Bool
	srv.SetHook(func(_ context.Context, call kvtest.Call) error {
		if call.Method == "put" && once.CompareAndSwap(false, true) {
			return &kvapi.InvalidArgument{Message: msg, Field: "value", Limit: 1000}
		}
		return nil
	})
	c := newClient(t, 0, srv.Addr())
	_, err := c.Put(context.Background(), "k", []byte("v"))
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put = %v, want ErrInvalidArgument", err)
	}
	if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("error %q lost the server's message or address", err)
	}
	var ia *InvalidArgumentError
	if !errors.As(err, &ia) || ia.Field != "value" || ia.Limit != 1000 {
		t.Errorf("errors.As(*InvalidArgumentError) = %+v, want field value, limit 1000", ia)
	}
	if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("next Put: %v", err)
	}
	w := writes(srv.Calls())
	if len(w) != 2 {
		t.Fatalf("server saw %d writes, want 2 (InvalidArgument is not retried)", len(w))
	}
	// The rejected write never took effect, so its seq is free for the next one.
	if w[1].ClientID != w[0].ClientID || w[1].Seq != w[0].Seq {
		t.Errorf("write after a rejected one used (%d, %d), want (%d, %d)",
			w[1].ClientID, w[1].Seq, w[0].ClientID, w[0].Seq)
	}
}

func TestRefusedSessionIsReplaced(t *testing.T) {
	srv := kvtest.Start(t)
	var once atomic.Bool
	srv.SetHook(func(_ context.Context, call kvtest.Call) error {
		if once.CompareAndSwap(false, true) {
			return &kvapi.InvalidArgument{Message: "seq 1 is behind 7", Field: "seq"}
		}
		return nil
	})
	c := newClient(t, 0, srv.Addr())
	if _, err := c.Put(context.Background(), "k", []byte("v")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("next Put: %v", err)
	}
	w := writes(srv.Calls())
	if len(w) != 2 || w[1].ClientID == w[0].ClientID {
		t.Errorf("writes %+v: want the refused session replaced by a new client id", w)
	}
}

func TestLocalValidation(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()
	long := strings.Repeat("k", kvapi.MAX_KEY_BYTES+1)
	big := make([]byte, kvapi.MAX_VALUE_BYTES+1)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"empty key", func() error { _, err := c.Put(ctx, "", []byte("v")); return err }, "key is empty"},
		{"long key", func() error { _, err := c.Get(ctx, long); return err }, "limit of 4096 bytes"},
		{"big value", func() error { _, err := c.Put(ctx, "k", big); return err }, "limit of 1048576 bytes"},
		{"delete empty key", func() error { _, err := c.Delete(ctx, ""); return err }, "key is empty"},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("server saw %d calls for requests that cannot succeed", n)
	}
}

func TestConcurrentPutsKeepSessionRules(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	const workers, perWorker = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				key := fmt.Sprintf("w%d-%d", w, i)
				if _, err := c.Put(context.Background(), key, []byte(key)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Put: %v", err)
	}
	for _, v := range srv.Violations() {
		t.Errorf("session rule broken: %s", v)
	}
	w := writes(srv.Calls())
	if len(w) != workers*perWorker {
		t.Fatalf("server saw %d writes, want %d", len(w), workers*perWorker)
	}
	// Per client id the server saw seq 1, 2, 3, ... in order, with no retries.
	next := make(map[int64]int64)
	for _, call := range w {
		if call.ClientID <= 0 {
			t.Fatalf("client id %d is not a positive 63-bit number", call.ClientID)
		}
		want := next[call.ClientID] + 1
		if call.Seq != want {
			t.Errorf("client %d: seq %d, want %d", call.ClientID, call.Seq, want)
		}
		next[call.ClientID] = call.Seq
	}
	if len(next) > workers {
		t.Errorf("%d client ids for %d concurrent writers: sessions are not reused", len(next), workers)
	}
	for wk := range workers {
		key := fmt.Sprintf("w%d-%d", wk, perWorker-1)
		if v, ok := srv.Value(key); !ok || string(v) != key {
			t.Errorf("server holds %q, %v under %s", v, ok, key)
		}
	}
}

func TestConnectionReuse(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	for i := range 100 {
		if _, err := c.Put(context.Background(), "k", []byte{byte(i)}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if n := srv.Conns(); n < 1 || n > 2 {
		t.Errorf("100 sequential puts opened %d connections, want 1 or 2", n)
	}
}

func TestDroppedConnectionIsReplaced(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", []byte("a")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	srv.DropConns()
	// The pooled connection is dead; the client notices before sending and dials
	// again, so the write needs exactly one attempt.
	if _, err := c.Put(ctx, "k", []byte("b")); err != nil {
		t.Fatalf("Put after the server dropped the connection: %v", err)
	}
	if n := len(writes(srv.Calls())); n != 2 {
		t.Errorf("server saw %d writes, want 2", n)
	}
	if n := srv.Conns(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}

func TestGetStalePrefersEndpointOrder(t *testing.T) {
	first, second := kvtest.Start(t), kvtest.Start(t)
	ctx := context.Background()
	for _, s := range []*kvtest.Server{first, second} {
		if _, err := newClient(t, 0, s.Addr()).Put(ctx, "k", []byte(s.Addr())); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, 0, first.Addr(), second.Addr())
	if v, err := c.GetStale(ctx, "k"); err != nil || string(v) != first.Addr() {
		t.Errorf("GetStale = %q, %v; want the first endpoint's copy %q", v, err, first.Addr())
	}
	c = newClient(t, 0, deadAddr(t), second.Addr())
	if v, err := c.GetStale(ctx, "k"); err != nil || string(v) != second.Addr() {
		t.Errorf("GetStale with the first endpoint down = %q, %v; want %q", v, err, second.Addr())
	}
	for _, call := range second.Calls() {
		if call.Method == "get" && call.Consistency != kvapi.Consistency_STALE {
			t.Errorf("GetStale sent consistency %v", call.Consistency)
		}
	}
}

func TestStatus(t *testing.T) {
	srv := kvtest.Start(t)
	srv.SetStatus(&kvapi.ReplicaStatus{ID: 3, IsLeader: true, LeaderID: 3, Ballot: "4.3", Applied: 9})
	c := newClient(t, 300*time.Millisecond, srv.Addr())
	st, err := c.Status(context.Background(), srv.Addr())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.ID != 3 || !st.IsLeader || st.Ballot != "4.3" || st.Applied != 9 {
		t.Errorf("Status = %+v", st)
	}
	dead := deadAddr(t)
	if _, err := c.Status(context.Background(), dead); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), dead) {
		t.Errorf("Status(down replica) = %v, want ErrUnavailable naming %s", err, dead)
	}
	if _, err := c.Status(context.Background(), "no-port"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Status(no-port) = %v, want ErrInvalidArgument", err)
	}
}

func TestClose(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Put(context.Background(), "k", []byte("v")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if _, err := c.Status(context.Background(), srv.Addr()); !errors.Is(err, ErrClosed) {
		t.Errorf("Status after Close = %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"one endpoint", Config{Endpoints: []string{"127.0.0.1:7001"}}, true},
		{"host name", Config{Endpoints: []string{"replica-1:7001", "[::1]:7002"}}, true},
		{"no endpoints", Config{}, false},
		{"no port", Config{Endpoints: []string{"127.0.0.1"}}, false},
		{"no host", Config{Endpoints: []string{":7001"}}, false},
		{"port zero", Config{Endpoints: []string{"127.0.0.1:0"}}, false},
		{"port too big", Config{Endpoints: []string{"127.0.0.1:65536"}}, false},
		{"named port", Config{Endpoints: []string{"127.0.0.1:http"}}, false},
		{"negative timeout", Config{Endpoints: []string{"h:1"}, Timeout: -time.Second}, false},
		{"negative dial timeout", Config{Endpoints: []string{"h:1"}, DialTimeout: -1}, false},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if _, err := New(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: New() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	d := Config{Endpoints: []string{"h:1", "h:2", "h:1"}}.withDefaults()
	if d.Timeout != DefaultTimeout || d.DialTimeout != DefaultDialTimeout || len(d.Endpoints) != 2 {
		t.Errorf("withDefaults = %+v", d)
	}
}

func TestLargestKeyAndValue(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	key := strings.Repeat("k", kvapi.MAX_KEY_BYTES)
	value := make([]byte, kvapi.MAX_VALUE_BYTES)
	for i := range value {
		value[i] = byte(i)
	}
	if _, err := c.Put(context.Background(), key, value); err != nil {
		t.Fatalf("Put of the largest key and value: %v", err)
	}
	got, err := c.Get(context.Background(), key)
	if err != nil || len(got) != len(value) || got[len(got)-1] != value[len(value)-1] {
		t.Fatalf("Get of the largest value: %d bytes, %v", len(got), err)
	}
}

// A replica that explains why it cannot serve, then stops answering, leaves its
// explanation in the error: "its disk is full" tells an operator more than the
// silence that follows it.
func TestExpiredErrorKeepsLastAnswer(t *testing.T) {
	srv := kvtest.Start(t)
	const why = "replica stopping: its stable storage failed: no space left on device"
	var answered atomic.Bool
	srv.SetHook(func(ctx context.Context, _ kvtest.Call) error {
		if answered.CompareAndSwap(false, true) {
			return &kvapi.Unavailable{Message: why}
		}
		// Later attempts get no answer before the client's deadline.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return &kvapi.Unavailable{Message: "too late"}
	})
	c := newClient(t, 300*time.Millisecond, srv.Addr())
	_, err := c.Put(context.Background(), "k", []byte("v"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("Put error %q does not keep the replica's answer %q", err, why)
	}
}
