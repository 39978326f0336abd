package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/client"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kv is one worker's view of an etcd cluster. Each operation has the same
// deadline as a Ballot client's, and its errors wrap Ballot's client errors so
// that bench.Classify sorts them the same way.
type kv struct {
	c       *clientv3.Client
	timeout time.Duration
}

var _ bench.KV = (*kv)(nil)

func (k *kv) Put(ctx context.Context, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	_, err := k.c.Put(ctx, key, string(value))
	return opError("put", key, err)
}

// Get is etcd's default read, linearizable.
func (k *kv) Get(ctx context.Context, key string) error {
	return k.get(ctx, "get", key)
}

// GetStale is a serializable read: the member's own copy, no round to the leader.
func (k *kv) GetStale(ctx context.Context, key string) error {
	return k.get(ctx, "stale get", key, clientv3.WithSerializable())
}

func (k *kv) get(ctx context.Context, op, key string, opts ...clientv3.OpOption) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	resp, err := k.c.Get(ctx, key, opts...)
	if err != nil {
		return opError(op, key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s %q: %w", op, key, client.ErrNotFound)
	}
	return nil
}

func (k *kv) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	_, err := k.c.Delete(ctx, key)
	return opError("delete", key, err)
}

// ownKV is a worker's kv on a client of its own, closed when the run ends.
type ownKV struct{ *kv }

func (k ownKV) Close() error { return k.c.Close() }

// opError wraps an etcd error with the operation, and with the Ballot client
// error of the same meaning where there is one: a deadline or an unreachable
// cluster is client.ErrUnavailable, a refused request client.ErrInvalidArgument.
func opError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch code := codeOf(err); {
	case errors.Is(err, context.DeadlineExceeded), code == codes.DeadlineExceeded, code == codes.Unavailable:
		kind = client.ErrUnavailable
	case code == codes.InvalidArgument:
		kind = client.ErrInvalidArgument
	}
	if kind == nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	return fmt.Errorf("%s %q: %w: %w", op, key, kind, err)
}

// codeOf is the gRPC code of an error from clientv3, which returns etcd's own
// errors as rpctypes.EtcdError and others as gRPC statuses.
func codeOf(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	return status.Code(err)
}
