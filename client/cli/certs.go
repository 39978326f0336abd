package cli

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/internal/certs"
	"github.com/ballot-kv/ballot/replicas"
)

// certsCommand is `ballot certs`: a local CA and certificates for trying TLS.
func certsCommand() *cli.Command {
	return &cli.Command{
		Name:  "certs",
		Usage: "write a local CA and TLS certificates for every replica and a client",
		Description: "Reads the replicas from --replicas (default ./replicas.txt; --endpoints does\n" +
			"not apply) and writes into --out: ca.pem and ca.key, a new self-signed CA;\n" +
			"replica-<id>.pem and .key for every replica, valid for the hosts of its client\n" +
			"and peer addresses, for serving and for calling the other replicas; and\n" +
			"client.pem and client.key for clients. Keys are written with mode 0600.\n" +
			"Existing files are never replaced without --force. This is for trying TLS\n" +
			"locally; a production cluster brings certificates from its own CA\n" +
			"(docs/security.md).",
		ArgsUsage:    " ",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "certs", Usage: "`DIR` to write the files into (created with mode 0700)"},
			&cli.IntFlag{Name: "days", Value: certs.DefaultDays, Usage: "how many days the certificates are valid"},
			&cli.StringFlag{Name: "client-name", Value: certs.DefaultClientName, Usage: "CommonName of the client certificate"},
			&cli.BoolFlag{Name: "force", Usage: "replace existing files (certificates issued by the old CA stop being trusted)"},
		},
		Action: writeCerts,
	}
}

// writeCerts generates the certificates, prints the files and how to use them.
func writeCerts(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "want no arguments, got %d", c.NArg())
	}
	days := c.Int("days")
	if days < 1 || days > certs.MaxDays {
		return usageError(c, "--days must be from 1 to %d, got %d", certs.MaxDays, days)
	}
	clientName := c.String("client-name")
	if strings.TrimSpace(clientName) == "" {
		return usageError(c, "--client-name must not be empty")
	}
	replicasFile := c.String("replicas")
	list, err := replicas.Load(replicasFile)
	if err != nil {
		return failure(err)
	}
	written, err := certs.Generate(c.String("out"), list, certs.Options{
		Days: days, ClientName: clientName, Force: c.Bool("force"),
	})
	if errors.Is(err, fs.ErrExist) {
		return failure(fmt.Errorf("certs: %w; pass --force to replace the files (clients and replicas must then use the new ones)", err))
	}
	if err != nil {
		return failure(fmt.Errorf("certs: %w", err))
	}
	if err := printCerts(c, replicasFile, list, written); err != nil {
		return failure(fmt.Errorf("certs: write output: %w", err))
	}
	return nil
}

// printCerts lists the files written, what each certificate is for, and the
// flags that use them.
func printCerts(c *cli.Context, replicasFile string, list []replicas.Replica, w certs.Written) error {
	var b strings.Builder
	ca, err := readCertificate(w.CA)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "wrote %s and %s: CA %q, valid until %s\n", w.CA, w.CAKey, ca.Subject.CommonName, ca.NotAfter.UTC().Format("2006-01-02"))
	for _, r := range list {
		files := w.Replicas[r.ID]
		cert, err := readCertificate(files.Cert)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "wrote %s and %s: replica %d, for %s\n", files.Cert, files.Key, r.ID, strings.Join(certHosts(cert), ", "))
	}
	client, err := readCertificate(w.Client.Cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "wrote %s and %s: client %q\n", w.Client.Cert, w.Client.Key, client.Subject.CommonName)

	first := list[0]
	mine := w.Replicas[first.ID]
	fmt.Fprintf(&b, "next: start every replica with its own certificate, replica %d as\n", first.ID)
	fmt.Fprintf(&b, "  ballotd --id %d --replicas %s --data data/%d \\\n", first.ID, replicasFile, first.ID)
	fmt.Fprintf(&b, "    --peer-cert %s --peer-key %s --peer-ca %s \\\n", mine.Cert, mine.Key, w.CA)
	fmt.Fprintf(&b, "    --client-cert %s --client-key %s --client-ca %s\n", mine.Cert, mine.Key, w.CA)
	b.WriteString("then call it with the CA and the client certificate:\n")
	fmt.Fprintf(&b, "  ballot --replicas %s --cacert %s --cert %s --key %s status\n", replicasFile, w.CA, w.Client.Cert, w.Client.Key)
	fmt.Fprintf(&b, "keep %s private: it can issue certificates every replica trusts (docs/security.md)\n", w.CAKey)
	_, err = fmt.Fprint(c.App.Writer, b.String())
	return err
}

// readCertificate parses the PEM certificate at path.
func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// certHosts lists the hosts a certificate is valid for: its IP and DNS SANs.
func certHosts(cert *x509.Certificate) []string {
	hosts := make([]string, 0, len(cert.IPAddresses)+len(cert.DNSNames))
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return append(hosts, cert.DNSNames...)
}
