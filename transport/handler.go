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

// peerHandler adapts the Peer service to a StepFunc.
type peerHandler struct {
	step    StepFunc
	timeout time.Duration
}

var _ peerapi.Peer = (*peerHandler)(nil)

// NewPeerHandler returns the Peer service backed by step: each request is
// converted, handed to step with a deadline of timeout (DefaultHandlerTimeout if
// zero or negative), and its reply converted back. A conversion or step error
// reaches the caller as a Thrift application exception.
func NewPeerHandler(step StepFunc, timeout time.Duration) peerapi.Peer {
	if timeout <= 0 {
		timeout = DefaultHandlerTimeout
	}
	return &peerHandler{step: step, timeout: timeout}
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
