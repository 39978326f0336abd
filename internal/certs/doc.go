// Package certs generates a private certificate authority and the certificates
// a Ballot cluster needs to run with TLS: one per replica, which serves its
// client and peer ports and authenticates its calls to the other replicas, and
// one for clients. It exists so that TLS can be tried locally in a minute
// (`ballot certs`, `make certs`); a production cluster brings certificates from
// its own CA, issued to the same shape (see docs/security.md).
//
// Generate writes into one directory:
//
//	ca.pem, ca.key                 self-signed ECDSA P-256 CA "Ballot local CA"
//	replica-<id>.pem, .key         CN "replica-<id>", a SAN for every host of the
//	                               replica's client and peer addresses (plus
//	                               localhost, 127.0.0.1 and ::1 when one is a
//	                               loopback host); ExtKeyUsage ServerAuth and ClientAuth
//	client.pem, client.key         CN "ballot-client", no SANs; ExtKeyUsage ClientAuth
//
// Keys are ECDSA P-256 in PKCS#8 PEM ("PRIVATE KEY") with mode 0600, certificates
// PEM with mode 0644. Serial numbers are random 128-bit numbers; certificates are
// valid from five minutes before generation, to allow for clock skew between
// machines. Generate never replaces an existing file unless Options.Force is set,
// and without Force it checks every file before writing any, so a refusal leaves
// the directory as it was.
package certs
