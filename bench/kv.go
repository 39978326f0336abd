package bench

import (
	"context"

	"github.com/ballot-kv/ballot/client"
)

// KV is the cluster as one worker sees it. Errors are sorted with Classify, so an
// implementation wraps client's sentinel errors (client.ErrNotFound, ...).
type KV interface {
	Put(ctx context.Context, key string, value []byte) error
	// Get reads linearizably.
	Get(ctx context.Context, key string) error
	// GetStale reads some replica's local copy.
	GetStale(ctx context.Context, key string) error
	Delete(ctx context.Context, key string) error
}

// ClientKV adapts a *client.Client to KV.
type ClientKV struct{ C *client.Client }

var _ KV = ClientKV{}

func (k ClientKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := k.C.Put(ctx, key, value)
	return err
}

func (k ClientKV) Get(ctx context.Context, key string) error {
	_, err := k.C.Get(ctx, key)
	return err
}

func (k ClientKV) GetStale(ctx context.Context, key string) error {
	_, err := k.C.GetStale(ctx, key)
	return err
}

func (k ClientKV) Delete(ctx context.Context, key string) error {
	_, err := k.C.Delete(ctx, key)
	return err
}
