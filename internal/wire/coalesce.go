// Package wire holds the small pieces of Thrift plumbing that both the replica and
// the Go client need.
package wire

import (
	"context"

	"github.com/apache/thrift/lib/go/thrift"
)

// maxKept is the largest buffer a Coalescer keeps between messages; a larger one
// (after a big value) is dropped so idle connections stay small.
const maxKept = 64 << 10

// Coalescer is a thrift.TTransport that holds writes until Flush and then sends
// them with one Write. Thrift's framed transport writes a message's length prefix
// and its body separately; under it, a Coalescer makes each message one system
// call instead of two. It is not safe for concurrent use, like the transports it
// wraps.
type Coalescer struct {
	thrift.TTransport
	buf []byte
}

// NewCoalescer wraps t.
func NewCoalescer(t thrift.TTransport) *Coalescer { return &Coalescer{TTransport: t} }

// Write buffers p.
func (c *Coalescer) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// Flush writes everything buffered in one call, then flushes the transport under it.
func (c *Coalescer) Flush(ctx context.Context) error {
	if len(c.buf) > 0 {
		_, err := c.TTransport.Write(c.buf)
		if cap(c.buf) > maxKept {
			c.buf = nil
		} else {
			c.buf = c.buf[:0]
		}
		if err != nil {
			return thrift.NewTTransportExceptionFromError(err)
		}
	}
	return c.TTransport.Flush(ctx)
}
