package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
)

// kvHandler adapts the client service of idl/kv.thrift to the node: it checks
// arguments, converts types, and turns node errors into the IDL's exceptions.
type kvHandler struct {
	node    *node
	self    replicas.Replica
	timeout timeoutFunc
	store   Storage
	faults  faults
	snaps   *snapshotFiles
	dataDir string
	digest  func() (applied uint64, keys int64, sum [32]byte, err error)
	hooks   *testHooks // nil but in this package's tests
}

type timeoutFunc func(ctx context.Context) (context.Context, context.CancelFunc)

var _ kvapi.KV = (*kvHandler)(nil)

func invalid(field string, limit int64, format string, args ...any) error {
	return &kvapi.InvalidArgument{Message: fmt.Sprintf(format, args...), Field: field, Limit: limit}
}

func checkKey(key string) error {
	switch {
	case key == "":
		return invalid("key", 0, "key is empty; keys must be 1 to %d bytes", kvapi.MAX_KEY_BYTES)
	case len(key) > kvapi.MAX_KEY_BYTES:
		return invalid("key", kvapi.MAX_KEY_BYTES, "key is %d bytes; the limit is %d bytes", len(key), kvapi.MAX_KEY_BYTES)
	case !utf8.ValidString(key):
		return invalid("key", 0, "key is not valid UTF-8")
	}
	return nil
}

func checkWriter(clientID, seq int64) error {
	switch {
	case clientID < 0:
		return invalid("client_id", 0, "client_id %d is negative", clientID)
	case seq < 0 || (clientID != 0 && seq == 0):
		return invalid("seq", 0, "seq must be positive, got %d", seq)
	}
	return nil
}

// leaderError turns a node error into the IDL exception a client acts on.
func (h *kvHandler) leaderError(err error) error {
	if errors.Is(err, errNotLeader) {
		ns := h.node.state.Load()
		st := ns.status
		nl := &kvapi.NotLeader{Message: fmt.Sprintf("replica %d does not lead", h.self.ID)}
		l, ok := ns.mem.find(st.Leader)
		switch {
		case ns.member && ok && st.Leader != h.self.ID:
			nl.LeaderAddr = l.ClientAddr
			nl.LeaderID = int64(l.ID)
			nl.Message += fmt.Sprintf("; replica %d at %s does", l.ID, l.ClientAddr)
		case !ns.member && len(ns.mem.members) > 0:
			// Not a member: send the client to one that is; it knows the leader.
			m := ns.mem.members[0]
			nl.LeaderAddr = m.ClientAddr
			nl.LeaderID = int64(m.ID)
			nl.Message += fmt.Sprintf("; it is not a member of configuration %d, replica %d at %s is",
				ns.mem.epoch, m.ID, m.ClientAddr)
		default:
			nl.Message += "; no leader is known yet"
		}
		return nl
	}
	// Unavailable, stopping, or anything else: the write may or may not have
	// been applied, and a retry with the same (client id, seq) is safe.
	return &kvapi.Unavailable{Message: fmt.Sprintf("replica %d: %v", h.self.ID, err)}
}

func (h *kvHandler) Get(ctx context.Context, key string, consistency kvapi.Consistency) (*kvapi.GetResult_, error) {
	h.hooks.onClientRequest("get", key)
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var (
		v     []byte
		found bool
		err   error
	)
	switch consistency {
	case kvapi.Consistency_STALE:
		v, found, err = h.store.Get(key)
	case kvapi.Consistency_LINEARIZABLE:
		if h.faults.localReads {
			v, found, err = h.store.Get(key)
			break
		}
		var served bool
		if v, found, served, err = leaseRead(&h.node.lease, h.store, key); served {
			break
		}
		ctx, cancel := h.timeout(ctx)
		defer cancel()
		v, found, err = h.node.read(ctx, key)
	default:
		return nil, invalid("consistency", 0, "unknown consistency %d", consistency)
	}
	if err != nil {
		return nil, h.leaderError(err)
	}
	if !found {
		return nil, &kvapi.NotFound{Key: key}
	}
	return &kvapi.GetResult_{Value: v, Applied: int64(h.store.Applied())}, nil
}

func (h *kvHandler) Put(ctx context.Context, clientID, seq int64, key string, value []byte) (*kvapi.WriteResult_, error) {
	h.hooks.onClientRequest("put", key)
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if len(value) > kvapi.MAX_VALUE_BYTES {
		return nil, invalid("value", kvapi.MAX_VALUE_BYTES, "value is %d bytes; the limit is %d bytes", len(value), kvapi.MAX_VALUE_BYTES)
	}
	if value == nil {
		value = []byte{}
	}
	return h.write(ctx, clientID, seq, command.Command{Op: command.OpPut, Key: key, Value: value})
}

func (h *kvHandler) Remove(ctx context.Context, clientID, seq int64, key string) (*kvapi.WriteResult_, error) {
	h.hooks.onClientRequest("remove", key)
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return h.write(ctx, clientID, seq, command.Command{Op: command.OpRemove, Key: key})
}

func (h *kvHandler) write(ctx context.Context, clientID, seq int64, cmd command.Command) (*kvapi.WriteResult_, error) {
	if err := checkWriter(clientID, seq); err != nil {
		return nil, err
	}
	cmd.ClientID, cmd.Seq = uint64(clientID), uint64(seq)
	ctx, cancel := h.timeout(ctx)
	defer cancel()
	res, err := h.node.propose(ctx, cmd)
	if err != nil {
		return nil, h.leaderError(err)
	}
	return &kvapi.WriteResult_{Slot: int64(res.Slot), Existed: res.Existed}, nil
}

func (h *kvHandler) Status(ctx context.Context) (*kvapi.ReplicaStatus, error) {
	ns := h.node.state.Load()
	st := ns.status
	members := make([]int64, 0, len(ns.mem.members))
	if ns.mem.epoch != 0 {
		// (A joining replica knows no configuration yet, only its file.)
		for _, m := range ns.mem.ids() {
			members = append(members, int64(m))
		}
	}
	return &kvapi.ReplicaStatus{
		ID:              int64(h.self.ID),
		ClientAddr:      h.self.ClientAddr,
		PeerAddr:        h.self.PeerAddr,
		IsLeader:        st.IsLeader,
		LeaderID:        int64(st.Leader),
		Ballot:          st.Promised.String(),
		Applied:         int64(h.store.Applied()),
		Chosen:          int64(st.Chosen),
		LogEntries:      int64(h.store.LogEntries()),
		Keys:            int64(h.store.Keys()),
		Members:         members,
		SnapshotIndex:   int64(h.snaps.Latest().Index),
		Compacted:       int64(st.Compacted),
		DiskBytes:       dirBytes(h.dataDir),
		ConfigEpoch:     int64(ns.mem.epoch),
		Member:          ns.member,
		MemberAddresses: h.committedAddresses(),
	}, nil
}

// Digest hashes this replica's whole key space (the layout is in the IDL).
func (h *kvHandler) Digest(context.Context) (*kvapi.Digest, error) {
	applied, keys, sum, err := h.digest()
	if err != nil {
		return nil, h.leaderError(err)
	}
	return &kvapi.Digest{Applied: int64(applied), Keys: keys, Sha256: sum[:]}, nil
}

// Backup serves a snapshot taken for the caller (index 0) in chunks.
func (h *kvHandler) Backup(ctx context.Context, index, offset int64, maxBytes int32) (*kvapi.BackupChunk, error) {
	switch {
	case index < 0:
		return nil, invalid("index", 0, "index must not be negative, got %d", index)
	case offset < 0:
		return nil, invalid("offset", 0, "offset must not be negative, got %d", offset)
	case index == 0 && offset != 0:
		return nil, invalid("offset", 0, "a new backup starts at offset 0, got %d", offset)
	case maxBytes < 1:
		return nil, invalid("max_bytes", 1, "max_bytes must be at least 1, got %d", maxBytes)
	}
	var info store.SnapshotInfo
	if index == 0 {
		var err error
		if info, err = h.snaps.take(); err != nil {
			return nil, h.leaderError(err)
		}
	} else if info = h.snaps.lookup(uint64(index)); info.Index != uint64(index) {
		return nil, h.leaderError(fmt.Errorf("snapshot %d is no longer held (the latest is %d): start again with index 0",
			index, info.Index))
	}
	if offset > info.Size {
		return nil, invalid("offset", info.Size, "offset %d is beyond the snapshot's %d bytes", offset, info.Size)
	}
	ch, err := readChunk(info, offset, int(min(maxBytes, kvapi.MAX_VALUE_BYTES)))
	if err != nil {
		return nil, h.leaderError(err)
	}
	return &kvapi.BackupChunk{Index: int64(ch.Index), Size: ch.Size, Checksum: ch.Sum[:], Offset: ch.Offset, Data: ch.Data}, nil
}

// Reconfigure asks the leader to change the members (see node.reconfigure).
func (h *kvHandler) Reconfigure(ctx context.Context, members []*kvapi.ReplicaAddress) (*kvapi.ReconfigureResult_, error) {
	want, err := checkMembers(members)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.timeout(ctx)
	defer cancel()
	mem, slot, err := h.node.reconfigure(ctx, want)
	if err != nil {
		return nil, h.leaderError(err)
	}
	out := &kvapi.ReconfigureResult_{Epoch: int64(mem.epoch), Slot: int64(slot)}
	for _, r := range mem.members {
		out.Members = append(out.Members, &kvapi.ReplicaAddress{ID: int64(r.ID), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr})
	}
	return out, nil
}

// checkMembers validates a requested configuration: 1 to 64 members, positive
// ids, no id or address twice.
func checkMembers(members []*kvapi.ReplicaAddress) ([]replicas.Replica, error) {
	if len(members) == 0 || len(members) > 64 {
		return nil, invalid("members", 64, "a configuration needs 1 to 64 members, got %d", len(members))
	}
	ids := map[int64]bool{}
	addrs := map[string]bool{}
	out := make([]replicas.Replica, 0, len(members))
	for _, m := range members {
		switch {
		case m == nil || m.ID <= 0:
			return nil, invalid("members", 0, "every member needs an id of 1 or more")
		case m.ClientAddr == "" || m.PeerAddr == "":
			return nil, invalid("members", 0, "member %d needs a client and a peer address", m.ID)
		case ids[m.ID]:
			return nil, invalid("members", 0, "member %d is listed twice", m.ID)
		case addrs[m.ClientAddr] || addrs[m.PeerAddr] || m.ClientAddr == m.PeerAddr:
			return nil, invalid("members", 0, "member %d reuses an address listed before (%s, %s)", m.ID, m.ClientAddr, m.PeerAddr)
		}
		ids[m.ID], addrs[m.ClientAddr], addrs[m.PeerAddr] = true, true, true
		out = append(out, replicas.Replica{ID: uint64(m.ID), ClientAddr: m.ClientAddr, PeerAddr: m.PeerAddr})
	}
	slices.SortFunc(out, func(a, b replicas.Replica) int { return compareIDs(a.ID, b.ID) })
	return out, nil
}

// committedAddresses lists the committed configuration's members with the
// addresses it records (not this replica's file's), for tools that plan changes.
func (h *kvHandler) committedAddresses() []*kvapi.ReplicaAddress {
	data, err := h.store.Config()
	if err != nil || data == nil {
		return nil
	}
	m, err := decodeMembership(data)
	if err != nil {
		return nil
	}
	out := make([]*kvapi.ReplicaAddress, 0, len(m.members))
	for _, r := range m.members {
		out = append(out, &kvapi.ReplicaAddress{ID: int64(r.ID), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr})
	}
	return out
}
