package command

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/peerapi"
)

// These tests hold the hand-written codec to the generated Thrift code, which is
// what defines the format for every other language.

func toGenerated(cmds []Command) *peerapi.CommandBatch {
	b := &peerapi.CommandBatch{Commands: make([]*peerapi.Command, 0, len(cmds))}
	for _, c := range cmds {
		b.Commands = append(b.Commands, &peerapi.Command{ClientID: int64(c.ClientID), Seq: int64(c.Seq),
			Op: peerapi.Op(c.Op), Key: c.Key, Value: c.Value})
	}
	return b
}

func fromGenerated(b *peerapi.CommandBatch) []Command {
	var cmds []Command
	for _, c := range b.Commands {
		cmds = append(cmds, Command{ClientID: uint64(c.ClientID), Seq: uint64(c.Seq), Op: Op(c.Op),
			Key: c.Key, Value: c.Value})
	}
	return cmds
}

func generatedEncode(t testing.TB, b *peerapi.CommandBatch) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	if err := b.Write(context.Background(), thrift.NewTBinaryProtocolConf(buf, nil)); err != nil {
		t.Fatalf("generated Write: %v", err)
	}
	return buf.Bytes()
}

// generatedDecode decodes data with the generated reader and reports how many bytes
// it left unread.
func generatedDecode(data []byte) (*peerapi.CommandBatch, int, error) {
	buf := thrift.NewTMemoryBufferLen(len(data))
	buf.Write(data)
	// Lengths beyond the input fail either way; the limit only stops the generated
	// reader from allocating for them.
	cfg := &thrift.TConfiguration{MaxMessageSize: int32(max(len(data), 1))}
	b := &peerapi.CommandBatch{}
	err := b.Read(context.Background(), thrift.NewTBinaryProtocolConf(buf, cfg))
	return b, buf.Len(), err
}

func TestEncodeMatchesGeneratedCode(t *testing.T) {
	for _, cmds := range [][]Command{
		nil,
		{{ClientID: 1, Seq: 2, Op: OpPut, Key: "k", Value: []byte("v")}},
		{{ClientID: 1<<64 - 1, Seq: 1 << 63, Op: OpRemove, Key: "\x00\r\n"}},
		sampleBatch(64, 100),
	} {
		ours := mustEncode(t, cmds)
		theirs := generatedEncode(t, toGenerated(cmds))
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%d commands: encoding differs from the generated code\nours:   %x\ntheirs: %x", len(cmds), ours, theirs)
		}
		gen, left, err := generatedDecode(ours)
		if err != nil || left != 0 {
			t.Fatalf("generated reader on our encoding: %v, %d bytes left", err, left)
		}
		equalCommands(t, fromGenerated(gen), cmds)
	}
}

// TestDecodeAcceptsWhatGeneratedCodeAccepts writes a batch the way another Thrift
// implementation might: fields out of order, unknown fields of every type, a
// missing field and a repeated one.
func TestDecodeAcceptsWhatGeneratedCodeAccepts(t *testing.T) {
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTBinaryProtocolConf(buf, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	unknown := func(id int16) {
		// One unknown field of each kind the skipper handles.
		must(p.WriteFieldBegin(ctx, "", thrift.STRUCT, id))
		must(p.WriteFieldBegin(ctx, "", thrift.MAP, 1))
		must(p.WriteMapBegin(ctx, thrift.STRING, thrift.LIST, 1))
		must(p.WriteString(ctx, "k"))
		must(p.WriteListBegin(ctx, thrift.DOUBLE, 2))
		must(p.WriteDouble(ctx, 1.5))
		must(p.WriteDouble(ctx, 2.5))
		must(p.WriteFieldBegin(ctx, "", thrift.SET, 2))
		must(p.WriteSetBegin(ctx, thrift.I16, 1))
		must(p.WriteI16(ctx, 7))
		must(p.WriteFieldBegin(ctx, "", thrift.BOOL, 3))
		must(p.WriteBool(ctx, true))
		must(p.WriteFieldBegin(ctx, "", thrift.UUID, 4))
		must(p.WriteUUID(ctx, thrift.Tuuid{1, 2, 3}))
		must(p.WriteFieldStop(ctx))
		must(p.WriteFieldBegin(ctx, "", thrift.BYTE, id+1))
		must(p.WriteByte(ctx, 9))
	}
	unknown(7)
	must(p.WriteFieldBegin(ctx, "commands", thrift.LIST, 1))
	must(p.WriteListBegin(ctx, thrift.STRUCT, 2))
	// Command 0: reverse field order, an unknown field, op written twice.
	must(p.WriteFieldBegin(ctx, "op", thrift.I32, 3))
	must(p.WriteI32(ctx, 0))
	must(p.WriteFieldBegin(ctx, "value", thrift.STRING, 5))
	must(p.WriteBinary(ctx, []byte("v0")))
	unknown(40)
	must(p.WriteFieldBegin(ctx, "key", thrift.STRING, 4))
	must(p.WriteString(ctx, "k0"))
	must(p.WriteFieldBegin(ctx, "seq", thrift.I64, 2))
	must(p.WriteI64(ctx, 11))
	must(p.WriteFieldBegin(ctx, "client_id", thrift.I64, 1))
	must(p.WriteI64(ctx, -1))
	must(p.WriteFieldBegin(ctx, "op", thrift.I32, 3))
	must(p.WriteI32(ctx, 1))
	must(p.WriteFieldStop(ctx))
	// Command 1: only a key; seq sent with the wrong type, which is skipped.
	must(p.WriteFieldBegin(ctx, "seq", thrift.STRING, 2))
	must(p.WriteString(ctx, "not a number"))
	must(p.WriteFieldBegin(ctx, "key", thrift.STRING, 4))
	must(p.WriteString(ctx, "k1"))
	must(p.WriteFieldStop(ctx))
	unknown(9)
	must(p.WriteFieldStop(ctx))
	data := buf.Bytes()

	want := []Command{
		{ClientID: 1<<64 - 1, Seq: 11, Op: OpRemove, Key: "k0", Value: []byte("v0")},
		{Key: "k1"},
	}
	gen, left, err := generatedDecode(data)
	if err != nil || left != 0 {
		t.Fatalf("generated reader: %v, %d bytes left", err, left)
	}
	equalCommands(t, fromGenerated(gen), want)
	got, err := DecodeBatch(data)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	equalCommands(t, got, want)
}
