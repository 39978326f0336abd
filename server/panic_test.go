package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/transport"
)

// kvConn is a raw Thrift client of the client service with its connection, so a
// test can see the server close it.
type kvConn struct {
	*kvapi.KVClient
	conn net.Conn
}

func dialKVConn(t *testing.T, addr string) *kvConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfg := &thrift.TConfiguration{SocketTimeout: 5 * time.Second}
	p := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(thrift.NewTSocketFromConnConf(conn, cfg), cfg), cfg)
	return &kvConn{KVClient: kvapi.NewKVClient(thrift.NewTStandardClient(p, p)), conn: conn}
}

// expectClosedByServer fails the test unless the server has closed c.
func expectClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) || err == nil {
		t.Fatalf("the server kept the connection open: %v", err)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read from the connection: %v, want it closed by the server", err)
	}
}

// putGet writes key and reads it back (linearizable) on kv.
func putGet(t *testing.T, kv *kvConn, clientID, seq int64, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := kv.Put(ctx, clientID, seq, key, []byte(key))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	r, err := kv.Get(ctx, key, kvapi.Consistency_LINEARIZABLE)
	if err != nil || string(r.GetValue()) != key {
		t.Fatalf("get %s: %v, %v", key, r, err)
	}
	return w.Slot
}

// TestHandlerPanicLeavesReplicaServing makes one client request and one peer
// request panic in a running replica: only the connection it came on closes, the
// panic is logged with its stack, and the replica goes on serving on its other
// connections and on new ones.
func TestHandlerPanicLeavesReplicaServing(t *testing.T) {
	const panicKey = "panic-in-the-handler"
	const panicSender = 77 // no replica has this id
	logs := map[uint64]*logBuffer{}
	c := newTestClusterWith(t, 3, func(id uint64, cfg *Config) {
		logs[id] = &logBuffer{}
		cfg.Logger = slog.New(slog.NewTextHandler(logs[id], &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg.hooks = &testHooks{
			clientRequest: func(method, key string) {
				if key == panicKey {
					panic("test hook: " + method + " of " + key)
				}
			},
			peerRequest: func(m peer.Message) {
				if m.From == panicSender {
					panic("test hook: peer request from replica 77")
				}
			},
		}
	})
	defer func() {
		if t.Failed() {
			for id, l := range logs {
				t.Logf("replica %d's log:\n%s", id, l)
			}
		}
	}()
	lead := c.leader()
	const clientID = 4242
	other := dialKVConn(t, c.addrs[lead])
	putGet(t, other, clientID, 1, "before")

	t.Run("client port", func(t *testing.T) {
		victim := dialKVConn(t, c.addrs[lead])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := victim.Put(ctx, clientID, 2, panicKey, []byte("boom"))
		var te thrift.TTransportException
		if !errors.As(err, &te) {
			t.Fatalf("put of the panicking key: %T %v, want the connection to fail", err, err)
		}
		expectClosedByServer(t, victim.conn)
		log := logs[lead].String()
		for _, want := range []string{"request handler panicked", "test hook: put of " + panicKey, "goroutine ", "(*kvHandler).Put"} {
			if !strings.Contains(log, want) {
				t.Errorf("the leader's log lacks %q:\n%s", want, log)
			}
		}
		// The connection opened before the panic, and a new one, still work.
		putGet(t, other, clientID, 3, "after-on-old-connection")
		putGet(t, dialKVConn(t, c.addrs[lead]), clientID, 4, "after-on-new-connection")
	})

	t.Run("peer port", func(t *testing.T) {
		var follower uint64
		for id := range c.addrs {
			if id != lead {
				follower = id
				break
			}
		}
		pc := transport.NewPeerClient(c.peerAddrs[follower], transport.ClientOptions{})
		defer pc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := pc.Call(ctx, peer.Message{Type: peer.MsgPrepare, From: panicSender, Ballot: peer.Ballot{Round: 1, ID: panicSender}}); err == nil {
			t.Fatal("a peer request whose handler panicked succeeded")
		}
		log := logs[follower].String()
		for _, want := range []string{"request handler panicked", "port=peer", "test hook: peer request from replica 77", "goroutine ", "onPeerRequest"} {
			if !strings.Contains(log, want) {
				t.Errorf("replica %d's log lacks %q:\n%s", follower, want, log)
			}
		}
		// The leader's connections to the follower's peer port carry on: it
		// applies what is written from now on.
		slot := putGet(t, other, clientID, 5, "after-peer-panic")
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := rawStatus(c.addrs[follower])
			if err == nil && st.Applied >= slot {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not apply slot %d after the panic on its peer port: %+v, %v", follower, slot, st, err)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	})
}
