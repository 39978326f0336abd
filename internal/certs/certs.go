package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ballot-kv/ballot/replicas"
)

// Names and limits of the generated files.
const (
	// CAName is the CommonName of the generated CA.
	CAName = "Ballot local CA"
	// DefaultDays is how long the certificates are valid when Options.Days is 0.
	DefaultDays = 365
	// MaxDays bounds Options.Days: a local CA is not meant to outlive its cluster.
	MaxDays = 100 * 365
	// DefaultClientName is the client certificate's CommonName when
	// Options.ClientName is empty.
	DefaultClientName = "ballot-client"
	// ClockSkew is how long before the time of generation the certificates
	// become valid, so that a machine whose clock is slightly behind accepts them.
	ClockSkew = 5 * time.Minute
)

// File modes of what Generate writes.
const (
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
	dirMode  fs.FileMode = 0o700
)

// Options adjust Generate; the zero value means the defaults.
type Options struct {
	// Days is how long the certificates are valid, from now; 0 means DefaultDays.
	Days int
	// ClientName is the client certificate's CommonName; "" means DefaultClientName.
	ClientName string
	// Force replaces files that exist; without it Generate refuses to write
	// anything when one of its files exists.
	Force bool
	// Now returns the time of generation; nil means time.Now.
	Now func() time.Time
}

// CertFiles are the paths of a certificate and its private key.
type CertFiles struct {
	Cert, Key string
}

// Written are the paths Generate wrote, each dir joined with the file name.
type Written struct {
	// CA and CAKey are the CA certificate (ca.pem), which every side trusts, and
	// its private key (ca.key), needed only to issue more certificates.
	CA, CAKey string
	// Replicas holds each replica's certificate and key, by replica id.
	Replicas map[uint64]CertFiles
	// Client is the client certificate and key.
	Client CertFiles
}

// validate checks opts and fills in the defaults.
func (opts Options) validate() (Options, error) {
	switch {
	case opts.Days == 0:
		opts.Days = DefaultDays
	case opts.Days < 0 || opts.Days > MaxDays:
		return opts, fmt.Errorf("days %d: want 1 to %d", opts.Days, MaxDays)
	}
	if opts.ClientName == "" {
		opts.ClientName = DefaultClientName
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return opts, nil
}

// leafPlan is one certificate Generate issues, besides the CA's.
type leafPlan struct {
	files CertFiles
	// what names the certificate in errors, as in "replica 2 (line 3 of the
	// replicas file)".
	what     string
	name     string
	dnsNames []string
	ips      []net.IP
	usage    []x509.ExtKeyUsage
}

// Generate creates dir (mode 0700) if it does not exist and writes into it a new
// CA, a certificate for every replica of list and a client certificate, as the
// package documentation describes. It returns the paths it wrote. Errors name the
// file and, for a replica's certificate, the replica and its line.
func Generate(dir string, list []replicas.Replica, opts Options) (Written, error) {
	opts, err := opts.validate()
	if err != nil {
		return Written{}, fmt.Errorf("generate certificates: %w", err)
	}
	if len(list) == 0 {
		return Written{}, errors.New("generate certificates: no replicas")
	}
	written := Written{
		CA:       filepath.Join(dir, "ca.pem"),
		CAKey:    filepath.Join(dir, "ca.key"),
		Replicas: make(map[uint64]CertFiles, len(list)),
		Client:   CertFiles{Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client.key")},
	}
	plans := make([]leafPlan, 0, len(list)+1)
	for _, r := range list {
		what := describe(r)
		if r.ID == 0 {
			return Written{}, fmt.Errorf("generate certificates: %s: id 0: want a positive id", what)
		}
		if _, dup := written.Replicas[r.ID]; dup {
			return Written{}, fmt.Errorf("generate certificates: %s: id %d appears twice", what, r.ID)
		}
		dnsNames, ips, err := hostNames(r)
		if err != nil {
			return Written{}, fmt.Errorf("generate certificates: %s: %w", what, err)
		}
		base := "replica-" + strconv.FormatUint(r.ID, 10)
		files := CertFiles{Cert: filepath.Join(dir, base+".pem"), Key: filepath.Join(dir, base+".key")}
		written.Replicas[r.ID] = files
		plans = append(plans, leafPlan{
			files: files, what: what, name: base, dnsNames: dnsNames, ips: ips,
			// A replica's certificate serves its ports and authenticates the
			// calls it makes to the other replicas.
			usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		})
	}
	plans = append(plans, leafPlan{
		files: written.Client, what: "client certificate", name: opts.ClientName,
		usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})

	if !opts.Force {
		if err := refuseExisting(written, plans); err != nil {
			return Written{}, err
		}
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return Written{}, fmt.Errorf("generate certificates: create directory: %w", err)
	}

	now := opts.Now()
	validity := validity{notBefore: now.Add(-ClockSkew), notAfter: now.AddDate(0, 0, opts.Days)}
	ca, certPEM, keyPEM, err := newAuthority(validity)
	if err != nil {
		return Written{}, fmt.Errorf("generate certificates: CA: %w", err)
	}
	if err := writePair(CertFiles{Cert: written.CA, Key: written.CAKey}, certPEM, keyPEM, opts.Force); err != nil {
		return Written{}, fmt.Errorf("generate certificates: CA: %w", err)
	}
	for _, p := range plans {
		certPEM, keyPEM, err := ca.issue(p, validity)
		if err != nil {
			return Written{}, fmt.Errorf("generate certificates: %s: %w", p.what, err)
		}
		if err := writePair(p.files, certPEM, keyPEM, opts.Force); err != nil {
			return Written{}, fmt.Errorf("generate certificates: %s: %w", p.what, err)
		}
	}
	return written, nil
}

// describe names a replica in errors.
func describe(r replicas.Replica) string {
	if r.Line > 0 {
		return fmt.Sprintf("replica %d (line %d of the replicas file)", r.ID, r.Line)
	}
	return fmt.Sprintf("replica %d", r.ID)
}

// refuseExisting is an error wrapping fs.ErrExist that names the first file of
// written that exists, and how many others do, or nil when none does.
func refuseExisting(written Written, plans []leafPlan) error {
	type target struct{ path, what string }
	targets := []target{{written.CA, "CA"}, {written.CAKey, "CA"}}
	for _, p := range plans {
		targets = append(targets, target{p.files.Cert, p.what}, target{p.files.Key, p.what})
	}
	var first *target
	others := 0
	for i, t := range targets {
		_, err := os.Lstat(t.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("generate certificates: %s: %w", t.what, err)
		case first == nil:
			first = &targets[i]
		default:
			others++
		}
	}
	if first == nil {
		return nil
	}
	more := ""
	if others > 0 {
		more = fmt.Sprintf(" (and %d more of the files to write)", others)
	}
	return fmt.Errorf("generate certificates: %s: %s%s: %w", first.what, first.path, more, fs.ErrExist)
}

// hostNames returns the DNS names and IP addresses a replica's certificate is
// valid for: every distinct host of its client and peer addresses and, when one of
// them is a loopback host, localhost, 127.0.0.1 and ::1 as well, since a local
// client may dial any of them.
func hostNames(r replicas.Replica) (dnsNames []string, ips []net.IP, err error) {
	seenDNS := make(map[string]bool)
	seenIP := make(map[netip.Addr]bool)
	addDNS := func(name string) {
		if !seenDNS[name] {
			seenDNS[name] = true
			dnsNames = append(dnsNames, name)
		}
	}
	addIP := func(ip netip.Addr) {
		if !seenIP[ip] {
			seenIP[ip] = true
			ips = append(ips, net.IP(ip.AsSlice()))
		}
	}
	loopback := false
	for _, a := range []struct{ role, addr string }{{"client", r.ClientAddr}, {"peer", r.PeerAddr}} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil || host == "" {
			return nil, nil, fmt.Errorf("%s address %q: want host:port", a.role, a.addr)
		}
		// A zone (fe80::1%eth0) names the interface a dialler uses; certificates
		// carry the bare address.
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.WithZone("").Unmap()
			loopback = loopback || ip.IsLoopback()
			addIP(ip)
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(host), ".")
		loopback = loopback || name == "localhost"
		addDNS(name)
	}
	if loopback {
		addDNS("localhost")
		addIP(netip.MustParseAddr("127.0.0.1"))
		addIP(netip.IPv6Loopback())
	}
	return dnsNames, ips, nil
}

// validity is the period every generated certificate is valid for.
type validity struct {
	notBefore, notAfter time.Time
}

// authority is the generated CA, which signs the other certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newAuthority creates a self-signed CA that may sign leaf certificates only
// (path length 0), and returns it with its certificate and key in PEM.
func newAuthority(v validity) (ca authority, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return authority{}, nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return authority{}, nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CAName},
		NotBefore:             v.notBefore,
		NotAfter:              v.notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return authority{}, nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return authority{}, nil, nil, fmt.Errorf("parse the certificate just created: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return authority{}, nil, nil, err
	}
	return authority{cert: cert, key: key}, encodeCert(der), keyPEM, nil
}

// issue creates a key and a certificate for it signed by the CA, in PEM.
func (ca authority) issue(p leafPlan, v validity) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: p.name},
		NotBefore:             v.notBefore,
		NotAfter:              v.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           p.usage,
		BasicConstraintsValid: true,
		DNSNames:              p.dnsNames,
		IPAddresses:           p.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// randomSerial is a uniformly random serial number from 1 to 2^128-1: random, so
// that two generated CAs never issue the same issuer and serial, and positive, as
// RFC 5280 requires.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	limit.Sub(limit, big.NewInt(1))
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writePair writes a key and its certificate, the key first so that a
// certificate is never on disk without its key.
func writePair(files CertFiles, certPEM, keyPEM []byte, replace bool) error {
	if err := writeFile(files.Key, keyPEM, keyMode, replace); err != nil {
		return err
	}
	return writeFile(files.Cert, certPEM, certMode, replace)
}

// writeFile writes data to path with exactly mode, whatever the umask. Without
// replace it fails with an error wrapping fs.ErrExist if path exists; with
// replace it writes a temporary file and renames it over path, so a key that was
// readable by others is replaced by a new file, not rewritten in place.
func writeFile(path string, data []byte, mode fs.FileMode, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err // *fs.PathError naming path
		}
		if err := fill(f, data, mode); err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	if err := fill(f, data, mode); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fill sets f's mode, writes data and closes f.
func fill(f *os.File, data []byte, mode fs.FileMode) error {
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
