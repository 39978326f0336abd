package command

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Errors returned by this package.
var (
	// ErrMalformed is wrapped by every DecodeBatch error: the bytes are not a
	// CommandBatch in the Thrift binary protocol.
	ErrMalformed = errors.New("malformed command batch")
	// ErrInvalidOp is wrapped when a command's operation is neither PUT nor REMOVE.
	ErrInvalidOp = errors.New("invalid operation")
	// ErrTooLarge is wrapped by EncodeBatch when a key or value, or the batch, does not
	// fit the protocol's 32-bit length prefixes.
	ErrTooLarge = errors.New("too large to encode")
)

// Thrift wire type identifiers (lib/go/thrift/type.go); only these and the field
// numbers of idl/peer.thrift define the format.
const (
	typeStop   = 0
	typeBool   = 2
	typeByte   = 3
	typeDouble = 4
	typeI16    = 6
	typeI32    = 8
	typeI64    = 10
	typeString = 11
	typeStruct = 12
	typeMap    = 13
	typeSet    = 14
	typeList   = 15
	typeUUID   = 16
)

// Field numbers from idl/peer.thrift.
const (
	fieldBatchCommands = 1

	fieldClientID = 1
	fieldSeq      = 2
	fieldOp       = 3
	fieldKey      = 4
	fieldValue    = 5
)

// skipDepth bounds the nesting of unknown fields DecodeBatch skips, as the Thrift
// library's DEFAULT_RECURSION_DEPTH does.
const skipDepth = 64

const (
	// batchOverhead is the encoded size of a CommandBatch without its commands:
	// field header (3), list header (5), stop (1).
	batchOverhead = 3 + 5 + 1
	// commandOverhead is the encoded size of a Command with an empty key and value:
	// client_id (3+8), seq (3+8), op (3+4), key (3+4), value (3+4), stop (1).
	commandOverhead = 11 + 11 + 7 + 7 + 7 + 1
	// minCommandSize is the smallest encoding of a list element: a lone stop byte.
	minCommandSize = 1
)

// EncodeBatch returns the Thrift binary protocol encoding of cmds as a
// peerapi.CommandBatch: the same bytes the generated CommandBatch.Write produces.
// An empty batch encodes to a valid, empty CommandBatch.
func EncodeBatch(cmds []Command) ([]byte, error) {
	size := batchOverhead
	for i := range cmds {
		c := &cmds[i]
		if !c.Op.Valid() {
			return nil, fmt.Errorf("encode command %d: %w: %d", i, ErrInvalidOp, c.Op)
		}
		if len(c.Key) > math.MaxInt32 || len(c.Value) > math.MaxInt32 {
			return nil, fmt.Errorf("encode command %d: %w: key of %d bytes, value of %d bytes",
				i, ErrTooLarge, len(c.Key), len(c.Value))
		}
		size += commandOverhead + len(c.Key) + len(c.Value)
	}
	if len(cmds) > math.MaxInt32 || size > math.MaxInt32 {
		return nil, fmt.Errorf("encode batch of %d commands: %w: %d bytes", len(cmds), ErrTooLarge, size)
	}

	b := make([]byte, 0, size)
	b = appendFieldHeader(b, typeList, fieldBatchCommands)
	b = append(b, typeStruct)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cmds)))
	for i := range cmds {
		c := &cmds[i]
		b = appendFieldHeader(b, typeI64, fieldClientID)
		b = binary.BigEndian.AppendUint64(b, c.ClientID)
		b = appendFieldHeader(b, typeI64, fieldSeq)
		b = binary.BigEndian.AppendUint64(b, c.Seq)
		b = appendFieldHeader(b, typeI32, fieldOp)
		b = binary.BigEndian.AppendUint32(b, uint32(c.Op))
		b = appendFieldHeader(b, typeString, fieldKey)
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Key)))
		b = append(b, c.Key...)
		b = appendFieldHeader(b, typeString, fieldValue)
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Value)))
		b = append(b, c.Value...)
		b = append(b, typeStop)
	}
	b = append(b, typeStop)
	return b, nil
}

func appendFieldHeader(b []byte, typ byte, id int16) []byte {
	return binary.BigEndian.AppendUint16(append(b, typ), uint16(id))
}

// DecodeBatch decodes a CommandBatch in the Thrift binary protocol. The returned
// commands do not alias data; their values share one backing array, each capped at
// its own length. An empty batch decodes to an empty (nil) slice.
func DecodeBatch(data []byte) ([]Command, error) {
	d := decoder{data: data}
	cmds, err := d.batch()
	if err != nil {
		return nil, err
	}
	if d.off != len(data) {
		return nil, d.errorf("%d trailing bytes after the batch", len(data)-d.off)
	}
	return cmds, nil
}

// ValidateBatch reports whether data is a batch DecodeBatch accepts, with the same
// error, without building the commands: it allocates nothing for a valid batch. A
// replica checks every entry a peer sends before it takes it in, and decodes the
// commands only when it applies them; the check then costs a pass over the bytes
// instead of a second decode.
func ValidateBatch(data []byte) error {
	d := decoder{data: data, validateOnly: true}
	if _, err := d.batch(); err != nil {
		return err
	}
	if d.off != len(data) {
		return d.errorf("%d trailing bytes after the batch", len(data)-d.off)
	}
	return nil
}

// decoder reads the binary protocol from data; every read checks the bytes that
// remain, so no input can make it read out of bounds or allocate more than it holds.
type decoder struct {
	data []byte
	off  int
	// validateOnly: parse and check everything, but build no commands.
	validateOnly bool
	// values is a copy of data that decoded values are sliced from (one allocation
	// per batch instead of one per value).
	values []byte
	// cmd is the index of the command being decoded, for error messages (-1: none).
	cmd int
}

func (d *decoder) errorf(format string, args ...any) error {
	return d.wrapf(nil, format, args...)
}

// wrapf returns an error wrapping ErrMalformed and, when not nil, kind.
func (d *decoder) wrapf(kind error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	where := ""
	if d.cmd >= 0 {
		where = fmt.Sprintf("command %d: ", d.cmd)
	}
	if kind != nil {
		return fmt.Errorf("%w: %s%w: %s (at byte %d of %d)", ErrMalformed, where, kind, msg, d.off, len(d.data))
	}
	return fmt.Errorf("%w: %s%s (at byte %d of %d)", ErrMalformed, where, msg, d.off, len(d.data))
}

func (d *decoder) remaining() int { return len(d.data) - d.off }

func (d *decoder) need(n int, what string) error {
	if n > d.remaining() {
		return d.errorf("truncated %s: need %d bytes, %d remain", what, n, d.remaining())
	}
	return nil
}

func (d *decoder) byte1(what string) (byte, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	v := d.data[d.off]
	d.off++
	return v, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(d.data[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(d.data[d.off:])
	d.off += 8
	return v, nil
}

// fieldHeader reads a field's type and, unless it is the stop marker, its id.
func (d *decoder) fieldHeader() (typ byte, id int16, err error) {
	if typ, err = d.byte1("field header"); err != nil || typ == typeStop {
		return typ, 0, err
	}
	if err = d.need(2, "field id"); err != nil {
		return 0, 0, err
	}
	id = int16(binary.BigEndian.Uint16(d.data[d.off:]))
	d.off += 2
	return typ, id, nil
}

// length reads a 32-bit length prefix of elements of at least minSize bytes each and
// checks that they can fit in what remains.
func (d *decoder) length(what string, minSize int) (int, error) {
	u, err := d.u32(what)
	if err != nil {
		return 0, err
	}
	n := int(int32(u))
	if n < 0 {
		return 0, d.errorf("negative %s %d", what, n)
	}
	if n > d.remaining()/minSize {
		return 0, d.errorf("%s %d exceeds the %d bytes that remain", what, n, d.remaining())
	}
	return n, nil
}

// bytes reads a length-prefixed byte string and returns its bounds in data.
func (d *decoder) bytes(what string) (start, end int, err error) {
	n, err := d.length(what, 1)
	if err != nil {
		return 0, 0, err
	}
	start = d.off
	d.off += n
	return start, d.off, nil
}

func (d *decoder) batch() ([]Command, error) {
	d.cmd = -1
	var cmds []Command
	for {
		typ, id, err := d.fieldHeader()
		if err != nil {
			return nil, err
		}
		switch {
		case typ == typeStop:
			return cmds, nil
		case id == fieldBatchCommands && typ == typeList:
			// As in the generated reader, a repeated field replaces the earlier one.
			if cmds, err = d.commands(); err != nil {
				return nil, err
			}
		default:
			if err := d.skip(typ, skipDepth); err != nil {
				return nil, err
			}
		}
	}
}

func (d *decoder) commands() ([]Command, error) {
	// The generated reader ignores the declared element type and reads structs.
	if _, err := d.byte1("list element type"); err != nil {
		return nil, err
	}
	n, err := d.length("command list length", minCommandSize)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if d.validateOnly {
		var scratch Command
		for i := range n {
			d.cmd = i
			if err := d.command(&scratch); err != nil {
				return nil, err
			}
		}
		d.cmd = -1
		return nil, nil
	}
	if d.values == nil {
		d.values = make([]byte, len(d.data))
		copy(d.values, d.data)
	}
	cmds := make([]Command, n)
	for i := range cmds {
		d.cmd = i
		if err := d.command(&cmds[i]); err != nil {
			return nil, err
		}
	}
	d.cmd = -1
	return cmds, nil
}

func (d *decoder) command(c *Command) error {
	// op is checked once the struct ends: like any field, a repeated op replaces
	// the earlier one.
	var op int32
	for {
		typ, id, err := d.fieldHeader()
		if err != nil {
			return err
		}
		if typ == typeStop {
			if op < 0 || op > math.MaxUint8 || !Op(op).Valid() {
				return d.wrapf(ErrInvalidOp, "op %d", op)
			}
			c.Op = Op(op)
			return nil
		}
		switch {
		case id == fieldClientID && typ == typeI64:
			c.ClientID, err = d.u64("client_id")
		case id == fieldSeq && typ == typeI64:
			c.Seq, err = d.u64("seq")
		case id == fieldOp && typ == typeI32:
			var u uint32
			u, err = d.u32("op")
			op = int32(u)
		case id == fieldKey && typ == typeString:
			var start, end int
			if start, end, err = d.bytes("key length"); err == nil && !d.validateOnly {
				c.Key = string(d.data[start:end])
			}
		case id == fieldValue && typ == typeString:
			var start, end int
			if start, end, err = d.bytes("value length"); err == nil && !d.validateOnly {
				c.Value = d.values[start:end:end]
			}
		default:
			err = d.skip(typ, skipDepth)
		}
		if err != nil {
			return err
		}
	}
}

// skip passes over one value of type typ, as thrift.Skip does.
func (d *decoder) skip(typ byte, depth int) error {
	if depth <= 0 {
		return d.errorf("unknown fields nested deeper than %d", skipDepth)
	}
	fixed := 0
	switch typ {
	case typeBool, typeByte:
		fixed = 1
	case typeI16:
		fixed = 2
	case typeI32:
		fixed = 4
	case typeI64, typeDouble:
		fixed = 8
	case typeUUID:
		fixed = 16
	case typeString:
		_, _, err := d.bytes("string length")
		return err
	case typeStruct:
		for {
			t, _, err := d.fieldHeader()
			if err != nil {
				return err
			}
			if t == typeStop {
				return nil
			}
			if err := d.skip(t, depth-1); err != nil {
				return err
			}
		}
	case typeMap:
		kt, err := d.byte1("map key type")
		if err != nil {
			return err
		}
		vt, err := d.byte1("map value type")
		if err != nil {
			return err
		}
		n, err := d.length("map length", 2)
		if err != nil {
			return err
		}
		for range n {
			if err := d.skip(kt, depth-1); err != nil {
				return err
			}
			if err := d.skip(vt, depth-1); err != nil {
				return err
			}
		}
		return nil
	case typeSet, typeList:
		et, err := d.byte1("list element type")
		if err != nil {
			return err
		}
		n, err := d.length("list length", 1)
		if err != nil {
			return err
		}
		for range n {
			if err := d.skip(et, depth-1); err != nil {
				return err
			}
		}
		return nil
	default:
		return d.errorf("unknown field type %d", typ)
	}
	if err := d.need(fixed, "field value"); err != nil {
		return err
	}
	d.off += fixed
	return nil
}
