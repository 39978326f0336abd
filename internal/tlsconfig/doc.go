// Package tlsconfig turns the PEM files named by ballotd's and ballot's TLS flags
// into *tls.Config values, for each side of each port:
//
//   - PeerServer: a replica's peer port. Mutual TLS 1.3: the caller must present
//     a certificate that chains to the peer CA, carries the ClientAuth usage and
//     is valid (x509 VerifyHostname) for the host of the peer address of a member
//     of the replica's configuration as it is at that handshake.
//   - PeerClient: a replica's calls to the other replicas, with its own
//     certificate, verifying theirs against the peer CA.
//   - ClientPortServer: a replica's client port, TLS 1.2 or later, with client
//     certificates required when a client CA is given.
//   - Client: the ballot command and other Go clients.
//
// Every error names the file and what is wrong with it: missing, holding no PEM
// block of the right kind, a key that does not belong to the certificate, a
// certificate that has expired or is not valid yet, or one the peer CA did not
// sign. A certificate that expires within ExpiryWarning is loaded and logged.
//
// A *tls.Config returned here verifies a server against the host of the address
// dialled only once its ServerName is set to that host; package transport and
// package client do so for every address they dial.
package tlsconfig
