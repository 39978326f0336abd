package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ballot-kv/ballot/bench"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcd's errors are sorted as Ballot client's errors of the same meaning are.
func TestOpErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bench.ErrorKind
	}{
		{context.DeadlineExceeded, bench.ErrUnavailable},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), bench.ErrUnavailable},
		{status.Error(codes.Unavailable, "connection refused"), bench.ErrUnavailable},
		{status.Error(codes.DeadlineExceeded, "deadline"), bench.ErrUnavailable},
		{rpctypes.ErrTimeout, bench.ErrUnavailable},         // "etcdserver: request timed out"
		{rpctypes.ErrNoLeader, bench.ErrUnavailable},        // "etcdserver: no leader"
		{rpctypes.ErrGRPCRequestTooLarge, bench.ErrInvalid}, // a value over the limit
		{rpctypes.ErrEmptyKey, bench.ErrInvalid},            // "etcdserver: key is not provided"
		{rpctypes.ErrGRPCPermissionDenied, bench.ErrOther},  // no Ballot counterpart
		{errors.New("something else"), bench.ErrOther},
	} {
		err := opError("put", "k", tc.err)
		if got := bench.Classify(err); got != tc.want {
			t.Errorf("%v: classified %v, want %v", tc.err, got, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v: the wrapped error lost the original", tc.err)
		}
	}
	if opError("put", "k", nil) != nil {
		t.Error("no error became an error")
	}
}
