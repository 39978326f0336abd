package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/replicas"
)

func members(ids ...uint64) []replicas.Replica {
	out := make([]replicas.Replica, len(ids))
	for i, id := range ids {
		out[i] = replicas.Replica{ID: id,
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", 7000+id), PeerAddr: fmt.Sprintf("127.0.0.1:%d", 8000+id)}
	}
	return out
}

// reconfigures returns the reconfigure calls among calls.
func reconfigures(calls []kvtest.Call) []kvtest.Call {
	var out []kvtest.Call
	for _, c := range calls {
		if c.Method == "reconfigure" {
			out = append(out, c)
		}
	}
	return out
}

func TestReconfigure(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()

	res, err := c.Reconfigure(ctx, members(1, 2, 3, 4))
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if res.Epoch != 1 || res.Slot != 1 || fmt.Sprint(res.Members) != fmt.Sprint(members(1, 2, 3, 4)) {
		t.Errorf("Reconfigure = %+v, want epoch 1, slot 1 and members 1-4", res)
	}
	sent := srv.Reconfigures()
	if len(sent) != 1 || len(sent[0]) != 4 || sent[0][3].ID != 4 ||
		sent[0][3].ClientAddr != "127.0.0.1:7004" || sent[0][3].PeerAddr != "127.0.0.1:8004" {
		t.Fatalf("server received %v", sent)
	}
	// The same members again change nothing: the configuration in force, slot 0.
	res, err = c.Reconfigure(ctx, members(1, 2, 3, 4))
	if err != nil || res.Epoch != 1 || res.Slot != 0 || len(res.Members) != 4 {
		t.Errorf("Reconfigure to the same members = %+v, %v; want epoch 1, slot 0", res, err)
	}
	if c.Leader() != srv.Addr() {
		t.Errorf("Leader() = %q, want %q", c.Leader(), srv.Addr())
	}
}

func TestReconfigureFollowsNotLeader(t *testing.T) {
	follower, leader := kvtest.Start(t), kvtest.Start(t)
	follower.SetHook(func(context.Context, kvtest.Call) error {
		return &kvapi.NotLeader{LeaderAddr: leader.Addr(), LeaderID: 2}
	})
	c := newClient(t, 0, follower.Addr())
	res, err := c.Reconfigure(context.Background(), members(1, 2))
	if err != nil || res.Epoch != 1 {
		t.Fatalf("Reconfigure = %+v, %v; want epoch 1 from the leader", res, err)
	}
	if f, l := reconfigures(follower.Calls()), reconfigures(leader.Calls()); len(f) != 1 || len(l) != 1 || l[0].Members != "1,2" {
		t.Errorf("follower saw %v, leader %v; want one call each", f, l)
	}
	if c.Leader() != leader.Addr() {
		t.Errorf("Leader() = %q, want the leader %q", c.Leader(), leader.Addr())
	}
}

// Unavailable may mean the change was made, or another is under way: it goes
// back to the caller, who reads status before asking again, and no other
// endpoint is tried.
func TestReconfigureUnavailableIsReturned(t *testing.T) {
	busy, other := kvtest.Start(t), kvtest.Start(t)
	busy.SetHook(func(context.Context, kvtest.Call) error {
		return &kvapi.Unavailable{Message: "another change is under way"}
	})
	c := newClient(t, 5*time.Second, busy.Addr(), other.Addr())
	start := time.Now()
	_, err := c.Reconfigure(context.Background(), members(1, 2, 3))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "another change is under way") ||
		!strings.Contains(err.Error(), busy.Addr()) {
		t.Fatalf("Reconfigure = %v, want ErrUnavailable with the replica's message and address", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Reconfigure took %s: Unavailable was retried", elapsed)
	}
	if n, m := len(reconfigures(busy.Calls())), len(other.Calls()); n != 1 || m != 0 {
		t.Errorf("calls: %d at the replica that answered Unavailable, %d elsewhere; want 1 and 0", n, m)
	}
}

// A connection lost after sending leaves the outcome unknown, like Unavailable.
func TestReconfigureLostConnectionIsReturned(t *testing.T) {
	srv, other := kvtest.Start(t), kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error {
		srv.DropConns()
		return errors.New("dropped")
	})
	c := newClient(t, 5*time.Second, srv.Addr(), other.Addr())
	_, err := c.Reconfigure(context.Background(), members(1))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Reconfigure = %v, want ErrUnavailable", err)
	}
	if n := len(other.Calls()); n != 0 {
		t.Errorf("the next endpoint got %d calls after the request may have been acted on", n)
	}
}

// An endpoint that cannot be reached never got the request: the next is tried.
func TestReconfigureSkipsUnreachableEndpoint(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, deadAddr(t), srv.Addr())
	if _, err := c.Reconfigure(context.Background(), members(1, 2, 3)); err != nil {
		t.Fatalf("Reconfigure with the first endpoint down: %v", err)
	}
}

func TestReconfigureInvalidArgument(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	ctx := context.Background()
	dupAddr := members(1, 2)
	dupAddr[1].PeerAddr = dupAddr[0].ClientAddr
	badAddr := members(1)
	badAddr[0].PeerAddr = "no-port"
	cases := []struct {
		name    string
		members []replicas.Replica
		want    string
	}{
		{"empty", nil, "no members"},
		{"id 0", []replicas.Replica{{ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001"}}, "member id 0"},
		{"id twice", append(members(1, 2), members(2)...), "member 2 is listed twice"},
		{"address twice", dupAddr, "already used by member 1"},
		{"bad address", badAddr, "no-port"},
	}
	for _, tc := range cases {
		_, err := c.Reconfigure(ctx, tc.members)
		var invalid *InvalidArgumentError
		if !errors.As(err, &invalid) || invalid.Field != "members" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an InvalidArgumentError for members mentioning %q", tc.name, err, tc.want)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("server saw %d calls for lists it would refuse", n)
	}

	// The leader's refusal is final too, and keeps its message.
	srv.SetHook(func(context.Context, kvtest.Call) error {
		return &kvapi.InvalidArgument{Message: "a configuration needs 1 to 64 members, got 65", Field: "members", Limit: 64}
	})
	_, err := c.Reconfigure(ctx, members(1))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "got 65") {
		t.Errorf("Reconfigure refused by the leader = %v", err)
	}
	if n := len(reconfigures(srv.Calls())); n != 1 {
		t.Errorf("server saw %d reconfigure calls, want 1 (InvalidArgument is final)", n)
	}
}

func TestReconfigureCorruptAnswer(t *testing.T) {
	srv := kvtest.Start(t)
	c := newClient(t, 0, srv.Addr())
	for _, r := range []*kvapi.ReconfigureResult_{
		{Epoch: 0, Slot: 3, Members: []*kvapi.ReplicaAddress{{ID: 1}}},
		{Epoch: 2, Slot: -1, Members: []*kvapi.ReplicaAddress{{ID: 1}}},
		{Epoch: 2, Slot: 3},
		{Epoch: 2, Slot: 3, Members: []*kvapi.ReplicaAddress{{ID: 0}}},
	} {
		srv.SetReconfigureResult(r)
		if _, err := c.Reconfigure(context.Background(), members(1)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("answer %v: Reconfigure = %v, want ErrCorrupt", r, err)
		}
	}
}
