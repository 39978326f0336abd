package tlsconfig

import "errors"

// Errors returned by this package, wrapped with the file or certificate they
// concern; check them with errors.Is.
var (
	// ErrNotPEM marks a file that holds no PEM block of the kind expected (a
	// certificate, or a private key).
	ErrNotPEM = errors.New("no PEM data of the expected kind")
	// ErrKeyMismatch marks a private key that does not belong to the certificate
	// it was given with.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrExpired marks a certificate past its NotAfter time.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid marks a certificate before its NotBefore time (often a clock
	// that is behind).
	ErrNotYetValid = errors.New("certificate is not valid yet")
	// ErrUsage marks a certificate without the extended key usage its role needs.
	ErrUsage = errors.New("certificate lacks a required extended key usage")
	// ErrUntrusted marks a replica's own certificate that does not chain to the
	// peer CA it was started with.
	ErrUntrusted = errors.New("certificate is not signed by the CA")
	// ErrNotMember marks a peer certificate that is valid for the host of no
	// member's peer address: the caller is not a replica of this configuration.
	ErrNotMember = errors.New("certificate names no member of the configuration")
	// ErrIncomplete marks a set of files with one missing, such as a key without
	// its certificate.
	ErrIncomplete = errors.New("incomplete TLS settings")
)
