package cli

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCerts(t *testing.T) {
	clearEnv(t)
	replicasFile := writeReplicas(t, "127.0.0.1:7001", "db2.example:7002")
	out := filepath.Join(t.TempDir(), "certs")

	r := run(t, "", "--replicas", replicasFile, "certs", "--out", out, "--days", "30", "--client-name", "reporting-job")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("certs: %v; want exit 0 and nothing on stderr", r)
	}
	for _, name := range []string{"ca.pem", "ca.key", "replica-1.pem", "replica-1.key", "replica-2.pem", "replica-2.key", "client.pem", "client.key"} {
		path := filepath.Join(out, name)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !strings.Contains(r.stdout, path) {
			t.Errorf("output does not name %s:\n%s", path, r.stdout)
		}
	}
	for _, want := range []string{
		"replica 1, for 127.0.0.1, ::1, localhost",
		"replica 2, for 127.0.0.1, ::1, db2.example, localhost", // its peer address is 127.0.0.1:9002
		`client "reporting-job"`,
		"--peer-cert " + filepath.Join(out, "replica-1.pem"),
		"--peer-key " + filepath.Join(out, "replica-1.key"),
		"--peer-ca " + filepath.Join(out, "ca.pem"),
		"--client-cert " + filepath.Join(out, "replica-1.pem"),
		"--client-key " + filepath.Join(out, "replica-1.key"),
		"--client-ca " + filepath.Join(out, "ca.pem"),
		"--cacert " + filepath.Join(out, "ca.pem"),
		"--cert " + filepath.Join(out, "client.pem"),
		"--key " + filepath.Join(out, "client.key"),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	roots := x509.NewCertPool()
	ca, err := readCertificate(filepath.Join(out, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(ca)
	if left := time.Until(ca.NotAfter); left < 29*24*time.Hour || left > 31*24*time.Hour {
		t.Errorf("--days 30: the CA expires in %v", left)
	}
	replica2, err := readCertificate(filepath.Join(out, "replica-2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica2.Verify(x509.VerifyOptions{DNSName: "db2.example", Roots: roots}); err != nil {
		t.Errorf("replica 2 for db2.example: %v", err)
	}
	client, err := readCertificate(filepath.Join(out, "client.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if client.Subject.CommonName != "reporting-job" {
		t.Errorf("client CN %q, want reporting-job", client.Subject.CommonName)
	}

	// A second run must not replace the CA the cluster already trusts...
	caBefore, err := os.ReadFile(filepath.Join(out, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "--replicas", replicasFile, "certs", "--out", out)
	if r.code != ExitFailure || !strings.Contains(r.stderr, filepath.Join(out, "ca.pem")) || !strings.Contains(r.stderr, "--force") {
		t.Errorf("certs again: %v; want exit 3 naming ca.pem and --force", r)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(out, "ca.pem")); string(caAfter) != string(caBefore) {
		t.Error("a refused run replaced ca.pem")
	}
	// ... unless asked to.
	if r := run(t, "", "--replicas", replicasFile, "certs", "--out", out, "--force"); r.code != 0 {
		t.Errorf("certs --force: %v", r)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(out, "ca.pem")); string(caAfter) == string(caBefore) {
		t.Error("certs --force left ca.pem as it was")
	}
}

func TestCertsUsageAndFailures(t *testing.T) {
	clearEnv(t)
	replicasFile := writeReplicas(t, "127.0.0.1:7001")
	missing := filepath.Join(t.TempDir(), "nowhere.txt")
	for _, tc := range []struct {
		name     string
		replicas string
		args     []string // after "certs --out DIR"
		code     int
		want     string // in stderr
	}{
		{"zero days", replicasFile, []string{"--days", "0"}, ExitUsage, "--days"},
		{"empty client name", replicasFile, []string{"--client-name", ""}, ExitUsage, "--client-name"},
		{"argument", replicasFile, []string{"extra"}, ExitUsage, "want no arguments"},
		{"no replicas file", missing, nil, ExitFailure, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "certs")
			r := run(t, "", append([]string{"--replicas", tc.replicas, "certs", "--out", out}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v; want exit %d and %q on stderr", r, tc.code, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a failed run created %s", out)
			}
		})
	}
}
