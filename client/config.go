package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultDialTimeout = time.Second
)

// Config says where a Client finds the cluster and how long it may wait. Its zero
// values mean the defaults, except Endpoints, which must list at least one address.
type Config struct {
	// Endpoints are client addresses (host:port) of any replicas of the cluster, in
	// order of preference: GetStale asks them in this order.
	Endpoints []string
	// Timeout is the overall deadline of one operation, retries included
	// (default DefaultTimeout). A context with an earlier deadline shortens it.
	Timeout time.Duration
	// DialTimeout bounds opening one connection (default DefaultDialTimeout).
	DialTimeout time.Duration
	// Logger receives one line per event worth knowing (leader changed, endpoint
	// unreachable); nil discards them.
	Logger *slog.Logger
	// TLS, when set, makes every connection a TLS connection under a copy of
	// this configuration whose ServerName is the host of the endpoint dialled,
	// unless it names one (tlsconfig.Client builds one from ballot's --cacert,
	// --cert and --key). DialTimeout bounds the handshake with the dial. Nil:
	// plaintext.
	TLS *tls.Config
}

// Validate reports the first problem with the configuration: no endpoints, an
// endpoint that is not host:port with a port from 1 to 65535, or a negative duration.
func (cfg Config) Validate() error {
	if len(cfg.Endpoints) == 0 {
		return errors.New("client config: no endpoints")
	}
	for _, ep := range cfg.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return fmt.Errorf("client config: %w", err)
		}
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("client config: negative timeout %s", cfg.Timeout)
	}
	if cfg.DialTimeout < 0 {
		return fmt.Errorf("client config: negative dial timeout %s", cfg.DialTimeout)
	}
	return nil
}

// withDefaults returns cfg with zero values replaced by the defaults and duplicate
// endpoints dropped (the first occurrence keeps its place).
func (cfg Config) withDefaults() Config {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seen := make(map[string]bool, len(cfg.Endpoints))
	eps := make([]string, 0, len(cfg.Endpoints))
	for _, ep := range cfg.Endpoints {
		if !seen[ep] {
			seen[ep] = true
			eps = append(eps, ep)
		}
	}
	cfg.Endpoints = eps
	return cfg
}

// checkEndpoint accepts host:port with a non-empty host and a port from 1 to 65535.
func checkEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", ep, err)
	}
	if host == "" {
		return fmt.Errorf("endpoint %q: missing host", ep)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("endpoint %q: port must be a number from 1 to 65535", ep)
	}
	return nil
}
