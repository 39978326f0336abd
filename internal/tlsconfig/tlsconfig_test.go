package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/internal/tlsconfig/tlstest"
)

// peerSet writes a CA and a replica certificate for 127.0.0.1 into a new
// directory and returns their paths.
func peerSet(t *testing.T) (*tlstest.CA, PeerFiles) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Replica(t, "replica-1").Write(t, dir, "replica-1")
	return ca, PeerFiles{Cert: cert, Key: key, CA: ca.WriteCA(t, dir, "ca.pem")}
}

func TestEnabledNamesWhatIsMissing(t *testing.T) {
	cases := []struct {
		name    string
		enabled func() (bool, error)
		on      bool
		missing string // "" for no error
	}{
		{"peer none", PeerFiles{}.Enabled, false, ""},
		{"peer all", PeerFiles{"c", "k", "ca"}.Enabled, true, ""},
		{"peer no key", PeerFiles{Cert: "c", CA: "ca"}.Enabled, false, "without --peer-key"},
		{"peer only ca", PeerFiles{CA: "ca"}.Enabled, false, "without --peer-cert and --peer-key"},
		{"client port none", ClientPortFiles{}.Enabled, false, ""},
		{"client port cert and key", ClientPortFiles{Cert: "c", Key: "k"}.Enabled, true, ""},
		{"client port all", ClientPortFiles{"c", "k", "ca"}.Enabled, true, ""},
		{"client port no cert", ClientPortFiles{Key: "k"}.Enabled, false, "without --client-cert"},
		{"client port only ca", ClientPortFiles{ClientCA: "ca"}.Enabled, false, "--client-ca ca needs --client-cert and --client-key"},
		{"client none", ClientFiles{}.Enabled, false, ""},
		{"client ca only", ClientFiles{CACert: "ca"}.Enabled, true, ""},
		{"client cert without ca", ClientFiles{Cert: "c", Key: "k"}.Enabled, true, ""},
		{"client cert without key", ClientFiles{CACert: "ca", Cert: "c"}.Enabled, false, "--cert given without --key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			on, err := tc.enabled()
			if tc.missing == "" {
				if err != nil || on != tc.on {
					t.Fatalf("got %v, %v; want %v, nil", on, err, tc.on)
				}
				return
			}
			if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), tc.missing) {
				t.Fatalf("got %v, %v; want ErrIncomplete naming %q", on, err, tc.missing)
			}
		})
	}
}

// TestLoadErrorsNameFileAndProblem breaks one file at a time and checks that
// loading fails with an error that names the file and the kind of problem.
func TestLoadErrorsNameFileAndProblem(t *testing.T) {
	ca, good := peerSet(t)
	dir := filepath.Dir(good.Cert)
	other := tlstest.NewCA(t, "other CA")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	second := ca.Replica(t, "replica-2")
	expired := ca.Issue(t, tlstest.Spec{CommonName: "old", Hosts: []string{"127.0.0.1"}, Usages: tlstest.ReplicaUsages,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	early := ca.Issue(t, tlstest.Spec{CommonName: "early", Hosts: []string{"127.0.0.1"}, Usages: tlstest.ReplicaUsages,
		NotBefore: time.Now().Add(time.Hour)})
	clientOnly := ca.Client(t, "ballot-client")
	foreign := other.Replica(t, "replica-1")
	expiredCA := tlstest.NewCA(t, "expired CA")
	expiredCA.Cert.NotAfter = time.Now().Add(-time.Minute) // only checkValidity reads it

	cases := []struct {
		name  string
		files PeerFiles
		is    error
		file  string
		says  string
	}{
		{"missing cert", PeerFiles{filepath.Join(dir, "nope.pem"), good.Key, good.CA}, fs.ErrNotExist, "nope.pem", "read certificate"},
		{"missing key", PeerFiles{good.Cert, filepath.Join(dir, "nope.key"), good.CA}, fs.ErrNotExist, "nope.key", "read private key"},
		{"missing ca", PeerFiles{good.Cert, good.Key, filepath.Join(dir, "noca.pem")}, fs.ErrNotExist, "noca.pem", "read certificate"},
		{"cert not pem", PeerFiles{write("junk.pem", []byte("hello")), good.Key, good.CA}, ErrNotPEM, "junk.pem", "no PEM certificate"},
		{"key not pem", PeerFiles{good.Cert, write("junk.key", []byte("hello")), good.CA}, ErrNotPEM, "junk.key", "no PEM private key"},
		{"ca not pem", PeerFiles{good.Cert, good.Key, write("junkca.pem", []byte("hello"))}, ErrNotPEM, "junkca.pem", "no PEM certificate"},
		{"swapped", PeerFiles{good.Key, good.Cert, good.CA}, ErrNotPEM, good.Key, "swapped"},
		{"key of another cert", PeerFiles{good.Cert, write("second.key", second.KeyPEM), good.CA}, ErrKeyMismatch, "second.key", good.Cert},
		{"expired", PeerFiles{write("expired.pem", expired.CertPEM), write("expired.key", expired.KeyPEM), good.CA}, ErrExpired, "expired.pem", "expired at"},
		{"not yet valid", PeerFiles{write("early.pem", early.CertPEM), write("early.key", early.KeyPEM), good.CA}, ErrNotYetValid, "early.pem", "valid from"},
		{"client certificate", PeerFiles{write("client.pem", clientOnly.CertPEM), write("client.key", clientOnly.KeyPEM), good.CA}, ErrUsage, "client.pem", "ServerAuth"},
		{"another CA", PeerFiles{write("foreign.pem", foreign.CertPEM), write("foreign.key", foreign.KeyPEM), good.CA}, ErrUntrusted, "foreign.pem", good.CA},
		{"cert file holds a CA key only", PeerFiles{good.Cert, write("ca-as-key.key", read(good.CA)), good.CA}, ErrNotPEM, "ca-as-key.key", "swapped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for role, load := range map[string]func() error{
				"server": func() error { _, err := PeerServer(tc.files, func() []string { return nil }, Options{}); return err },
				"client": func() error { _, err := PeerClient(tc.files, Options{}); return err },
			} {
				err := load()
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("%s: got %v; want %v naming %s and saying %q", role, err, tc.is, tc.file, tc.says)
				}
			}
		})
	}
	if _, err := PeerServer(good, func() []string { return nil }, Options{}); err != nil {
		t.Fatalf("the good set fails: %v", err)
	}
	if err := checkValidity("ca.pem", expiredCA.Cert, Options{}); !errors.Is(err, ErrExpired) {
		t.Errorf("an expired CA: %v", err)
	}
}

func TestExpiringSoonIsLoadedWithAWarning(t *testing.T) {
	_, files := peerSet(t)
	var logs bytes.Buffer
	opts := Options{
		Now:    func() time.Time { return time.Now().Add(23 * time.Hour) }, // the certificates end a day from now
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}
	if _, err := PeerClient(files, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "certificate expires soon") || !strings.Contains(logs.String(), files.Cert) {
		t.Fatalf("no warning naming %s:\n%s", files.Cert, logs.String())
	}
	// Peer reads the files once for both sides, and warns once.
	logs.Reset()
	if _, _, err := Peer(files, func() []string { return nil }, opts); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "file="+files.Cert); n != 1 {
		t.Fatalf("Peer warned %d times about %s, want once:\n%s", n, files.Cert, logs.String())
	}
	// A day and a minute later, it has expired.
	opts.Now = func() time.Time { return time.Now().Add(24*time.Hour + time.Minute) }
	if _, err := PeerClient(files, opts); !errors.Is(err, ErrExpired) {
		t.Fatalf("got %v, want ErrExpired", err)
	}
}

func TestVerifyMember(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	local := ca.Replica(t, "replica-1").Cert
	named := ca.Issue(t, tlstest.Spec{CommonName: "replica-2", Hosts: []string{"db2.example.net", "10.1.2.3"}, Usages: tlstest.ReplicaUsages}).Cert
	client := ca.Client(t, "ballot-client").Cert
	cases := []struct {
		name    string
		leaf    *x509.Certificate
		members []string
		ok      bool
	}{
		{"loopback member", local, []string{"127.0.0.1:7001", "127.0.0.1:7002"}, true},
		{"localhost member", local, []string{"localhost:7001"}, true},
		{"dns member", named, []string{"db1.example.net:7000", "db2.example.net:7000"}, true},
		{"ip member", named, []string{"10.1.2.3:7000"}, true},
		{"no such member", named, []string{"db1.example.net:7000", "10.1.2.4:7000"}, false},
		{"client certificate", client, []string{"127.0.0.1:7001"}, false},
		{"no members", local, []string{}, false},
		{"joining, replica certificate", named, nil, true},
		{"joining, client certificate", client, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyMember(tc.leaf, tc.members)
			if tc.ok != (err == nil) {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), tc.leaf.Subject.CommonName)) {
				t.Fatalf("error %v does not say ErrNotMember and name %q", err, tc.leaf.Subject.CommonName)
			}
		})
	}
}

// handshake runs a TLS handshake over loopback with one exchanged byte (so that
// a TLS 1.3 client learns of a refusal of its certificate) and returns the
// client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			serverErr = err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, server)
		if serverErr = tc.Handshake(); serverErr == nil {
			_, serverErr = tc.Write([]byte{1})
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, ForHost(client, ln.Addr().String()))
	if clientErr = tc.Handshake(); clientErr == nil {
		_, clientErr = tc.Read(make([]byte, 1))
	}
	c.Close() // a client that gave up before sending anything leaves the server waiting
	wg.Wait()
	return clientErr, serverErr
}

// TestPeerMembersCheckedAtEveryHandshake changes the members between
// handshakes: a replica is accepted while a member's host is its own and
// refused from the next handshake once none is.
func TestPeerMembersCheckedAtEveryHandshake(t *testing.T) {
	_, files := peerSet(t)
	var mu sync.Mutex
	members := []string{"10.9.9.9:7000"}
	server, err := PeerServer(files, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return members
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := PeerClient(files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	set := func(m ...string) {
		mu.Lock()
		members = m
		mu.Unlock()
	}
	if cErr, sErr := handshake(t, server, client); !errors.Is(sErr, ErrNotMember) || cErr == nil {
		t.Fatalf("not yet a member: client %v, server %v; want both to fail, the server with ErrNotMember", cErr, sErr)
	}
	set("10.9.9.9:7000", "127.0.0.1:7002")
	if cErr, sErr := handshake(t, server, client); cErr != nil || sErr != nil {
		t.Fatalf("a member: client %v, server %v", cErr, sErr)
	}
	set("10.9.9.9:7000")
	if _, sErr := handshake(t, server, client); !errors.Is(sErr, ErrNotMember) {
		t.Fatalf("removed: server %v, want ErrNotMember", sErr)
	}
}

func TestPeerRefusesOtherCAAndClientCertificates(t *testing.T) {
	ca, files := peerSet(t)
	members := func() []string { return []string{"127.0.0.1:7001"} }
	server, err := PeerServer(files, members, Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := tlstest.NewCA(t, "test CA") // the same name, another key
	foreign := other.Replica(t, "replica-1")
	withCert := func(c tls.Certificate, roots *x509.CertPool) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{c}, RootCAs: roots}
	}
	if cErr, sErr := handshake(t, server, withCert(foreign.TLS, ca.Pool)); cErr == nil || sErr == nil {
		t.Errorf("certificate of another CA: client %v, server %v; want both to fail", cErr, sErr)
	}
	if cErr, sErr := handshake(t, server, withCert(ca.Client(t, "ballot-client").TLS, ca.Pool)); cErr == nil || !errors.Is(sErr, ErrNotMember) {
		t.Errorf("client certificate: client %v, server %v; want both to fail, the server with ErrNotMember", cErr, sErr)
	}
	if cErr, sErr := handshake(t, server, &tls.Config{RootCAs: ca.Pool}); cErr == nil || sErr == nil {
		t.Errorf("no certificate: client %v, server %v; want both to fail", cErr, sErr)
	}
	// The replica calling a server of another CA refuses it.
	foreignServer := &tls.Config{Certificates: []tls.Certificate{foreign.TLS}}
	client, err := PeerClient(files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if cErr, _ := handshake(t, foreignServer, client); !errors.As(cErr, &unknown) {
		t.Errorf("server of another CA: client %v, want an unknown authority", cErr)
	}
	// TLS 1.2 is refused between replicas.
	old := withCert(ca.Replica(t, "replica-2").TLS, ca.Pool)
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if cErr, sErr := handshake(t, server, old); cErr == nil || sErr == nil {
		t.Errorf("TLS 1.2: client %v, server %v; want both to fail", cErr, sErr)
	}
}

func TestClientPort(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	caFile := ca.WriteCA(t, dir, "ca.pem")
	cert, key := ca.Replica(t, "replica-1").Write(t, dir, "replica-1")
	clientCert, clientKey := ca.Client(t, "ballot-client").Write(t, dir, "client")

	open, err := ClientPortServer(ClientPortFiles{Cert: cert, Key: key}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	required, err := ClientPortServer(ClientPortFiles{Cert: cert, Key: key, ClientCA: caFile}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := Client(ClientFiles{CACert: caFile}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := Client(ClientFiles{CACert: caFile, Cert: clientCert, Key: clientKey}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cErr, sErr := handshake(t, open, anon); cErr != nil || sErr != nil {
		t.Errorf("server TLS only: client %v, server %v", cErr, sErr)
	}
	if cErr, sErr := handshake(t, required, withCert); cErr != nil || sErr != nil {
		t.Errorf("client certificate: client %v, server %v", cErr, sErr)
	}
	if cErr, sErr := handshake(t, required, anon); cErr == nil || sErr == nil {
		t.Errorf("client certificate required, none given: client %v, server %v; want both to fail", cErr, sErr)
	}
	tls12 := anon.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	if cErr, sErr := handshake(t, open, tls12); cErr != nil || sErr != nil {
		t.Errorf("TLS 1.2 on the client port: client %v, server %v", cErr, sErr)
	}
	// Without the CA, the client trusts the system's roots, which do not hold it.
	system, err := Client(ClientFiles{Cert: clientCert, Key: clientKey}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cErr, _ := handshake(t, open, system); cErr == nil {
		t.Error("a client without --cacert trusted a private CA")
	}
	if _, err := Client(ClientFiles{CACert: caFile, Cert: cert, Key: clientKey}, Options{}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("client key of another certificate: %v", err)
	}
}

func TestForHost(t *testing.T) {
	base := &tls.Config{MinVersion: tls.VersionTLS13}
	for addr, want := range map[string]string{"127.0.0.1:7001": "127.0.0.1", "[::1]:7001": "::1", "db.example.net:7000": "db.example.net"} {
		if got := ForHost(base, addr); got.ServerName != want || got.MinVersion != tls.VersionTLS13 {
			t.Errorf("%s: ServerName %q, want %q", addr, got.ServerName, want)
		}
	}
	if base.ServerName != "" {
		t.Error("ForHost changed its argument")
	}
	if got := ForHost(&tls.Config{ServerName: "fixed"}, "127.0.0.1:1"); got.ServerName != "fixed" {
		t.Errorf("a set ServerName was replaced by %q", got.ServerName)
	}
	if ForHost(nil, "127.0.0.1:1") != nil {
		t.Error("nil config became non-nil")
	}
}
