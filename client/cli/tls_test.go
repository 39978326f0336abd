package cli

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/internal/tlsconfig/tlstest"
)

// commandsThatConnect runs each command that talks to the cluster once, with
// the global flags before it.
func commandsThatConnect(dir string) [][]string {
	return [][]string{
		{"put", "k", "v"}, {"get", "k"}, {"get", "--stale", "k"}, {"delete", "k"}, {"status"}, {"digest"},
		{"reconfigure", "--dry-run"}, {"snapshot", "save", filepath.Join(dir, "backup.snap")},
		{"bench", "--keys", "2", "--clients", "1", "--duration", "100ms", "--warmup", "0s"},
	}
}

// TestTLSFlagsReachEveryCommand runs every command against a replica whose
// certificate comes from another CA than --cacert: each must fail at the TLS
// handshake, which only a command that uses the flags gets to.
func TestTLSFlagsReachEveryCommand(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "test CA"), tlstest.NewCA(t, "test CA")
	caFile := ca.WriteCA(t, dir, "ca.pem")
	front := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{Certificates: []tls.Certificate{other.Replica(t, "replica-1").TLS}})
	file := writeReplicas(t, front.Addr())
	for _, args := range commandsThatConnect(dir) {
		// The command ends as soon as every endpoint has refused the
		// certificate; the deadline only bounds a handshake slowed by a
		// loaded machine.
		r := run(t, "", append([]string{"--replicas", file, "--timeout", "30s", "--cacert", caFile}, args...)...)
		if r.code != ExitFailure || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
			t.Errorf("ballot %s: %v; want exit 3 and the certificate refused", strings.Join(args, " "), r)
		}
	}
}

// TestTLSClientCertificate serves the client port with client certificates
// required: with --cacert, --cert and --key commands work, without --cert
// they are refused.
func TestTLSClientCertificate(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	caFile := ca.WriteCA(t, dir, "ca.pem")
	cert, key := ca.Client(t, "ballot-client").Write(t, dir, "client")
	front := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{
		Certificates: []tls.Certificate{ca.Replica(t, "replica-1").TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	})
	ep := "--endpoints=" + front.Addr()
	if r := run(t, "", ep, "--cacert", caFile, "--cert", cert, "--key", key, "put", "colour", "blue"); r.code != 0 {
		t.Fatalf("put with a client certificate: %v", r)
	}
	// The same through the environment.
	t.Setenv("BALLOT_CACERT", caFile)
	t.Setenv("BALLOT_CERT", cert)
	t.Setenv("BALLOT_KEY", key)
	if r := run(t, "", ep, "get", "colour"); r.code != 0 || r.stdout != "blue\n" {
		t.Fatalf("get with the TLS files from the environment: %v", r)
	}
	t.Setenv("BALLOT_CERT", "")
	t.Setenv("BALLOT_KEY", "")
	if r := run(t, "", ep, "--timeout", "30s", "get", "colour"); r.code != ExitFailure || !strings.Contains(r.stderr, "certificate required") {
		t.Fatalf("get without a client certificate: %v; want exit 3, certificate required", r)
	}
	if r := run(t, "", ep, "--timeout", "300ms", "--cacert", "", "get", "colour"); r.code != ExitFailure {
		t.Fatalf("plaintext get from a TLS port: %v; want exit 3", r)
	}
}

func TestTLSFlagErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	caFile := ca.WriteCA(t, dir, "ca.pem")
	cert, key := ca.Client(t, "ballot-client").Write(t, dir, "client")
	ep := "--endpoints=" + deadAddr(t)
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--cacert", caFile, "--cert", cert}, ExitUsage, "--cert given without --key"},
		{[]string{"--key", key}, ExitUsage, "--key given without --cert"},
		{[]string{"--cacert", filepath.Join(dir, "missing.pem")}, ExitFailure, "missing.pem"},
		{[]string{"--cacert", caFile, "--cert", key, "--key", cert}, ExitFailure, "swapped"},
		{[]string{"--cacert", key}, ExitFailure, key},
	}
	for _, tc := range cases {
		r := run(t, "", append(append([]string{ep}, tc.args...), "get", "k")...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%s: %v; want exit %d saying %q", strings.Join(tc.args, " "), r, tc.code, tc.says)
		}
	}
}
