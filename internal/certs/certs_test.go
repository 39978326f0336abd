package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/replicas"
)

// threeReplicas is a loopback cluster as in the repository's replicas.txt, plus a
// replica on a DNS name.
const threeReplicas = `# id client peer
1 127.0.0.1:7001 127.0.0.1:8001
2 127.0.0.1:7002 127.0.0.1:8002

4 db4.example:7004 db4.example:8004
`

func parseReplicas(t *testing.T, text string) []replicas.Replica {
	t.Helper()
	list, err := replicas.Parse(strings.NewReader(text), "replicas.txt")
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func generate(t *testing.T, dir string, opts Options) Written {
	t.Helper()
	w, err := Generate(dir, parseReplicas(t, threeReplicas), opts)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return w
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s: want exactly one CERTIFICATE PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func pool(t *testing.T, caPath string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	data, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	if !p.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificate", caPath)
	}
	return p
}

func verify(cert *x509.Certificate, roots *x509.CertPool, host string, usage x509.ExtKeyUsage) error {
	_, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestReplicaCertificatesVerifyForEveryHostAndBothUsages(t *testing.T) {
	dir := t.TempDir()
	w := generate(t, dir, Options{})
	roots := pool(t, w.CA)

	ca := readCert(t, w.CA)
	if ca.Subject.CommonName != CAName || !ca.IsCA || !ca.MaxPathLenZero {
		t.Errorf("CA: CN %q, IsCA %v, MaxPathLenZero %v; want %q, a CA that signs leaves only",
			ca.Subject.CommonName, ca.IsCA, ca.MaxPathLenZero, CAName)
	}
	if _, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || ca.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}

	hosts := map[uint64][]string{
		1: {"127.0.0.1", "localhost", "::1"},
		2: {"127.0.0.1", "localhost", "::1"},
		4: {"db4.example"},
	}
	if len(w.Replicas) != len(hosts) {
		t.Fatalf("wrote certificates for %d replicas, want %d", len(w.Replicas), len(hosts))
	}
	for id, want := range hosts {
		files, ok := w.Replicas[id]
		if !ok {
			t.Errorf("no certificate for replica %d", id)
			continue
		}
		if base := filepath.Base(files.Cert); base != "replica-"+strconv.FormatUint(id, 10)+".pem" {
			t.Errorf("replica %d certificate is %s", id, base)
		}
		cert := readCert(t, files.Cert)
		if cert.Subject.CommonName != "replica-"+strconv.FormatUint(id, 10) {
			t.Errorf("replica %d: CN %q", id, cert.Subject.CommonName)
		}
		if cert.IsCA {
			t.Errorf("replica %d: certificate is a CA", id)
		}
		for _, host := range want {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if err := verify(cert, roots, host, usage); err != nil {
					t.Errorf("replica %d for %s, usage %v: %v", id, host, usage, err)
				}
			}
		}
		if _, err := tls.LoadX509KeyPair(files.Cert, files.Key); err != nil {
			t.Errorf("replica %d: load key pair: %v", id, err)
		}
	}
	// The loopback replicas are not valid for the DNS replica's host, nor it for theirs.
	if err := verify(readCert(t, w.Replicas[1].Cert), roots, "db4.example", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("replica 1 verifies for db4.example")
	}
	if err := verify(readCert(t, w.Replicas[4].Cert), roots, "127.0.0.1", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("replica 4 verifies for 127.0.0.1")
	}
}

func TestClientCertificateIsForClientsOnly(t *testing.T) {
	w := generate(t, t.TempDir(), Options{})
	roots := pool(t, w.CA)
	cert := readCert(t, w.Client.Cert)

	if cert.Subject.CommonName != DefaultClientName {
		t.Errorf("client CN %q, want %q", cert.Subject.CommonName, DefaultClientName)
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses)+len(cert.URIs) != 0 {
		t.Errorf("client certificate has SANs %v %v %v %v, want none", cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.URIs)
	}
	if err := verify(cert, roots, "", x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("client certificate for ClientAuth: %v", err)
	}
	if err := verify(cert, roots, "", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("client certificate verifies for ServerAuth; it must not serve")
	}
	if err := cert.VerifyHostname("127.0.0.1"); err == nil {
		t.Error("client certificate is valid for 127.0.0.1; it must name no host")
	}
	if _, err := tls.LoadX509KeyPair(w.Client.Cert, w.Client.Key); err != nil {
		t.Errorf("load client key pair: %v", err)
	}

	named := generate(t, t.TempDir(), Options{ClientName: "reporting-job"})
	if cn := readCert(t, named.Client.Cert).Subject.CommonName; cn != "reporting-job" {
		t.Errorf("with ClientName reporting-job: client CN %q", cn)
	}
}

func TestCertificateFromAnotherCADoesNotVerify(t *testing.T) {
	first := generate(t, t.TempDir(), Options{})
	second := generate(t, t.TempDir(), Options{})
	roots := pool(t, first.CA)

	if err := verify(readCert(t, second.Replicas[1].Cert), roots, "127.0.0.1", x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("replica 1 of the second CA verifies against the first CA")
	} else if !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("replica 1 of the second CA: %v; want an unknown authority", err)
	}
	if err := verify(readCert(t, second.Client.Cert), roots, "", x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("client certificate of the second CA verifies against the first CA")
	}
	if a, b := readCert(t, first.CA).SerialNumber, readCert(t, second.CA).SerialNumber; a.Cmp(b) == 0 {
		t.Errorf("two CAs share serial number %v", a)
	}
}

func TestRefusesToOverwriteWithoutForce(t *testing.T) {
	t.Run("everything exists", func(t *testing.T) {
		dir := t.TempDir()
		w := generate(t, dir, Options{})
		before := readAll(t, dir)

		_, err := Generate(dir, parseReplicas(t, threeReplicas), Options{})
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second Generate: %v; want an error wrapping fs.ErrExist", err)
		}
		if !strings.Contains(err.Error(), w.CA) {
			t.Errorf("error %q does not name %s", err, w.CA)
		}
		if after := readAll(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Error("a refused Generate changed the directory")
		}

		again, err := Generate(dir, parseReplicas(t, threeReplicas), Options{Force: true})
		if err != nil {
			t.Fatalf("Generate with Force: %v", err)
		}
		if bytes.Equal(before["ca.pem"], readAll(t, dir)["ca.pem"]) {
			t.Error("Generate with Force left ca.pem as it was")
		}
		if err := verifyAgainst(t, again, again.Replicas[2].Cert, "127.0.0.1"); err != nil {
			t.Errorf("after Force, replica 2 against the new CA: %v", err)
		}
	})
	t.Run("one replica's key exists", func(t *testing.T) {
		dir := t.TempDir()
		stray := filepath.Join(dir, "replica-4.key")
		if err := os.WriteFile(stray, []byte("someone's key"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Generate(dir, parseReplicas(t, threeReplicas), Options{})
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Generate: %v; want an error wrapping fs.ErrExist", err)
		}
		for _, want := range []string{stray, "replica 4", "line 5"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if got := readAll(t, dir); len(got) != 1 {
			t.Errorf("a refused Generate wrote %d files besides replica-4.key", len(got)-1)
		}

		// Force replaces the stray key with a new file that only the owner reads.
		if _, err := Generate(dir, parseReplicas(t, threeReplicas), Options{Force: true}); err != nil {
			t.Fatalf("Generate with Force: %v", err)
		}
		if mode := fileMode(t, stray); mode != 0o600 {
			t.Errorf("replaced key has mode %v, want 0600", mode)
		}
	})
}

func TestFileModesAndLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy", "certs")
	w := generate(t, dir, Options{})

	if mode := fileMode(t, dir); mode != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", mode)
	}
	keys := []string{w.CAKey, w.Client.Key}
	certs := []string{w.CA, w.Client.Cert}
	for _, f := range w.Replicas {
		keys = append(keys, f.Key)
		certs = append(certs, f.Cert)
	}
	for _, k := range keys {
		if mode := fileMode(t, k); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", k, mode)
		}
		data, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Errorf("%s: want a PKCS#8 \"PRIVATE KEY\" PEM block", k)
			continue
		}
		if key, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Errorf("%s: %v", k, err)
		} else if _, ok := key.(*ecdsa.PrivateKey); !ok {
			t.Errorf("%s holds a %T, want an ECDSA key", k, key)
		}
	}
	for _, c := range certs {
		if mode := fileMode(t, c); mode != 0o644 {
			t.Errorf("%s has mode %v, want 0644", c, mode)
		}
	}
	var names []string
	for name := range readAll(t, dir) {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"ca.key", "ca.pem", "client.key", "client.pem",
		"replica-1.key", "replica-1.pem", "replica-2.key", "replica-2.pem", "replica-4.key", "replica-4.pem"}
	if !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

func TestSubjectAlternativeNames(t *testing.T) {
	w := generate(t, t.TempDir(), Options{})

	dns := readCert(t, w.Replicas[4].Cert)
	if !slices.Equal(dns.DNSNames, []string{"db4.example"}) || len(dns.IPAddresses) != 0 {
		t.Errorf("replica on db4.example: DNS SANs %v, IP SANs %v; want [db4.example] and none", dns.DNSNames, dns.IPAddresses)
	}
	loop := readCert(t, w.Replicas[1].Cert)
	if !slices.Equal(loop.DNSNames, []string{"localhost"}) {
		t.Errorf("replica on 127.0.0.1: DNS SANs %v, want [localhost]", loop.DNSNames)
	}
	var ips []string
	for _, ip := range loop.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("replica on 127.0.0.1: IP SANs %v, want [127.0.0.1 ::1]", ips)
	}

	// Distinct client and peer hosts both appear, once each.
	mixed := parseReplicas(t, "7 Front.Example:7007 10.1.2.3:8007\n8 10.1.2.3:7008 front.example.:8008\n")
	mw, err := Generate(t.TempDir(), mixed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{7, 8} {
		c := readCert(t, mw.Replicas[id].Cert)
		if !slices.Equal(c.DNSNames, []string{"front.example"}) || len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "10.1.2.3" {
			t.Errorf("replica %d: DNS SANs %v, IP SANs %v; want [front.example] and [10.1.2.3]", id, c.DNSNames, c.IPAddresses)
		}
	}
}

func TestValidityAndSerials(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	w := generate(t, t.TempDir(), Options{Days: 10, Now: func() time.Time { return now }})

	seen := make(map[string]string)
	paths := []string{w.CA, w.Client.Cert, w.Replicas[1].Cert, w.Replicas[2].Cert, w.Replicas[4].Cert}
	for _, p := range paths {
		c := readCert(t, p)
		if want := now.Add(-5 * time.Minute); !c.NotBefore.Equal(want) {
			t.Errorf("%s: NotBefore %v, want %v", p, c.NotBefore, want)
		}
		if want := now.AddDate(0, 0, 10); !c.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v, want %v", p, c.NotAfter, want)
		}
		if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial %v, want from 1 to 2^128-1", p, c.SerialNumber)
		}
		if other, dup := seen[c.SerialNumber.String()]; dup {
			t.Errorf("%s and %s share serial %v", p, other, c.SerialNumber)
		}
		seen[c.SerialNumber.String()] = p
	}

	if w := generate(t, t.TempDir(), Options{}); readCert(t, w.CA).NotAfter.Sub(time.Now()) < (DefaultDays-1)*24*time.Hour {
		t.Errorf("default validity ends %v, want about %d days from now", readCert(t, w.CA).NotAfter, DefaultDays)
	}
}

func TestErrorsNameTheReplicaAndLine(t *testing.T) {
	bad := []replicas.Replica{
		{ID: 1, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001", Line: 2},
		{ID: 9, ClientAddr: "127.0.0.1:7009", PeerAddr: "no-port", Line: 6},
	}
	dir := filepath.Join(t.TempDir(), "certs")
	_, err := Generate(dir, bad, Options{})
	if err == nil {
		t.Fatal("Generate accepted a peer address without a port")
	}
	for _, want := range []string{"replica 9", "line 6", `"no-port"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("a rejected list created %s (stat: %v)", dir, statErr)
	}

	for _, opts := range []Options{{Days: -1}, {Days: MaxDays + 1}} {
		if _, err := Generate(t.TempDir(), parseReplicas(t, threeReplicas), opts); err == nil || !strings.Contains(err.Error(), "days") {
			t.Errorf("Days %d: error %v, want one about days", opts.Days, err)
		}
	}
	if _, err := Generate(t.TempDir(), nil, Options{}); err == nil {
		t.Error("Generate accepted an empty list")
	}
}

// TestTLSHandshake runs real handshakes on loopback, as a replica's client port
// with --client-ca does: the replica serves its certificate and requires a client
// certificate chaining to the CA.
func TestTLSHandshake(t *testing.T) {
	w := generate(t, t.TempDir(), Options{})
	other := generate(t, t.TempDir(), Options{})

	replica := loadPair(t, w.Replicas[1])
	client := loadPair(t, w.Client)
	roots := pool(t, w.CA)

	t.Run("same CA", func(t *testing.T) {
		serverErr, clientErr := handshake(t, replica, roots, client, roots)
		if serverErr != nil || clientErr != nil {
			t.Fatalf("server: %v; client: %v; want both to succeed", serverErr, clientErr)
		}
	})
	t.Run("replica certificate as a client", func(t *testing.T) {
		// Replicas authenticate their calls to each other with their own certificate.
		serverErr, clientErr := handshake(t, replica, roots, loadPair(t, w.Replicas[2]), roots)
		if serverErr != nil || clientErr != nil {
			t.Fatalf("server: %v; client: %v; want both to succeed", serverErr, clientErr)
		}
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		serverErr, clientErr := handshake(t, replica, roots, loadPair(t, other.Client), roots)
		if serverErr == nil || clientErr == nil {
			t.Fatalf("server: %v; client: %v; want both to fail", serverErr, clientErr)
		}
		if !strings.Contains(serverErr.Error(), "unknown authority") {
			t.Errorf("server: %v; want an unknown authority", serverErr)
		}
	})
	t.Run("server certificate from another CA", func(t *testing.T) {
		serverErr, clientErr := handshake(t, loadPair(t, other.Replicas[1]), roots, client, roots)
		if serverErr == nil || clientErr == nil {
			t.Fatalf("server: %v; client: %v; want both to fail", serverErr, clientErr)
		}
		if !errors.As(clientErr, new(*tls.CertificateVerificationError)) {
			t.Errorf("client: %v; want a certificate verification error", clientErr)
		}
	})
	t.Run("client certificate as a server", func(t *testing.T) {
		serverErr, clientErr := handshake(t, client, roots, client, roots)
		if serverErr == nil || clientErr == nil {
			t.Fatalf("server: %v; client: %v; want both to fail", serverErr, clientErr)
		}
	})
}

// handshake serves one TLS connection on 127.0.0.1 with serverCert, requiring a
// client certificate chaining to clientCAs, and dials it presenting clientCert
// and trusting rootCAs. The server answers one byte after its handshake, so that
// a client certificate the server rejects fails the client too (in TLS 1.3 the
// client finishes its handshake before the server checks its certificate).
func handshake(t *testing.T, serverCert tls.Certificate, clientCAs *x509.CertPool, clientCert tls.Certificate, rootCAs *x509.CertPool) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)

	serverDone := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		srv := tls.Server(conn, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientCAs:    clientCAs,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		})
		if err := srv.Handshake(); err != nil {
			serverDone <- err
			return
		}
		_, err = srv.Write([]byte{1})
		serverDone <- err
	}()

	dialer := &net.Dialer{Deadline: deadline}
	conn, err := tls.DialWithDialer(dialer, "tcp", ln.Addr().String(), &tls.Config{
		RootCAs:      rootCAs,
		Certificates: []tls.Certificate{clientCert},
		MinVersion:   tls.VersionTLS12,
	})
	if err == nil {
		conn.SetDeadline(deadline)
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	return <-serverDone, err
}

func loadPair(t *testing.T, files CertFiles) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// verifyAgainst verifies the certificate at certPath for host against w's CA.
func verifyAgainst(t *testing.T, w Written, certPath, host string) error {
	t.Helper()
	return verify(readCert(t, certPath), pool(t, w.CA), host, x509.ExtKeyUsageServerAuth)
}

// readAll returns the contents of every file in dir, by name.
func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}
