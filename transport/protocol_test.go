package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
)

// readBinaryFrom decodes one binary from a frame whose payload is a length
// prefix followed by data.
func readBinaryFrom(t *testing.T, size int32, data []byte, maxSize int32) ([]byte, error) {
	t.Helper()
	payload := binary.BigEndian.AppendUint32(nil, uint32(size))
	payload = append(payload, data...)
	buf := thrift.NewTMemoryBuffer()
	buf.Write(append(frame(payload), payload...))
	p := newFramedBinary(buf, &thrift.TConfiguration{MaxFrameSize: 1 << 20, MaxMessageSize: maxSize})
	return p.ReadBinary(context.Background())
}

func TestFramedBinaryReadBinary(t *testing.T) {
	data := []byte("a\x00b\x00c")
	got, err := readBinaryFrom(t, int32(len(data)), data, 1024)
	if err != nil || !bytes.Equal(got, data) || cap(got) != len(data) {
		t.Fatalf("got %q (cap %d), %v; want %q in a slice of exactly its size", got, cap(got), err, data)
	}

	tests := []struct {
		name string
		size int32
		data []byte
		want int
	}{
		{"negative", -1, nil, thrift.NEGATIVE_SIZE},
		{"above max message size", 2048, make([]byte, 10), thrift.SIZE_LIMIT},
		{"overruns frame", 100, make([]byte, 10), thrift.INVALID_DATA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readBinaryFrom(t, tt.size, tt.data, 1024)
			var pe thrift.TProtocolException
			if !errors.As(err, &pe) || pe.TypeId() != tt.want {
				t.Fatalf("got %v, want protocol exception type %d", err, tt.want)
			}
		})
	}
}
