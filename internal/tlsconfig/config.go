package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
)

// PeerFiles are ballotd's --peer-cert, --peer-key and --peer-ca: the replica's
// certificate (ServerAuth and ClientAuth: it serves the peer port and
// authenticates the replica's calls to the others), its key, and the CA every
// replica's certificate must chain to.
type PeerFiles struct {
	Cert, Key, CA string
}

// Enabled reports whether peer TLS is asked for. All three files or none: one
// or two of them is ErrIncomplete, naming what is missing.
func (f PeerFiles) Enabled() (bool, error) {
	return complete("peer TLS", []namedFile{{"--peer-cert", f.Cert}, {"--peer-key", f.Key}, {"--peer-ca", f.CA}})
}

// ClientPortFiles are ballotd's --client-cert and --client-key, the client
// port's certificate (ServerAuth) and key, and optionally --client-ca, the CA
// client certificates must chain to; without it clients present none.
type ClientPortFiles struct {
	Cert, Key, ClientCA string
}

// Enabled reports whether the client port serves TLS. A certificate needs its
// key and the other way round, and a client CA needs both.
func (f ClientPortFiles) Enabled() (bool, error) {
	on, err := complete("client-port TLS", []namedFile{{"--client-cert", f.Cert}, {"--client-key", f.Key}})
	if err == nil && !on && f.ClientCA != "" {
		return false, fmt.Errorf("client-port TLS: %w: --client-ca %s needs --client-cert and --client-key", ErrIncomplete, f.ClientCA)
	}
	return on, err
}

// ClientFiles are the ballot command's --cacert (the CA the replicas'
// certificates must chain to; empty means the system's roots), --cert and --key
// (a client certificate, ClientAuth, for a client port that requires one).
type ClientFiles struct {
	CACert, Cert, Key string
}

// Enabled reports whether the client uses TLS: any of the files turns it on.
// A certificate needs its key and the other way round.
func (f ClientFiles) Enabled() (bool, error) {
	if _, err := complete("client TLS", []namedFile{{"--cert", f.Cert}, {"--key", f.Key}}); err != nil {
		return false, err
	}
	return f.CACert != "" || f.Cert != "", nil
}

type namedFile struct{ flag, path string }

// complete reports whether every file is named (true) or none is (false); one
// missing among others is ErrIncomplete, naming it.
func complete(what string, files []namedFile) (bool, error) {
	var given, missing []string
	for _, f := range files {
		if f.path == "" {
			missing = append(missing, f.flag)
		} else {
			given = append(given, f.flag)
		}
	}
	switch {
	case len(given) == 0:
		return false, nil
	case len(missing) == 0:
		return true, nil
	}
	return false, fmt.Errorf("%s: %w: %s given without %s", what, ErrIncomplete, strings.Join(given, " and "), strings.Join(missing, " and "))
}

// replicaUsages: a replica's certificate serves its peer port and authenticates
// its calls to the other replicas.
var replicaUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

// MemberAddrs returns the peer addresses (host:port) of the members of the
// replica's configuration as it is now. It is called at every handshake on the
// peer port, so it must be cheap and safe for concurrent use. nil means the
// replica has no configuration yet (it waits to be added to a cluster and does
// not vote): any replica certificate of the CA is then accepted, one with the
// ServerAuth usage and a DNS or IP name, since a member that adds it may be
// one its replicas file does not list.
type MemberAddrs func() []string

// PeerServer returns the configuration of a replica's peer port: TLS 1.3, the
// replica's certificate, and a caller certificate required, chaining to the
// peer CA with the ClientAuth usage and valid for the host of the peer address
// of a member in members() at the time of the handshake (resumed sessions
// included), so that a replica removed from the configuration is refused from
// its next connection on and one added is accepted once the change is applied.
func PeerServer(files PeerFiles, members MemberAddrs, opts Options) (*tls.Config, error) {
	cert, pool, err := loadPeer(files, opts)
	if err != nil {
		return nil, err
	}
	return peerServer(cert, pool, members), nil
}

// Peer returns PeerServer's and PeerClient's configurations from one reading of
// the files (so a warning about them is logged once).
func Peer(files PeerFiles, members MemberAddrs, opts Options) (server, client *tls.Config, err error) {
	cert, pool, err := loadPeer(files, opts)
	if err != nil {
		return nil, nil, err
	}
	return peerServer(cert, pool, members), peerClient(cert, pool), nil
}

func peerServer(cert tls.Certificate, pool *x509.CertPool, members MemberAddrs) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate presented", ErrNotMember)
			}
			return VerifyMember(cs.PeerCertificates[0], members())
		},
	}
}

// PeerClient returns the configuration of a replica's calls to the others: TLS
// 1.3, the replica's certificate, and the server's verified against the peer CA
// for the ServerName the dialler sets (the host of the address dialled).
func PeerClient(files PeerFiles, opts Options) (*tls.Config, error) {
	cert, pool, err := loadPeer(files, opts)
	if err != nil {
		return nil, err
	}
	return peerClient(cert, pool), nil
}

func peerClient(cert tls.Certificate, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}
}

// loadPeer loads a replica's certificate and the peer CA, and checks that the
// one chains to the other: a replica started with a certificate of another CA
// would otherwise run and be refused by everyone.
func loadPeer(files PeerFiles, opts Options) (tls.Certificate, *x509.CertPool, error) {
	if on, err := files.Enabled(); err != nil || !on {
		if err == nil {
			err = fmt.Errorf("peer TLS: %w: no files given", ErrIncomplete)
		}
		return tls.Certificate{}, nil, err
	}
	cert, err := loadKeyPair(files.Cert, files.Key, replicaUsages, opts)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool, err := loadPool(files.CA, opts)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	_, err = cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   opts.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%s: %w %s: %v", files.Cert, ErrUntrusted, files.CA, err)
	}
	return cert, pool, nil
}

// VerifyMember checks that leaf, a caller's certificate on the peer port
// already verified against the CA, is valid for the host of one of addrs (see
// MemberAddrs for nil). The error says which names the certificate carries and
// which hosts were wanted.
func VerifyMember(leaf *x509.Certificate, addrs []string) error {
	if addrs == nil {
		if !hasUsage(leaf, x509.ExtKeyUsageServerAuth) || len(leaf.DNSNames)+len(leaf.IPAddresses) == 0 {
			return fmt.Errorf("%w: %q (%s; usages %s) is not a replica certificate, and this replica, not yet a member, accepts only those",
				ErrNotMember, leaf.Subject.CommonName, certNames(leaf), usageNames(leaf))
		}
		return nil
	}
	hosts := make([]string, 0, len(addrs))
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if slices.Contains(hosts, host) {
			continue
		}
		if leaf.VerifyHostname(host) == nil {
			return nil
		}
		hosts = append(hosts, host)
	}
	return fmt.Errorf("%w: %q (%s) is valid for none of the members' peer hosts (%s)",
		ErrNotMember, leaf.Subject.CommonName, certNames(leaf), strings.Join(hosts, ", "))
}

// ClientPortServer returns the configuration of a replica's client port: TLS
// 1.2 or later (for older Thrift runtimes), the port's certificate, and, with a
// client CA, a client certificate required that chains to it with the
// ClientAuth usage.
func ClientPortServer(files ClientPortFiles, opts Options) (*tls.Config, error) {
	if on, err := files.Enabled(); err != nil || !on {
		if err == nil {
			err = fmt.Errorf("client-port TLS: %w: no files given", ErrIncomplete)
		}
		return nil, err
	}
	cert, err := loadKeyPair(files.Cert, files.Key, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, opts)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if files.ClientCA != "" {
		pool, err := loadPool(files.ClientCA, opts)
		if err != nil {
			return nil, err
		}
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	return cfg, nil
}

// Client returns the configuration of a client of the client port: TLS 1.2 or
// later, replicas verified against the CA (the system's roots without one) for
// the ServerName the client sets per endpoint, and the client certificate if
// one is given.
func Client(files ClientFiles, opts Options) (*tls.Config, error) {
	if on, err := files.Enabled(); err != nil || !on {
		if err == nil {
			err = fmt.Errorf("client TLS: %w: no files given", ErrIncomplete)
		}
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if files.CACert != "" {
		pool, err := loadPool(files.CACert, opts)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if files.Cert != "" {
		cert, err := loadKeyPair(files.Cert, files.Key, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, opts)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ForHost returns cfg for a connection to addr (host:port): a copy whose
// ServerName is addr's host, unless cfg names a server already. It returns nil
// for a nil cfg.
func ForHost(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil {
		return nil
	}
	out := cfg.Clone()
	if out.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		out.ServerName = host
	}
	return out
}
