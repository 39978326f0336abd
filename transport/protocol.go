package transport

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/thrift/lib/go/thrift"
)

// framedBinary is the binary protocol over a framed transport with a cheaper
// ReadBinary. Thrift's own grows a buffer from 512 bytes while it copies, so that
// a lying length prefix cannot make it allocate much; that costs several
// allocations and about five times the data for each small binary, and a peer
// message carries one per log entry. Here the frame is already in memory, so a
// length is checked against what is left of the frame and the data read into a
// slice of exactly that size.
type framedBinary struct {
	*thrift.TBinaryProtocol
	frame *thrift.TFramedTransport
	cfg   *thrift.TConfiguration
}

// newFramedBinary stacks a framed transport and the binary protocol, both
// configured by cfg, on trans.
func newFramedBinary(trans thrift.TTransport, cfg *thrift.TConfiguration) *framedBinary {
	frame := thrift.NewTFramedTransportConf(trans, cfg)
	return &framedBinary{
		TBinaryProtocol: thrift.NewTBinaryProtocolConf(frame, cfg),
		frame:           frame,
		cfg:             cfg,
	}
}

var _ thrift.TProtocol = (*framedBinary)(nil)

func (p *framedBinary) ReadBinary(ctx context.Context) ([]byte, error) {
	size, err := p.ReadI32(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case size < 0:
		return nil, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE,
			fmt.Errorf("negative binary size %d", size))
	case size > p.cfg.GetMaxMessageSize():
		return nil, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT,
			fmt.Errorf("size exceeded max allowed: %d", size))
	case uint64(size) > p.frame.RemainingBytes():
		return nil, thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA,
			fmt.Errorf("binary of %d bytes overruns its frame (%d bytes left)", size, p.frame.RemainingBytes()))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(p.frame, buf); err != nil {
		return nil, thrift.NewTProtocolException(err)
	}
	return buf, nil
}
