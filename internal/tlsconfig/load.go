package tlsconfig

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// ExpiryWarning: a certificate that expires sooner than this is loaded with a
// warning in the log, so that its rotation is not discovered by an outage.
const ExpiryWarning = 30 * 24 * time.Hour

// Options adjust loading; the zero value means the defaults.
type Options struct {
	// Now is the time certificates are checked against; nil means time.Now.
	Now func() time.Time
	// Logger receives a warning for every certificate that expires within
	// ExpiryWarning; nil discards them.
	Logger *slog.Logger
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// loadKeyPair reads a certificate (optionally followed by its intermediates)
// from certFile and its private key from keyFile, and checks that they belong
// together, that the certificate is valid now and that it carries every usage
// in need.
func loadKeyPair(certFile, keyFile string, need []x509.ExtKeyUsage, opts Options) (tls.Certificate, error) {
	chain, err := readCerts(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := chain[0]
	key, err := readKey(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("%s: %w in %s", keyFile, ErrKeyMismatch, certFile)
	}
	if err := checkValidity(certFile, leaf, opts); err != nil {
		return tls.Certificate{}, err
	}
	for _, u := range need {
		if !hasUsage(leaf, u) {
			return tls.Certificate{}, fmt.Errorf("%s: %w: %s (it has %s)", certFile, ErrUsage, usageName(u), usageNames(leaf))
		}
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// loadPool reads the CA certificates in file into a pool. An expired one is
// left out with a warning (a bundle may hold an old CA during a rotation); a
// file with none valid now is an error.
func loadPool(file string, opts Options) (*x509.CertPool, error) {
	cas, err := readCerts(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	added := 0
	var firstErr error
	for _, ca := range cas {
		if err := checkValidity(file, ca, opts); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			opts.logger().Warn("CA certificate left out", "file", file, "err", err)
			continue
		}
		pool.AddCert(ca)
		added++
	}
	if added == 0 {
		return nil, firstErr
	}
	return pool, nil
}

// readCerts parses every CERTIFICATE block of file, in order.
func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	var certs []*x509.Certificate
	var other []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			other = append(other, b.Type)
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) > 0:
		return certs, nil
	case slices.ContainsFunc(other, isKeyType):
		return nil, fmt.Errorf("%s: %w: it holds a private key, not a certificate (are the certificate and key files swapped?)", file, ErrNotPEM)
	case len(other) > 0:
		return nil, fmt.Errorf("%s: %w: want a CERTIFICATE block, found %s", file, ErrNotPEM, strings.Join(other, ", "))
	}
	return nil, fmt.Errorf("%s: %w: no PEM certificate found", file, ErrNotPEM)
}

// readKey parses the first private key block of file: PKCS#8, or the older
// EC and PKCS#1 forms.
func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	sawCert := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !isKeyType(b.Type) {
			sawCert = sawCert || b.Type == "CERTIFICATE"
			continue
		}
		key, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, b.Type, err)
		}
		return key, nil
	}
	if sawCert {
		return nil, fmt.Errorf("%s: %w: it holds a certificate, not a private key (are the certificate and key files swapped?)", file, ErrNotPEM)
	}
	return nil, fmt.Errorf("%s: %w: no PEM private key found", file, ErrNotPEM)
}

func isKeyType(typ string) bool { return strings.HasSuffix(typ, "PRIVATE KEY") }

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// checkValidity refuses a certificate outside its validity period and warns
// about one that ends within ExpiryWarning.
func checkValidity(file string, c *x509.Certificate, opts Options) error {
	now := opts.now()
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%s: %w: %q expired at %s", file, ErrExpired, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s: %w: %q is valid from %s (is this machine's clock behind?)", file, ErrNotYetValid,
			c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	case c.NotAfter.Sub(now) < ExpiryWarning:
		opts.logger().Warn("certificate expires soon; replace it and restart", "file", file,
			"subject", c.Subject.CommonName, "not_after", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// hasUsage reports whether c may be used for u. A certificate without extended
// key usages may be used for anything, as crypto/x509 treats it.
func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, u) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "ServerAuth"
	case x509.ExtKeyUsageClientAuth:
		return "ClientAuth"
	case x509.ExtKeyUsageAny:
		return "Any"
	}
	return fmt.Sprintf("usage %d", u)
}

func usageNames(c *x509.Certificate) string {
	if len(c.ExtKeyUsage) == 0 {
		return "none"
	}
	names := make([]string, len(c.ExtKeyUsage))
	for i, u := range c.ExtKeyUsage {
		names[i] = usageName(u)
	}
	return strings.Join(names, ", ")
}

// certNames lists the DNS names and IP addresses a certificate is valid for.
func certNames(c *x509.Certificate) string {
	var names []string
	for _, d := range c.DNSNames {
		names = append(names, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		names = append(names, "IP:"+ip.String())
	}
	if len(names) == 0 {
		return "no DNS or IP name"
	}
	return strings.Join(names, ", ")
}
