package server

import (
	"context"

	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/transport"
)

// testHooks let this package's tests reach into a running replica, to make one
// request panic for instance. Only they can set Config.hooks (it is
// unexported); in a replica ballotd runs it is nil and each hook point costs a
// comparison.
type testHooks struct {
	// clientRequest runs first in every get, put and remove, with the method's
	// name and the key.
	clientRequest func(method, key string)
	// peerRequest runs first in every Paxos request from another replica,
	// before the node sees it.
	peerRequest func(m peer.Message)
	// inquire runs before a replica starting without state asks another,
	// named by id, whether the cluster has history.
	inquire func(to uint64)
}

func (h *testHooks) onClientRequest(method, key string) {
	if h != nil && h.clientRequest != nil {
		h.clientRequest(method, key)
	}
}

// hookedInquirer runs testHooks.inquire before each Inquire.
type hookedInquirer struct {
	inquirer
	to    uint64
	hooks *testHooks
}

func (h hookedInquirer) Inquire(ctx context.Context, from uint64) (transport.Inquiry, error) {
	h.hooks.inquire(h.to)
	return h.inquirer.Inquire(ctx, from)
}

func (h *testHooks) onPeerRequest(m peer.Message) {
	if h != nil && h.peerRequest != nil {
		h.peerRequest(m)
	}
}
