package command

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sampleBatch(n, valueSize int) []Command {
	cmds := make([]Command, n)
	for i := range cmds {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		cmds[i] = Command{ClientID: uint64(1000 + i%7), Seq: uint64(i + 1), Op: OpPut,
			Key: fmt.Sprintf("key-%08d", i), Value: v}
		if i%5 == 4 {
			cmds[i].Op, cmds[i].Value = OpRemove, nil
		}
	}
	return cmds
}

func equalCommands(t *testing.T, got, want []Command) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d commands, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ClientID != w.ClientID || g.Seq != w.Seq || g.Op != w.Op || g.Key != w.Key || !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("command %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
	}{
		{"empty", nil},
		{"one put", []Command{{ClientID: 1, Seq: 1, Op: OpPut, Key: "k", Value: []byte("v")}}},
		{"remove without value", []Command{{ClientID: 2, Seq: 9, Op: OpRemove, Key: "gone"}}},
		{"client id zero", []Command{{Op: OpPut, Key: "anon", Value: []byte{}}}},
		{"full 64-bit ids", []Command{{ClientID: 1<<64 - 1, Seq: 1 << 63, Op: OpPut, Key: "big", Value: []byte("x")}}},
		{"binary key and value", []Command{{ClientID: 3, Seq: 4, Op: OpPut,
			Key: "a\r\nb\x00c\xff", Value: []byte("\x00\r\n*3\r\n$3\r\nset\xff")}}},
		{"empty key", []Command{{ClientID: 5, Seq: 1, Op: OpPut, Key: "", Value: []byte("v")}}},
		{"64 commands", sampleBatch(64, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := EncodeBatch(tt.cmds)
			if err != nil {
				t.Fatalf("EncodeBatch: %v", err)
			}
			got, err := DecodeBatch(data)
			if err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			equalCommands(t, got, tt.cmds)
		})
	}
}

func TestEncodedSizeIsExact(t *testing.T) {
	cmds := sampleBatch(10, 33)
	data, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != cap(data) {
		t.Errorf("encoded %d bytes into a buffer of %d: size computation is off", len(data), cap(data))
	}
}

func TestDecodedValuesDoNotAliasInput(t *testing.T) {
	data, err := EncodeBatch([]Command{{ClientID: 1, Seq: 1, Op: OpPut, Key: "k", Value: []byte("value")},
		{ClientID: 1, Seq: 2, Op: OpPut, Key: "l", Value: []byte("other")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 0
	}
	if string(got[0].Value) != "value" || got[0].Key != "k" {
		t.Errorf("decoded command changed with its input: %+v", got[0])
	}
	// Appending to one value must not overwrite the next one.
	_ = append(got[0].Value, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	if string(got[1].Value) != "other" {
		t.Errorf("append to one value changed another: %q", got[1].Value)
	}
}

func TestEncodeRejectsInvalidOp(t *testing.T) {
	_, err := EncodeBatch([]Command{{ClientID: 1, Seq: 1, Op: Op(7), Key: "k"}})
	if !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("EncodeBatch with op 7: got %v, want ErrInvalidOp", err)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	valid, err := EncodeBatch([]Command{{ClientID: 1, Seq: 2, Op: OpPut, Key: "key", Value: []byte("value")}})
	if err != nil {
		t.Fatal(err)
	}
	// Offset of the op field's value: batch field header (3) + list header (5) +
	// client_id (11) + seq (11) + op field header (3).
	opAt := 3 + 5 + 11 + 11 + 3
	withOp := func(op byte) []byte {
		b := bytes.Clone(valid)
		b[opAt+3] = op
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{"nil", nil, ErrMalformed, "truncated field header"},
		{"text", []byte("hello, world"), ErrMalformed, "unknown field type"},
		{"truncated", valid[:len(valid)-3], ErrMalformed, "value length 5 exceeds"},
		{"truncated header", valid[:2], ErrMalformed, "truncated field id"},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrMalformed, "trailing"},
		{"invalid op", withOp(7), ErrInvalidOp, "command 0"},
		{"huge list", []byte{typeList, 0, 1, typeStruct, 0x7f, 0xff, 0xff, 0xff, 0}, ErrMalformed, "exceeds"},
		{"negative list", []byte{typeList, 0, 1, typeStruct, 0xff, 0xff, 0xff, 0xff, 0}, ErrMalformed, "negative"},
		{"negative key length", []byte{typeList, 0, 1, typeStruct, 0, 0, 0, 1,
			typeString, 0, 4, 0x80, 0, 0, 0, 0, 0}, ErrMalformed, "negative key length"},
		{"deep unknown nesting", append(append([]byte{typeStruct, 0, 9},
			bytes.Repeat([]byte{typeStruct, 0, 1}, 100)...), bytes.Repeat([]byte{0}, 102)...), ErrMalformed, "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBatch(tt.data)
			if err == nil {
				t.Fatalf("DecodeBatch accepted garbage, returned %+v", got)
			}
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap %v and ErrMalformed", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if verr := ValidateBatch(tt.data); verr == nil || verr.Error() != err.Error() {
				t.Errorf("ValidateBatch: %v, want DecodeBatch's error %q", verr, err)
			}
		})
	}
}

// ValidateBatch accepts what DecodeBatch accepts, and allocates nothing doing so:
// it is the check every entry from a peer goes through.
func TestValidateBatchAcceptsValidWithoutAllocating(t *testing.T) {
	cmds := sampleBatch(64, 100)
	for i := range cmds {
		cmds[i].Op, cmds[i].Value = OpPut, make([]byte, 100)
	}
	for name, data := range map[string][]byte{
		"64 puts":              mustEncode(t, cmds),
		"empty batch":          mustEncode(t, nil),
		"struct with no field": {typeStop},
	} {
		if err := ValidateBatch(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if allocs := testing.AllocsPerRun(20, func() { _ = ValidateBatch(data) }); allocs != 0 {
			t.Errorf("%s: %.0f allocations, want 0", name, allocs)
		}
	}
}

func TestDecodeEmptyBatch(t *testing.T) {
	for name, data := range map[string][]byte{
		"encoded empty batch":  mustEncode(t, nil),
		"struct with no field": {typeStop},
	} {
		got, err := DecodeBatch(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if len(got) != 0 {
			t.Errorf("%s: got %d commands, want none", name, len(got))
		}
	}
}

func mustEncode(t testing.TB, cmds []Command) []byte {
	t.Helper()
	data, err := EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
