package transport

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// DefaultHandlerTimeout bounds a StepFunc when NewPeerHandler is given no timeout.
const DefaultHandlerTimeout = 5 * time.Second

// StepFunc delivers a request message to the local replica and returns its reply,
// after the replica has made the state the reply depends on durable. The request's
// From is the sender; its To and Token are zero.
type StepFunc func(ctx context.Context, req peer.Message) (peer.Message, error)

// InquireFunc answers inquire for the local replica; from is the asking replica.
type InquireFunc func(ctx context.Context, from uint64) (Inquiry, error)

// peerHandler adapts the Peer service to a StepFunc and a SnapshotSource.
type peerHandler struct {
	step      StepFunc
	snapshots SnapshotSource // nil: no snapshots to give
	inquire   InquireFunc    // nil: inquire fails
	timeout   time.Duration
}

// WithInquire makes the Peer service h (from NewPeerHandler) answer inquire with fn.
func WithInquire(h peerapi.Peer, fn InquireFunc) peerapi.Peer {
	if ph, ok := h.(*peerHandler); ok {
		ph.inquire = fn
	}
	return h
}

func (h *peerHandler) Inquire(ctx context.Context, r *peerapi.InquiryRequest) (*peerapi.Inquiry, error) {
	if r == nil || r.Sender <= 0 {
		return nil, fmt.Errorf("inquire: sender: %w", ErrMissingField)
	}
	if h.inquire == nil {
		return nil, fmt.Errorf("inquire from %d: %w", r.Sender, ErrUnsupported)
	}
	qctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	q, err := h.inquire(qctx, uint64(r.Sender))
	if err != nil {
		return nil, fmt.Errorf("inquire from %d: %w", r.Sender, err)
	}
	return InquiryToThrift(q)
}

var _ peerapi.Peer = (*peerHandler)(nil)

// NewPeerHandler returns the Peer service backed by step and snapshots: each
// Paxos request is converted, handed to step with a deadline of timeout
// (DefaultHandlerTimeout if zero or negative), and its reply converted back;
// fetch_snapshot is checked, its max_bytes capped at MaxSnapshotChunk, and
// answered by snapshots under the same deadline (with a nil snapshots, always
// with index 0: no snapshot). A conversion, validation or step error reaches the
// caller as a Thrift application exception.
func NewPeerHandler(step StepFunc, snapshots SnapshotSource, timeout time.Duration) peerapi.Peer {
	if timeout <= 0 {
		timeout = DefaultHandlerTimeout
	}
	return &peerHandler{step: step, snapshots: snapshots, timeout: timeout}
}

func (h *peerHandler) Prepare(ctx context.Context, r *peerapi.PrepareRequest) (*peerapi.Promise, error) {
	req, err := PrepareFromThrift(r)
	if err != nil {
		return nil, err
	}
	reply, err := h.call(ctx, req, peer.MsgPromise)
	if err != nil {
		return nil, err
	}
	return PromiseToThrift(reply)
}

func (h *peerHandler) Accept(ctx context.Context, r *peerapi.AcceptRequest) (*peerapi.Accepted, error) {
	req, err := AcceptFromThrift(r)
	if err != nil {
		return nil, err
	}
	reply, err := h.call(ctx, req, peer.MsgAccepted)
	if err != nil {
		return nil, err
	}
	return AcceptedToThrift(reply)
}

func (h *peerHandler) Execute(ctx context.Context, r *peerapi.ExecuteRequest) (*peerapi.Executed, error) {
	req, err := ExecuteFromThrift(r)
	if err != nil {
		return nil, err
	}
	reply, err := h.call(ctx, req, peer.MsgExecuted)
	if err != nil {
		return nil, err
	}
	return ExecutedToThrift(reply)
}

func (h *peerHandler) FetchSnapshot(ctx context.Context, r *peerapi.SnapshotRequest) (*peerapi.SnapshotChunk, error) {
	req, err := snapshotRequestFromThrift(r)
	if err != nil {
		return nil, fmt.Errorf("fetch_snapshot: %w", err)
	}
	if err := req.check(); err != nil {
		return nil, fmt.Errorf("fetch_snapshot from %d: %w", req.from, err)
	}
	req.maxBytes = min(req.maxBytes, MaxSnapshotChunk)
	if h.snapshots == nil {
		return snapshotChunkToThrift(SnapshotChunk{})
	}
	srcCtx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	ch, err := h.snapshots.SnapshotChunk(srcCtx, req.from, req.index, req.offset, req.maxBytes)
	if err == nil {
		err = checkChunk(req, ch)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch_snapshot from %d: %w: %w", req.from, thrift.ErrAbandonRequest, err)
		}
		return nil, fmt.Errorf("fetch_snapshot from %d: snapshot %d at %d: %w", req.from, req.index, req.offset, err)
	}
	return snapshotChunkToThrift(ch)
}

// call steps req with the handler's deadline and checks the reply's type.
func (h *peerHandler) call(ctx context.Context, req peer.Message, want peer.MessageType) (peer.Message, error) {
	stepCtx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	reply, err := h.step(stepCtx, req)
	if err != nil {
		if ctx.Err() != nil {
			// The connection is gone (or the server closing): nobody is left
			// to read an answer.
			return peer.Message{}, fmt.Errorf("%s from %d: %w: %w", req.Type, req.From, thrift.ErrAbandonRequest, err)
		}
		return peer.Message{}, fmt.Errorf("%s from %d: %w", req.Type, req.From, err)
	}
	if reply.Type != want {
		return peer.Message{}, fmt.Errorf("%s from %d: replica answered %s, want %s: %w",
			req.Type, req.From, reply.Type, want, ErrUnsupported)
	}
	return reply, nil
}
