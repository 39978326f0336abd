package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/replicas"
)

// portsTLS are the TLS configurations of a replica's ports; a nil one is
// plaintext.
type portsTLS struct {
	peerServer *tls.Config // the peer port
	peerClient *tls.Config // calls to the other replicas
	client     *tls.Config // the client port
}

// loadTLS loads the certificates cfg names. The peer port checks every caller
// against members at its handshake. Without peer TLS it logs the one warning
// that says the peer port trusts anyone who reaches it.
func loadTLS(cfg Config, self replicas.Replica, members tlsconfig.MemberAddrs, logger *slog.Logger) (portsTLS, error) {
	var out portsTLS
	opts := tlsconfig.Options{Logger: logger}
	peerOn, err := cfg.PeerTLS.Enabled()
	if err != nil {
		return out, err
	}
	if peerOn {
		if out.peerServer, out.peerClient, err = tlsconfig.Peer(cfg.PeerTLS, members, opts); err != nil {
			return out, fmt.Errorf("peer TLS: %w", err)
		}
		// The others would refuse it, as a server and as a caller: say so now
		// rather than through their logs. Only a warning: behind a proxy the
		// others may reach this replica by another name than its own file gives.
		leaf := out.peerServer.Certificates[0].Leaf
		if host, _, err := net.SplitHostPort(self.PeerAddr); err == nil && leaf.VerifyHostname(host) != nil {
			logger.Warn("the peer certificate is not valid for this replica's peer host: the other replicas will refuse it",
				"file", cfg.PeerTLS.Cert, "peer_addr", self.PeerAddr, "dns_names", leaf.DNSNames, "ip_addresses", leaf.IPAddresses)
		}
		logger.Info("peer port: mutual TLS", "cert", cfg.PeerTLS.Cert, "ca", cfg.PeerTLS.CA)
	} else {
		logger.Warn(fmt.Sprintf("peer port is not authenticated: anyone who can reach %s can vote; see docs/security.md", self.PeerAddr))
	}
	clientOn, err := cfg.ClientTLS.Enabled()
	if err != nil {
		return out, err
	}
	if clientOn {
		if out.client, err = tlsconfig.ClientPortServer(cfg.ClientTLS, opts); err != nil {
			return out, fmt.Errorf("client TLS: %w", err)
		}
		logger.Info("client port: TLS", "cert", cfg.ClientTLS.Cert, "client_ca", cfg.ClientTLS.ClientCA)
	}
	return out, nil
}

// peerAddrsOf lists the peer addresses of m's members.
func peerAddrsOf(m membership) []string {
	addrs := make([]string, len(m.members))
	for i, r := range m.members {
		addrs[i] = r.PeerAddr
	}
	return addrs
}

// liveMembers returns the peer addresses of the members of the configuration
// the running replica is in at each call, for the peer port's handshakes: a
// replica added is accepted once this replica has applied the change, one
// removed is refused from its next connection on. Before the node runs it
// answers with starting, the configuration the replica starts from (its
// replicas file, for one that starts new). A replica that has no
// configuration yet (it waits to be added, and its file need not list the
// member that will contact it) answers nil: any replica certificate.
func liveMembers(live *atomic.Pointer[node], starting []string) tlsconfig.MemberAddrs {
	return func() []string {
		n := live.Load()
		if n == nil {
			return starting
		}
		mem := n.state.Load().mem
		if mem.epoch == 0 {
			return nil
		}
		return peerAddrsOf(mem)
	}
}
