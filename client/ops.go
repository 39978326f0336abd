package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Put stores value under key once a majority of replicas has accepted it.
func (c *Client) Put(ctx context.Context, key string, value []byte) (WriteResult, error) {
	op := fmt.Sprintf("put %q", key)
	if err := checkKey(key); err != nil {
		return WriteResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if len(value) > kvapi.MAX_VALUE_BYTES {
		return WriteResult{}, fmt.Errorf("%s: %w", op, &InvalidArgumentError{
			Message: fmt.Sprintf("value is %d bytes, over the limit of %d bytes (MAX_VALUE_BYTES)",
				len(value), kvapi.MAX_VALUE_BYTES),
			Field: "value",
			Limit: kvapi.MAX_VALUE_BYTES,
		})
	}
	if value == nil {
		value = []byte{}
	}
	return c.write(ctx, op, func(ctx context.Context, kv *kvapi.KVClient, s *session) (*kvapi.WriteResult_, error) {
		return kv.Put(ctx, s.id, s.seq, key, value)
	})
}

// Delete removes key (the IDL's remove). Deleting a missing key succeeds with
// Existed false.
func (c *Client) Delete(ctx context.Context, key string) (WriteResult, error) {
	op := fmt.Sprintf("delete %q", key)
	if err := checkKey(key); err != nil {
		return WriteResult{}, fmt.Errorf("%s: %w", op, err)
	}
	return c.write(ctx, op, func(ctx context.Context, kv *kvapi.KVClient, s *session) (*kvapi.WriteResult_, error) {
		return kv.Remove(ctx, s.id, s.seq, key)
	})
}

// write performs one write with a session of its own, retries included.
func (c *Client) write(ctx context.Context, op string,
	send func(context.Context, *kvapi.KVClient, *session) (*kvapi.WriteResult_, error)) (WriteResult, error) {
	s, err := c.sessions.get()
	if err != nil {
		return WriteResult{}, fmt.Errorf("%s: %w", op, err)
	}
	var res *kvapi.WriteResult_
	maybeApplied, err := c.run(ctx, op, toLeader, func(ctx context.Context, kv *kvapi.KVClient) error {
		r, err := send(ctx, kv, s)
		if err == nil {
			res = r
		}
		return err
	})
	if err == nil || maybeApplied {
		// The seq is spent: the write took effect, or may have. A seq is never
		// reused for a different command.
		s.seq++
	}
	var invalid *InvalidArgumentError
	if errors.As(err, &invalid) && (invalid.Field == "client_id" || invalid.Field == "seq") {
		// The replicas refuse this session; the next write starts a new one.
		c.log.Warn("session refused", "client_id", s.id, "seq", s.seq, "err", err)
		return WriteResult{}, err
	}
	c.sessions.put(s)
	if err != nil {
		return WriteResult{}, err
	}
	return WriteResult{Slot: uint64(res.GetSlot()), Existed: res.GetExisted()}, nil
}

// Get returns the value stored under key, reflecting every write acknowledged
// before the call: the leader serves it. A missing key is ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, fmt.Sprintf("get %q", key), key, kvapi.Consistency_LINEARIZABLE, toLeader)
}

// GetStale returns the value stored under key in the local copy of the first
// reachable endpoint, which may lag behind. A missing key is ErrNotFound.
func (c *Client) GetStale(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, fmt.Sprintf("get %q (stale)", key), key, kvapi.Consistency_STALE, toAny)
}

func (c *Client) get(ctx context.Context, op, key string, cons kvapi.Consistency, rt route) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var res *kvapi.GetResult_
	_, err := c.run(ctx, op, rt, func(ctx context.Context, kv *kvapi.KVClient) error {
		r, err := kv.Get(ctx, key, cons)
		if err == nil {
			res = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v := res.GetValue(); v != nil {
		return v, nil
	}
	return []byte{}, nil
}

// Status asks the replica at endpoint (a client address, which need not be one of
// Config.Endpoints) for its status, once, within Config.Timeout. A replica that
// is starting, and serves nothing yet, gives a *StartingError (ErrUnavailable).
func (c *Client) Status(ctx context.Context, endpoint string) (*kvapi.ReplicaStatus, error) {
	var st *kvapi.ReplicaStatus
	err := c.once(ctx, "status "+endpoint, endpoint, func(ctx context.Context, kv *kvapi.KVClient) error {
		r, err := kv.Status(ctx)
		if err == nil {
			st = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if st.GetStarting() != "" {
		return nil, &StartingError{Endpoint: endpoint, ID: st.GetID(), Reason: st.GetStarting()}
	}
	return st, nil
}

// Digest is a fingerprint of one replica's store at one applied slot. Replicas at
// the same applied slot hold the same data exactly when their Sums are equal.
type Digest struct {
	// Applied is the applied slot the digest was taken at.
	Applied uint64
	// Keys is the number of keys in the store at that slot.
	Keys int64
	// Sum is the SHA-256 over every key and value at that slot (idl/kv.thrift
	// says how they are laid out).
	Sum [sha256.Size]byte
}

// Digest asks the replica at endpoint (a client address, which need not be one of
// Config.Endpoints) for a digest of its store, once, within Config.Timeout. An
// answer with a negative slot or key count, or a digest that is not 32 bytes, is
// ErrCorrupt.
func (c *Client) Digest(ctx context.Context, endpoint string) (Digest, error) {
	op := "digest " + endpoint
	var d *kvapi.Digest
	err := c.once(ctx, op, endpoint, func(ctx context.Context, kv *kvapi.KVClient) error {
		r, err := kv.Digest(ctx)
		if err == nil {
			d = r
		}
		return err
	})
	switch {
	case err != nil:
		return Digest{}, err
	case d.GetApplied() < 0 || d.GetKeys() < 0:
		return Digest{}, fmt.Errorf("%s: %w: applied slot %d, %d keys", op, ErrCorrupt, d.GetApplied(), d.GetKeys())
	case len(d.GetSha256()) != sha256.Size:
		return Digest{}, fmt.Errorf("%s: %w: digest of %d bytes, want %d", op, ErrCorrupt, len(d.GetSha256()), sha256.Size)
	}
	out := Digest{Applied: uint64(d.GetApplied()), Keys: d.GetKeys()}
	copy(out.Sum[:], d.GetSha256())
	return out, nil
}

// once performs call once at endpoint within Config.Timeout, for the calls that
// ask one particular replica about itself.
func (c *Client) once(ctx context.Context, op, endpoint string, call callFunc) error {
	if err := checkEndpoint(endpoint); err != nil {
		return fmt.Errorf("%s: %w: %v", op, ErrInvalidArgument, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.attempt(ctx, endpoint, call)
	switch {
	case errors.Is(err, ErrClosed):
		return c.closedErr(op)
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("%s: %w: no answer within %s", op, ErrUnavailable, c.cfg.Timeout)
	case err != nil:
		return fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
	}
	return nil
}

// checkKey rejects what every replica would: an empty key or one over its limit.
func checkKey(key string) error {
	switch {
	case key == "":
		return &InvalidArgumentError{
			Message: fmt.Sprintf("key is empty; a key is 1 to %d bytes (MAX_KEY_BYTES)", kvapi.MAX_KEY_BYTES),
			Field:   "key",
		}
	case len(key) > kvapi.MAX_KEY_BYTES:
		return &InvalidArgumentError{
			Message: fmt.Sprintf("key is %d bytes, over the limit of %d bytes (MAX_KEY_BYTES)",
				len(key), kvapi.MAX_KEY_BYTES),
			Field: "key",
			Limit: kvapi.MAX_KEY_BYTES,
		}
	}
	return nil
}
