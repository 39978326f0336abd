package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
)

// testCluster runs replicas in this process on loopback ports.
type testCluster struct {
	t         *testing.T
	file      string
	dir       string
	addrs     map[uint64]string // client addresses
	peerAddrs map[uint64]string
	cancels   map[uint64]context.CancelFunc
	done      map[uint64]chan error
	// configure, if set, adjusts each replica's Config before it starts.
	configure func(id uint64, cfg *Config)
}

func freePort(t *testing.T) string {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct loopback addresses that were free a moment ago.
// Their listeners stay open until all n are chosen: one closed at once may be
// handed out again by the next, and a replicas file that names an address
// twice is refused.
func freePorts(tb testing.TB, n int) []string {
	tb.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

func newTestCluster(t *testing.T, n int) *testCluster {
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with configure adjusting each replica's
// Config (nil: none).
func newTestClusterWith(t *testing.T, n int, configure func(id uint64, cfg *Config)) *testCluster {
	c := &testCluster{
		t: t, dir: t.TempDir(),
		addrs:     map[uint64]string{},
		peerAddrs: map[uint64]string{},
		cancels:   map[uint64]context.CancelFunc{},
		done:      map[uint64]chan error{},
		configure: configure,
	}
	var b strings.Builder
	ports := freePorts(t, 2*n)
	for id := uint64(1); id <= uint64(n); id++ {
		c.addrs[id], c.peerAddrs[id] = ports[2*id-2], ports[2*id-1]
		fmt.Fprintf(&b, "%d %s %s\n", id, c.addrs[id], c.peerAddrs[id])
	}
	c.file = filepath.Join(c.dir, "replicas.txt")
	if err := os.WriteFile(c.file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for id := range c.addrs {
		c.start(id)
	}
	t.Cleanup(func() {
		for id := range c.cancels {
			c.stop(id)
		}
	})
	return c
}

func (c *testCluster) start(id uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := Config{
		ID: id, ReplicasFile: c.file, DataDir: filepath.Join(c.dir, fmt.Sprint(id)),
		RequestTimeout: 2 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(testWriter{c.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if c.configure != nil {
		c.configure(id, &cfg)
	}
	go func() { done <- Run(ctx, cfg) }()
	c.cancels[id] = cancel
	c.done[id] = done
}

func (c *testCluster) stop(id uint64) {
	c.t.Helper()
	cancel, ok := c.cancels[id]
	if !ok {
		return
	}
	cancel()
	select {
	case err := <-c.done[id]:
		if err != nil {
			c.t.Errorf("replica %d stopped with %v", id, err)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("replica %d did not stop within 10s", id)
	}
	delete(c.cancels, id)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *testCluster) client() *client.Client {
	var eps []string
	for _, a := range c.addrs {
		eps = append(eps, a)
	}
	cl, err := client.New(client.Config{Endpoints: eps, Timeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// rawClient is a plain Thrift client on one replica, as another language would
// build it from idl/kv.thrift.
func rawClient(t *testing.T, addr string) *kvapi.KVClient {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 5 * time.Second}
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	return kvapi.NewKVClient(thrift.NewTStandardClient(p, p))
}

// leader waits until some running replica reports that it leads.
func (c *testCluster) leader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for id, addr := range c.addrs {
			if _, up := c.cancels[id]; !up {
				continue
			}
			st, err := rawStatus(addr)
			if err == nil && st.IsLeader {
				return id
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	c.t.Fatal("no leader within 10s")
	return 0
}

// rawStatus asks the replica at addr for its status; one still starting, which
// serves nothing and reports no state yet, is an error.
func rawStatus(addr string) (*kvapi.ReplicaStatus, error) {
	st, err := rawStatusEvenStarting(addr)
	if err == nil && st.GetStarting() != "" {
		return nil, fmt.Errorf("replica %d is starting: %s", st.GetID(), st.GetStarting())
	}
	return st, err
}

// rawStatusEvenStarting is rawStatus, answered by a starting replica too.
func rawStatusEvenStarting(addr string) (*kvapi.ReplicaStatus, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: time.Second}
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := tr.Open(); err != nil {
		return nil, err
	}
	defer tr.Close()
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	return kvapi.NewKVClient(thrift.NewTStandardClient(p, p)).Status(context.Background())
}

func TestPutGetDelete(t *testing.T) {
	c := newTestCluster(t, 3)
	cl := c.client()
	ctx := context.Background()
	if _, err := cl.Put(ctx, "colour", []byte("blue")); err != nil {
		t.Fatal(err)
	}
	v, err := cl.Get(ctx, "colour")
	if err != nil || string(v) != "blue" {
		t.Fatalf("get colour = %q, %v; want blue", v, err)
	}
	res, err := cl.Put(ctx, "colour", []byte("red"))
	if err != nil || !res.Existed {
		t.Fatalf("overwrite: %+v, %v; want existed", res, err)
	}
	if res, err := cl.Delete(ctx, "colour"); err != nil || !res.Existed {
		t.Fatalf("delete: %+v, %v", res, err)
	}
	if _, err := cl.Get(ctx, "colour"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after delete: %v, want not found", err)
	}
}

// A follower refuses writes and linearizable reads with NotLeader naming the
// leader's client address, and serves stale reads itself.
func TestFollowerRedirects(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	if _, err := c.client().Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	var follower uint64
	for id := range c.addrs {
		if id != lead {
			follower = id
		}
	}
	kv := rawClient(t, c.addrs[follower])
	_, err := kv.Put(context.Background(), 77, 1, "k2", []byte("v"))
	var nl *kvapi.NotLeader
	if !errors.As(err, &nl) || nl.LeaderAddr != c.addrs[lead] {
		t.Fatalf("put at follower: %v; want NotLeader naming %s", err, c.addrs[lead])
	}
	_, err = kv.Get(context.Background(), "k", kvapi.Consistency_LINEARIZABLE)
	if !errors.As(err, &nl) {
		t.Fatalf("linearizable get at follower: %v; want NotLeader", err)
	}
	// The follower learns the write's slot with the next heartbeat.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := kv.Get(context.Background(), "k", kvapi.Consistency_STALE)
		if err == nil && string(r.Value) == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale get at follower: %v, %v", r, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// A retried request (same client id and sequence number) takes effect once, even
// when another client wrote in between and the leader changed.
func TestRetryAppliedOnce(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := context.Background()
	kv := rawClient(t, c.addrs[lead])
	first, err := kv.Put(ctx, 4242, 1, "x", []byte("from-first"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client().Put(ctx, "x", []byte("from-second")); err != nil {
		t.Fatal(err)
	}
	c.stop(lead)
	newLead := c.leader()
	kv2 := rawClient(t, c.addrs[newLead])
	retried, err := kv2.Put(ctx, 4242, 1, "x", []byte("from-first"))
	if err != nil {
		t.Fatal(err)
	}
	if retried.Slot != first.Slot {
		t.Fatalf("retry answered with slot %d, want the first answer's slot %d", retried.Slot, first.Slot)
	}
	v, err := c.client().Get(ctx, "x")
	if err != nil || string(v) != "from-second" {
		t.Fatalf("get x = %q, %v; the retry was applied again", v, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	c := newTestCluster(t, 1)
	kv := rawClient(t, c.addrs[c.leader()])
	ctx := context.Background()
	cases := []struct {
		name  string
		call  func() error
		field string
		limit int64
	}{
		{"empty key", func() error { _, err := kv.Put(ctx, 1, 1, "", []byte("v")); return err }, "key", 0},
		{"long key", func() error {
			_, err := kv.Put(ctx, 1, 1, strings.Repeat("k", kvapi.MAX_KEY_BYTES+1), nil)
			return err
		}, "key", kvapi.MAX_KEY_BYTES},
		{"large value", func() error {
			_, err := kv.Put(ctx, 1, 1, "k", make([]byte, kvapi.MAX_VALUE_BYTES+1))
			return err
		}, "value", kvapi.MAX_VALUE_BYTES},
		{"negative client", func() error { _, err := kv.Remove(ctx, -1, 1, "k"); return err }, "client_id", 0},
		{"zero seq", func() error { _, err := kv.Remove(ctx, 5, 0, "k"); return err }, "seq", 0},
		{"get empty key", func() error { _, err := kv.Get(ctx, "", kvapi.Consistency_STALE); return err }, "key", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ia *kvapi.InvalidArgument
			if !errors.As(err, &ia) || ia.Field != tc.field || ia.Limit != tc.limit {
				t.Fatalf("got %v; want InvalidArgument on %s with limit %d", err, tc.field, tc.limit)
			}
			if tc.field == "key" && !strings.Contains(ia.Message, fmt.Sprint(kvapi.MAX_KEY_BYTES)) ||
				tc.field == "value" && !strings.Contains(ia.Message, fmt.Sprint(kvapi.MAX_VALUE_BYTES)) {
				t.Fatalf("message %q does not name the limit", ia.Message)
			}
		})
	}
	// The largest legal value is accepted.
	if _, err := kv.Put(ctx, 9, 1, strings.Repeat("k", kvapi.MAX_KEY_BYTES), make([]byte, kvapi.MAX_VALUE_BYTES)); err != nil {
		t.Fatalf("largest legal put: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "replicas.txt")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	os.WriteFile(good, []byte(fmt.Sprintf("1 %s %s\n", busy.Addr(), freePort(t))), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("# comment\n1 127.0.0.1:1 127.0.0.1:2\n2 nonsense\n"), 0o644)
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"malformed file", Config{ID: 1, ReplicasFile: bad, DataDir: dir + "/a"}, []string{"bad.txt:3"}},
		{"unknown id", Config{ID: 9, ReplicasFile: good, DataDir: dir + "/b"}, []string{"9", "replicas.txt"}},
		{"port in use", Config{ID: 1, ReplicasFile: good, DataDir: dir + "/c"}, []string{busy.Addr().String()}},
		{"missing file", Config{ID: 1, ReplicasFile: dir + "/none.txt", DataDir: dir + "/d"}, []string{"none.txt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), tc.cfg)
			if err == nil {
				t.Fatal("started; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// A peer request from an id outside the configuration is refused at once with an
// error naming the sender, not left to time out.
func TestPeerRequestFromNonMember(t *testing.T) {
	c := newTestCluster(t, 1)
	c.leader()
	var peerAddr string
	data, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscanf(string(data), "1 %s %s", new(string), &peerAddr)
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 5 * time.Second}
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(peerAddr, cfg), cfg)
	if err := tr.Open(); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	pc := peerapi.NewPeerClient(thrift.NewTStandardClient(p, p))
	start := time.Now()
	_, err = pc.Accept(context.Background(), &peerapi.AcceptRequest{Sender: 9, Ballot: &peerapi.Ballot{Round: 99, Replica: 9}})
	if err == nil || !strings.Contains(err.Error(), "replica 9") {
		t.Fatalf("accept from replica 9: %v; want an error naming replica 9", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("refusal took %v: it waited for a timeout", d)
	}
}
