package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// A leader serves linearizable reads under a lease. Paused (SIGSTOP) for longer
// than its lease while the others elect a new leader and acknowledge a write, it
// must not answer a read from its old state when it wakes, although the read is
// the first thing it takes in and it has not yet heard that it was deposed: its
// lease is measured with its clock, which ran on while it slept, not with the
// ticks it missed.
//
// With --read-lease=false the same holds through a heartbeat round per read.
func TestPausedLeaderServesNoStaleRead(t *testing.T) {
	for _, mode := range []struct{ name, flag string }{
		{"lease", "--read-lease=true"},
		{"round per read", "--read-lease=false"},
	} {
		t.Run(mode.name, func(t *testing.T) { pausedLeaderServesNoStaleRead(t, mode.flag) })
	}
}

func pausedLeaderServesNoStaleRead(t *testing.T, flag string) {
	c := newClusterWith(t, 3, flag)
	old := c.waitLeader()
	ctx := context.Background()
	if _, err := c.client(5*time.Second).Put(ctx, "lease-key", []byte("before")); err != nil {
		t.Fatalf("put before: %v", err)
	}

	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 20 * time.Second}
	sock, err := openKVSocket(c.rep(old).clientAddr, cfg, envTLS.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	proto := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
	call := thrift.NewTStandardClient(proto, proto)
	// read sends a linearizable get, calls afterSend (if any) once the request
	// is written, and reads the answer.
	read := func(seq int32, afterSend func()) (*kvapi.KVGetResult, error) {
		args := &kvapi.KVGetArgs{Key: "lease-key", Consistency: kvapi.Consistency_LINEARIZABLE}
		if err := call.Send(ctx, proto, seq, "get", args); err != nil {
			return nil, err
		}
		if afterSend != nil {
			afterSend()
		}
		res := kvapi.NewKVGetResult()
		err := call.Recv(ctx, proto, seq, "get", res)
		return res, err
	}
	// Through the connection to come: the old leader reads "before" itself.
	res, err := read(1, nil)
	if err != nil || res.Success == nil || string(res.Success.Value) != "before" {
		t.Fatalf("linearizable read at the leader: %+v, %v", res, err)
	}

	c.pause(old)
	resumed := false
	defer func() {
		if !resumed {
			c.resume(old)
		}
	}()
	rest := others(c.ids(), old)
	c.waitLeader(rest...)
	if _, err := c.client(5*time.Second, rest...).Put(ctx, "lease-key", []byte("after")); err != nil {
		t.Fatalf("put to the new leader: %v", err)
	}

	// The request is written while the old leader sleeps; it wakes to it.
	res, err = read(2, func() {
		c.resume(old)
		resumed = true
	})
	if err != nil {
		t.Fatalf("read at the woken leader: %v", err)
	}
	switch {
	case res.Success != nil && string(res.Success.Value) == "before":
		t.Fatal("the deposed leader answered a linearizable read with the value the new leader had overwritten")
	case res.Success != nil && string(res.Success.Value) != "after":
		t.Fatalf("read %q, want \"after\" or a refusal", res.Success.Value)
	case res.Success == nil && res.NotLeader == nil && res.Unavailable == nil:
		t.Fatalf("unexpected answer %+v", res)
	}
	t.Logf("the woken leader answered %s", describeGet(res))
}

func describeGet(res *kvapi.KVGetResult) string {
	switch {
	case res.Success != nil:
		return "value " + string(res.Success.Value)
	case res.NotLeader != nil:
		return "NotLeader"
	case res.Unavailable != nil:
		return "Unavailable: " + res.Unavailable.GetMessage()
	}
	return "nothing"
}
