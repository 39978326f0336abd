package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/replicas"
)

// ReconfigureResult is the configuration a Reconfigure left committed.
type ReconfigureResult struct {
	// Epoch is the configuration's epoch.
	Epoch uint64
	// Slot is the log slot whose entry carried the change: the last slot of the
	// old configuration. It is 0 when the cluster already had these members and
	// nothing changed.
	Slot uint64
	// Members are the configuration's replicas as the leader reports them (Line
	// is 0).
	Members []replicas.Replica
}

// Reconfigure asks the leader to replace the cluster's members by members, and
// returns once the new configuration is committed (idl/kv.thrift, reconfigure).
// It starts at the known leader, or the first endpoint, and follows NotLeader
// as writes do. Asking for the members the cluster already has changes nothing
// and returns the configuration in force with Slot 0.
//
// Any change is safe in one call, but to keep a majority of every configuration
// up to date, change one member at a time and let a new member catch up before
// the next change (ballot reconfigure does).
//
// Unlike a write, a request that may have reached the leader is never sent
// again: Unavailable, or a connection lost after sending, ends the call with
// ErrUnavailable. The change may or may not have been committed, or another
// change was under way; ask the replicas for their status (config_epoch and
// members) and call again.
//
// Errors wrap ErrInvalidArgument (an empty list, an id below 1, an id or
// address listed twice, an address that is not host:port, all found before
// sending; or a list the leader refused), ErrUnavailable (as above, or no
// leader answered before Config.Timeout), ErrCorrupt (the answer names no
// epoch, a negative slot or a member without an id) or ErrClosed.
func (c *Client) Reconfigure(ctx context.Context, members []replicas.Replica) (ReconfigureResult, error) {
	op := "reconfigure to members " + memberIDs(members)
	list, err := reconfigureArgs(members)
	if err != nil {
		return ReconfigureResult{}, fmt.Errorf("%s: %w", op, err)
	}
	var res *kvapi.ReconfigureResult_
	_, err = c.run(ctx, op, toLeaderOnce, func(ctx context.Context, kv *kvapi.KVClient) error {
		r, err := kv.Reconfigure(ctx, list)
		if err == nil {
			res = r
		}
		return err
	})
	if err != nil {
		return ReconfigureResult{}, err
	}
	out, err := reconfigureResult(res)
	if err != nil {
		return ReconfigureResult{}, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// reconfigureArgs checks members as every replica would, and converts them.
func reconfigureArgs(members []replicas.Replica) ([]*kvapi.ReplicaAddress, error) {
	invalid := func(format string, args ...any) error {
		return &InvalidArgumentError{Message: fmt.Sprintf(format, args...), Field: "members"}
	}
	if len(members) == 0 {
		return nil, invalid("no members: a configuration needs at least one")
	}
	ids := make(map[uint64]bool, len(members))
	addrs := make(map[string]uint64, 2*len(members))
	list := make([]*kvapi.ReplicaAddress, 0, len(members))
	for _, m := range members {
		if m.ID < 1 || m.ID > replicas.MaxID {
			return nil, invalid("member id %d: want an integer from 1 to %d", m.ID, uint64(replicas.MaxID))
		}
		if ids[m.ID] {
			return nil, invalid("member %d is listed twice", m.ID)
		}
		ids[m.ID] = true
		for _, a := range []string{m.ClientAddr, m.PeerAddr} {
			if err := checkEndpoint(a); err != nil {
				return nil, invalid("member %d: %v", m.ID, err)
			}
			if other, dup := addrs[a]; dup {
				return nil, invalid("member %d: address %s is already used by member %d", m.ID, a, other)
			}
			addrs[a] = m.ID
		}
		list = append(list, &kvapi.ReplicaAddress{ID: int64(m.ID), ClientAddr: m.ClientAddr, PeerAddr: m.PeerAddr})
	}
	return list, nil
}

// reconfigureResult converts the leader's answer, rejecting one that cannot be a
// committed configuration.
func reconfigureResult(r *kvapi.ReconfigureResult_) (ReconfigureResult, error) {
	switch {
	case r == nil:
		return ReconfigureResult{}, fmt.Errorf("%w: empty answer", ErrCorrupt)
	case r.GetEpoch() < 1:
		return ReconfigureResult{}, fmt.Errorf("%w: configuration epoch %d", ErrCorrupt, r.GetEpoch())
	case r.GetSlot() < 0:
		return ReconfigureResult{}, fmt.Errorf("%w: slot %d", ErrCorrupt, r.GetSlot())
	case len(r.GetMembers()) == 0:
		return ReconfigureResult{}, fmt.Errorf("%w: configuration %d has no members", ErrCorrupt, r.GetEpoch())
	}
	out := ReconfigureResult{Epoch: uint64(r.GetEpoch()), Slot: uint64(r.GetSlot())}
	for _, m := range r.GetMembers() {
		if m == nil || m.GetID() < 1 {
			return ReconfigureResult{}, fmt.Errorf("%w: configuration %d has a member without an id", ErrCorrupt, r.GetEpoch())
		}
		out.Members = append(out.Members, replicas.Replica{
			ID: uint64(m.GetID()), ClientAddr: m.GetClientAddr(), PeerAddr: m.GetPeerAddr(),
		})
	}
	return out, nil
}

// memberIDs lists the members' ids as "1,2,3", for error text.
func memberIDs(members []replicas.Replica) string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = strconv.FormatUint(m.ID, 10)
	}
	return strings.Join(ids, ",")
}
