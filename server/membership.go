package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/replicas"
)

// membership is the committed configuration a replica follows: the members the
// cluster agreed on, numbered by an epoch. It is stored in the store (and so in
// every snapshot) as a Thrift-encoded peerapi.Configuration.
type membership struct {
	epoch   uint64
	members []replicas.Replica // sorted by id
}

func (m membership) ids() []uint64 {
	ids := make([]uint64, len(m.members))
	for i, r := range m.members {
		ids[i] = r.ID
	}
	return ids
}

func (m membership) find(id uint64) (replicas.Replica, bool) {
	for _, r := range m.members {
		if r.ID == id {
			return r, true
		}
	}
	return replicas.Replica{}, false
}

func encodeMembership(m membership) ([]byte, error) {
	c := &peerapi.Configuration{Epoch: int64(m.epoch)}
	for _, r := range m.members {
		c.Members = append(c.Members, &peerapi.Member{ID: int64(r.ID), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr})
	}
	b, err := thrift.NewTSerializer().Write(context.Background(), c)
	if err != nil {
		return nil, fmt.Errorf("encode configuration: %w", err)
	}
	return b, nil
}

func decodeMembership(b []byte) (membership, error) {
	c := peerapi.NewConfiguration()
	if err := thrift.NewTDeserializer().Read(context.Background(), c, b); err != nil {
		return membership{}, fmt.Errorf("decode configuration: %w", err)
	}
	if c.Epoch <= 0 || len(c.Members) == 0 {
		return membership{}, fmt.Errorf("decode configuration: epoch %d with %d members", c.Epoch, len(c.Members))
	}
	m := membership{epoch: uint64(c.Epoch)}
	seen := map[int64]bool{}
	for _, r := range c.Members {
		if r == nil || r.ID <= 0 || seen[r.ID] || r.ClientAddr == "" || r.PeerAddr == "" {
			return membership{}, fmt.Errorf("decode configuration: bad member %+v", r)
		}
		seen[r.ID] = true
		m.members = append(m.members, replicas.Replica{ID: uint64(r.ID), ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr})
	}
	slices.SortFunc(m.members, func(a, b replicas.Replica) int { return compareIDs(a.ID, b.ID) })
	return m, nil
}

func compareIDs(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// membershipDiff lists, one line each, how the replicas file differs from the
// committed configuration.
func membershipDiff(committed membership, file []replicas.Replica) []string {
	var out []string
	inFile := map[uint64]replicas.Replica{}
	for _, r := range file {
		inFile[r.ID] = r
		c, ok := committed.find(r.ID)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("replica %d (%s, %s) is in the file but not a member", r.ID, r.ClientAddr, r.PeerAddr))
		case c.ClientAddr != r.ClientAddr || c.PeerAddr != r.PeerAddr:
			out = append(out, fmt.Sprintf("replica %d is at %s, %s in the file but %s, %s in the configuration",
				r.ID, r.ClientAddr, r.PeerAddr, c.ClientAddr, c.PeerAddr))
		}
	}
	for _, c := range committed.members {
		if _, ok := inFile[c.ID]; !ok {
			out = append(out, fmt.Sprintf("member %d (%s, %s) is missing from the file", c.ID, c.ClientAddr, c.PeerAddr))
		}
	}
	return out
}

// withFileAddresses returns m with the addresses of every member that file also
// lists taken from file. The configuration decides who votes; each replica's
// own file says how it reaches the others (and where it listens itself), since
// files may differ in addresses, as behind proxies or NAT.
func withFileAddresses(m membership, file []replicas.Replica) membership {
	out := membership{epoch: m.epoch, members: slices.Clone(m.members)}
	for i, r := range out.members {
		for _, f := range file {
			if f.ID == r.ID {
				out.members[i].ClientAddr, out.members[i].PeerAddr = f.ClientAddr, f.PeerAddr
			}
		}
	}
	return out
}
