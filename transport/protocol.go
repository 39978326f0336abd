package transport

import (
	"context"
	"fmt"
	"io"
	"unsafe"

	"github.com/apache/thrift/lib/go/thrift"
)

// framedBinary is the binary protocol over a framed transport with a cheaper
// ReadBinary and ReadString, and container sizes checked against the frame.
// Thrift's own ReadBinary grows a buffer from 512 bytes while it copies, so that
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
	return p.readBytes(ctx, "binary")
}

// ReadString is ReadBinary for strings. Thrift's own would read past the end of
// the frame into the next frames for a string longer than its frame, waiting
// for them on the socket; here such a string is refused at once.
func (p *framedBinary) ReadString(ctx context.Context) (string, error) {
	b, err := p.readBytes(ctx, "string")
	if err != nil || len(b) == 0 {
		return "", err
	}
	// b was made for this string alone and is never written again.
	return unsafe.String(&b[0], len(b)), nil
}

// readBytes reads a length prefix and that many bytes of the current frame.
func (p *framedBinary) readBytes(ctx context.Context, kind string) ([]byte, error) {
	size, err := p.ReadI32(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case size < 0:
		return nil, thrift.NewTProtocolExceptionWithType(thrift.NEGATIVE_SIZE,
			fmt.Errorf("negative %s size %d", kind, size))
	case size > p.cfg.GetMaxMessageSize():
		return nil, thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT,
			fmt.Errorf("size exceeded max allowed: %d", size))
	case uint64(size) > p.frame.RemainingBytes():
		return nil, thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA,
			fmt.Errorf("%s of %d bytes overruns its frame (%d bytes left)", kind, size, p.frame.RemainingBytes()))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(p.frame, buf); err != nil {
		return nil, thrift.NewTProtocolException(err)
	}
	return buf, nil
}

// Thrift's binary protocol checks a list's, set's or map's announced size only
// against MaxMessageSize, and the generated code then makes a slice of that
// capacity: a 30-byte frame announcing a list of 64 million entries would cost
// 512 MiB of pointers on the peer port. Every element takes at least
// minWireSize bytes of the frame, so a size the rest of the frame cannot hold is
// refused before anything is allocated.

func (p *framedBinary) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	elem, size, err := p.TBinaryProtocol.ReadListBegin(ctx)
	if err == nil {
		err = p.checkElements("list", size, minWireSize(elem))
	}
	return elem, size, err
}

func (p *framedBinary) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	elem, size, err := p.TBinaryProtocol.ReadSetBegin(ctx)
	if err == nil {
		err = p.checkElements("set", size, minWireSize(elem))
	}
	return elem, size, err
}

func (p *framedBinary) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	key, value, size, err := p.TBinaryProtocol.ReadMapBegin(ctx)
	if err == nil {
		err = p.checkElements("map", size, minWireSize(key)+minWireSize(value))
	}
	return key, value, size, err
}

// checkElements refuses a container of size elements of at least each bytes
// that overruns the rest of the frame.
func (p *framedBinary) checkElements(kind string, size int, each uint64) error {
	if left := p.frame.RemainingBytes(); uint64(size) > left/each {
		return thrift.NewTProtocolExceptionWithType(thrift.INVALID_DATA,
			fmt.Errorf("%s of %d elements overruns its frame (%d bytes left)", kind, size, left))
	}
	return nil
}

// minWireSize is the fewest bytes a value of type t takes in the binary
// protocol.
func minWireSize(t thrift.TType) uint64 {
	switch t {
	case thrift.I16:
		return 2
	case thrift.I32, thrift.STRING: // a string or binary is at least its length
		return 4
	case thrift.I64, thrift.DOUBLE:
		return 8
	case thrift.UUID:
		return 16
	case thrift.LIST, thrift.SET:
		return 5 // element type and size
	case thrift.MAP:
		return 6 // key and value types and size
	default:
		return 1 // bool, byte, a struct's stop field, or a type the protocol refuses anyway
	}
}
