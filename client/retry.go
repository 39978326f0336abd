package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Backoff between attempts at different endpoints: randomised in [b/2, b], with b
// starting at minBackoff and doubling up to maxBackoff.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 200 * time.Millisecond
)

// route says where an operation starts and which answers it follows.
type route int

const (
	// toLeader starts at the known leader (or the first endpoint) and follows
	// NotLeader: writes and linearizable reads.
	toLeader route = iota
	// toAny tries the endpoints in their configured order: stale reads.
	toAny
	// toLeaderOnce is toLeader for a request the caller must see fail rather
	// than have it sent again once a replica may have acted on it: Unavailable,
	// or a failure after the connection was open, ends the operation at once
	// (reconfigure, whose caller reads the cluster's status before asking again).
	toLeaderOnce
)

// callFunc performs one attempt of an operation on a connection.
type callFunc func(ctx context.Context, kv *kvapi.KVClient) error

// run performs an operation until it succeeds, fails with a final error, or its
// deadline (Config.Timeout, or ctx's if earlier) passes. maybeApplied reports
// whether some attempt may have taken effect without a definite answer: it ended
// in Unavailable or a failure after the connection was open. A NotLeader or a
// failed dial promise the request was not proposed.
func (c *Client) run(ctx context.Context, op string, rt route, call callFunc) (maybeApplied bool, err error) {
	parent := ctx
	budget := c.cfg.Timeout
	if dl, ok := parent.Deadline(); ok {
		budget = min(budget, time.Until(dl))
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()

	eps := c.cfg.Endpoints
	addr := ""
	if rt != toAny {
		addr = c.Leader()
	}
	// next is the index in eps of the endpoint to try after a failure.
	next := 0
	if addr == "" {
		addr = eps[0]
		next = 1
	} else if i := slices.Index(eps, addr); i >= 0 {
		next = i + 1
	}

	backoff := minBackoff
	redirects := 0 // NotLeader redirects followed since the last backoff
	var lastAddr string
	var lastErr error
	// lastSaid is the last reason a replica gave, with its address: an
	// Unavailable explaining why it cannot serve (its disk is full, it lost
	// its quorum), a NotLeader, or a TLS handshake that failed on a
	// certificate. Any of them says more than the timeouts and connection
	// failures that may follow it, such as a last attempt the deadline cut off.
	var lastSaid string
	// refused holds the endpoints whose TLS handshake failed on a certificate.
	// Once all of them have, retrying until the deadline cannot help: the
	// certificates will not change in the meantime.
	var refused map[string]bool // made at the first refusal: most operations see none
	for {
		sent, err := c.attempt(ctx, addr, call)
		if err == nil {
			if rt != toAny {
				c.noteLeader(addr)
			}
			return maybeApplied, nil
		}
		if errors.Is(err, ErrClosed) {
			return maybeApplied, c.closedErr(op)
		}
		if ctx.Err() != nil && !isIDLException(err) {
			// The deadline passed or the caller gave up during this attempt.
			if sent {
				maybeApplied = true
				lastAddr, lastErr = addr, errors.New("no answer before the deadline")
			} else if lastErr == nil {
				lastAddr, lastErr = addr, err
			}
			break
		}

		var notLeader *kvapi.NotLeader
		var unavailable *kvapi.Unavailable
		var invalid *kvapi.InvalidArgument
		var notFound *kvapi.NotFound
		switch {
		case errors.As(err, &invalid):
			return maybeApplied, fmt.Errorf("%s at %s: %w", op, addr, &InvalidArgumentError{
				Message: invalid.GetMessage(),
				Field:   invalid.GetField(),
				Limit:   invalid.GetLimit(),
			})
		case errors.As(err, &notFound):
			return maybeApplied, fmt.Errorf("%s: %w", op, ErrNotFound)
		case errors.As(err, &notLeader):
			to := notLeader.GetLeaderAddr()
			if to != "" && to != addr && redirects <= len(eps) {
				redirects++
				c.noteLeader(to)
				lastAddr, lastErr = addr, fmt.Errorf("not leader, redirected to %s", to)
				lastSaid = addr + ": " + lastErr.Error()
				addr = to
				continue
			}
			c.forgetLeader(addr)
			if to == "" {
				lastErr = errors.New("not leader, no leader known")
			} else {
				lastErr = fmt.Errorf("not leader, redirected to %s too often", to)
			}
			lastSaid = addr + ": " + lastErr.Error()
		case errors.As(err, &unavailable):
			maybeApplied = true
			c.forgetLeader(addr)
			lastErr = fmt.Errorf("Unavailable: %s", unavailable.GetMessage())
			lastSaid = addr + ": " + lastErr.Error()
			if rt == toLeaderOnce {
				return maybeApplied, fmt.Errorf("%s at %s: %w: %s", op, addr, ErrUnavailable, unavailable.GetMessage())
			}
		default:
			// A dial failure, a lost or timed-out connection, or an unexpected
			// exception: the next endpoint may do better.
			maybeApplied = maybeApplied || sent
			c.forgetLeader(addr)
			lastErr = err
			if isCertificateRefusal(err) {
				lastSaid = addr + ": " + err.Error()
				if refused == nil {
					refused = make(map[string]bool, len(eps))
				}
				refused[addr] = true
				if allRefused(eps, refused) {
					return maybeApplied, fmt.Errorf("%s: %w: every endpoint refused the TLS handshake on a certificate (last: %s)", op, ErrUnavailable, lastSaid)
				}
			}
			if rt == toLeaderOnce && sent {
				return maybeApplied, fmt.Errorf("%s at %s: %w: %v", op, addr, ErrUnavailable, err)
			}
		}
		lastAddr = addr
		c.log.Debug("attempt failed", "op", op, "addr", addr, "err", lastErr)

		redirects = 0
		if !sleep(ctx, jitter(backoff)) {
			break
		}
		backoff = min(2*backoff, maxBackoff)
		addr = eps[next%len(eps)]
		next++
	}
	return maybeApplied, expired(parent, op, budget, lastAddr, lastErr, lastSaid)
}

// attempt performs call once at addr. sent reports whether a connection was open,
// so the request may have reached the replica.
func (c *Client) attempt(ctx context.Context, addr string, call callFunc) (sent bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := c.pool(addr)
	if err != nil {
		return false, err
	}
	cn, err := p.get(ctx)
	if err != nil {
		return false, err
	}
	err = cn.call(ctx, call)
	p.put(cn)
	return true, err
}

// expired is the error of an operation whose deadline passed (ErrUnavailable) or
// whose caller cancelled it (the context's error).
func expired(parent context.Context, op string, budget time.Duration, lastAddr string, lastErr error, lastSaid string) error {
	last := "no attempt completed"
	if lastErr != nil {
		last = "last: " + lastAddr + ": " + lastErr.Error()
	}
	if lastSaid != "" && lastSaid != lastAddr+": "+lastErr.Error() {
		last += "; last reason given: " + lastSaid
	}
	if err := parent.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w (%s)", op, err, last)
	}
	return fmt.Errorf("%s: %w within %s (%s)", op, ErrUnavailable, budget.Round(time.Millisecond), last)
}

// isCertificateRefusal reports whether err is a TLS handshake that failed on a
// certificate: the replica's, which this client does not trust, or this
// client's, which the replica refused (a TLS alert).
func isCertificateRefusal(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) ||
		errors.As(err, &verify) || errors.As(err, &alert) {
		return true
	}
	// An alert the replica sent over TCP arrives as a *net.OpError whose Op is
	// "remote error", wrapping an unexported type: only its text names the
	// certificate ("tls: certificate required", "tls: bad certificate",
	// "tls: unknown certificate authority", ...).
	var remote *net.OpError
	return errors.As(err, &remote) && remote.Op == "remote error" && remote.Err != nil &&
		strings.Contains(remote.Err.Error(), "certificate")
}

// allRefused reports whether every endpoint in eps is in refused.
func allRefused(eps []string, refused map[string]bool) bool {
	for _, ep := range eps {
		if !refused[ep] {
			return false
		}
	}
	return true
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
