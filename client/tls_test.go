package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/internal/tlsconfig/tlstest"
)

func TestTLSPutGet(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	front := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{Certificates: []tls.Certificate{ca.Replica(t, "replica-1").TLS}})
	logs := &syncWriter{w: &bytes.Buffer{}}
	c, err := New(Config{
		Endpoints: []string{front.Addr()},
		Timeout:   5 * time.Second,
		TLS:       &tls.Config{RootCAs: ca.Pool},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Put(ctx, "colour", []byte("blue")); err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}
	// The replica closes the idle connection; the client must notice before
	// it sends the next request, as it does on a plain socket, rather than
	// fail an attempt on it.
	front.Cut()
	got, err := c.Get(ctx, "colour")
	if err != nil || string(got) != "blue" {
		t.Fatalf("Get after the connection was closed: %q, %v", got, err)
	}
	if n := front.Accepted(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if out := logs.String(); strings.Contains(out, "attempt failed") {
		t.Errorf("the closed connection was used:\n%s", out)
	}
}

func TestTLSRefusesUnknownServer(t *testing.T) {
	ca, other := tlstest.NewCA(t, "test CA"), tlstest.NewCA(t, "test CA")
	front := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{Certificates: []tls.Certificate{other.Replica(t, "replica-1").TLS}})
	c, err := New(Config{Endpoints: []string{front.Addr()}, Timeout: 300 * time.Millisecond, TLS: &tls.Config{RootCAs: ca.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Put(context.Background(), "colour", []byte("blue"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("got %v, want ErrUnavailable naming the certificate", err)
	}
}

// TestTLSRefusalEverywhereEndsEarly checks that once every endpoint has
// refused the handshake on a certificate, the operation fails with that reason
// instead of retrying until its deadline.
func TestTLSRefusalEverywhereEndsEarly(t *testing.T) {
	ca, other := tlstest.NewCA(t, "test CA"), tlstest.NewCA(t, "test CA")
	untrusted := &tls.Config{Certificates: []tls.Certificate{other.Replica(t, "replica-1").TLS}}
	a := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), untrusted)
	b := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), untrusted)
	c, err := New(Config{Endpoints: []string{a.Addr(), b.Addr()}, Timeout: time.Minute, TLS: &tls.Config{RootCAs: ca.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Put(context.Background(), "colour", []byte("blue"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "every endpoint refused") ||
		!strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("got %v, want ErrUnavailable saying every endpoint refused the certificate", err)
	}
}

// TestMissingClientCertificateEndsEarly checks the same for the refusal a
// replica sends as a TLS alert when the client has no certificate for it.
func TestMissingClientCertificateEndsEarly(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	front := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{
		Certificates: []tls.Certificate{ca.Replica(t, "replica-1").TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	})
	c, err := New(Config{Endpoints: []string{front.Addr()}, Timeout: time.Minute, TLS: &tls.Config{RootCAs: ca.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Get(context.Background(), "colour")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "every endpoint refused") ||
		!strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("got %v, want ErrUnavailable saying the certificate was required", err)
	}
}

// TestTLSRefusalMovesOnToTheNextEndpoint checks that one replica refusing the
// handshake does not end an operation another replica can serve.
func TestTLSRefusalMovesOnToTheNextEndpoint(t *testing.T) {
	ca, other := tlstest.NewCA(t, "test CA"), tlstest.NewCA(t, "test CA")
	refusing := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{Certificates: []tls.Certificate{other.Replica(t, "replica-1").TLS}})
	serving := kvtest.StartTLSFront(t, kvtest.Start(t).Addr(), &tls.Config{Certificates: []tls.Certificate{ca.Replica(t, "replica-2").TLS}})
	c, err := New(Config{Endpoints: []string{refusing.Addr(), serving.Addr()}, Timeout: time.Minute, TLS: &tls.Config{RootCAs: ca.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(context.Background(), "colour", []byte("blue")); err != nil {
		t.Fatalf("Put with one endpoint refusing and one serving: %v", err)
	}
}

// syncWriter serializes writes from the client's goroutines.
type syncWriter struct {
	mu sync.Mutex // guards w
	w  *bytes.Buffer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
