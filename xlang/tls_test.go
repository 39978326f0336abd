package xlang

import (
	"os"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/internal/certs"
	"github.com/ballot-kv/ballot/replicas"
)

// refusedTimeout is the --timeout of a client run that must be refused: it
// retries until then, so it bounds how long each such run takes.
const refusedTimeout = "3"

// TestTLSCluster runs the Python and C++ clients against a cluster whose replicas
// talk to each other over mutual TLS and serve clients over TLS that requires a
// client certificate, all issued by a CA from internal/certs: with the client
// certificate they write, read and delete, starting from a follower; without
// TLS, without a certificate or with a certificate from another CA they are
// refused and write nothing.
func TestTLSCluster(t *testing.T) {
	c := startClusterWith(t, 3, clusterOptions{withTLS: true})
	// The peer flags took: without them a replica warns at start that anyone who
	// reaches its peer port can vote.
	for _, r := range c.reps {
		log, err := os.ReadFile(r.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(log), "peer port is not authenticated") {
			t.Errorf("replica %d runs its peer port without TLS; its log:\n%s", r.id, tail(log, 3000))
		}
	}
	withCert := func(eps string, args ...string) []string {
		return append(c.clientTLSArgs(), liveArgs(eps, args...)...)
	}

	t.Run("python and c++ over TLS", func(t *testing.T) {
		langPython.need(t)
		langCpp.need(t)
		// A follower first: the clients follow NotLeader to the leader and check
		// its certificate for the address NotLeader gave.
		eps := c.endpoints(c.follower(c.waitLeader(t)))
		const key = "xlang/tls/colour"
		fromPython := []byte("from python over TLS: \x00\xff\n")

		wantWrite(t, "python put", langPython.run(t, fromPython, withCert(eps, "put", key, "-")...), false)
		wantValue(t, "c++ get of python's value", langCpp.run(t, nil, withCert(eps, "get", key)...), fromPython)
		wantWrite(t, "c++ put over python's value", langCpp.run(t, nil, withCert(eps, "put", key, "from c++")...), true)
		wantValue(t, "python get of c++'s value", langPython.run(t, nil, withCert(eps, "get", key)...), []byte("from c++"))
		wantWrite(t, "python delete", langPython.run(t, nil, withCert(eps, "delete", key)...), true)
		wantNotFound(t, "c++ get after the delete", langCpp.run(t, nil, withCert(eps, "get", key)...), key)
	})

	// A second CA, as another cluster's `ballot certs` would make: its client
	// certificate must not open this cluster.
	var list []replicas.Replica
	for _, r := range c.reps {
		list = append(list, replicas.Replica{ID: uint64(r.id), ClientAddr: r.clientAddr, PeerAddr: r.peerAddr})
	}
	other, err := certs.Generate(t.TempDir(), list, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}

	for _, l := range []*lang{langPython, langCpp} {
		t.Run(l.name+" refused", func(t *testing.T) {
			l.need(t)
			eps := strings.Join(c.allAddrs(), ",")
			for _, tc := range []struct {
				what string
				tls  []string
			}{
				{"without TLS", nil},
				{"without a client certificate", []string{"--cacert", c.certs.CA}},
				{"with a client certificate from another CA", []string{"--cacert", c.certs.CA, "--cert", other.Client.Cert, "--key", other.Client.Key}},
			} {
				key := "xlang/tls/refused/" + l.name + "/" + strings.ReplaceAll(tc.what, " ", "-")
				args := append(append([]string{}, tc.tls...), "--endpoints", eps, "--timeout", refusedTimeout, "put", key, "v")
				r := l.run(t, nil, args...)
				if r.code != 4 || r.stdout != "" || !strings.HasPrefix(r.stderr, "GaveUp: ") {
					t.Errorf("put %s: %v; want exit 4, no output and GaveUp", tc.what, r)
				}
				// The cluster is up, and the refused put wrote nothing.
				wantNotFound(t, "get with the client certificate after a put "+tc.what,
					l.run(t, nil, withCert(eps, "get", key)...), key)
			}
		})
	}
}
