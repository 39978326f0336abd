package wire

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

// countingTransport records every Write it receives.
type countingTransport struct {
	thrift.TTransport
	writes [][]byte
}

func (c *countingTransport) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingTransport) Flush(context.Context) error { return nil }

// A framed message written through a Coalescer reaches the socket in one write,
// byte for byte what the framed transport produced.
func TestFramedMessageIsOneWrite(t *testing.T) {
	under := &countingTransport{TTransport: thrift.NewTMemoryBuffer()}
	cfg := &thrift.TConfiguration{}
	framed := thrift.NewTFramedTransportConf(NewCoalescer(under), cfg)
	prot := thrift.NewTBinaryProtocolConf(framed, cfg)
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		under.writes = nil
		if err := prot.WriteMessageBegin(ctx, "put", thrift.CALL, int32(round)); err != nil {
			t.Fatal(err)
		}
		if err := prot.WriteBinary(ctx, bytes.Repeat([]byte{'v'}, 100<<10*round)); err != nil {
			t.Fatal(err)
		}
		if err := prot.WriteMessageEnd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := prot.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if len(under.writes) != 1 {
			t.Fatalf("round %d: %d writes reached the socket, want 1", round, len(under.writes))
		}
		// The frame reads back as the message that was written.
		in := thrift.NewTMemoryBuffer()
		in.Write(under.writes[0])
		rp := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(in, cfg), cfg)
		name, _, seq, err := rp.ReadMessageBegin(ctx)
		if err != nil || name != "put" || seq != int32(round) {
			t.Fatalf("round %d: read back %q seq %d: %v", round, name, seq, err)
		}
	}
}
