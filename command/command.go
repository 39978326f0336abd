package command

import "fmt"

// Op is what a command does to its key. The values are those of the IDL's Op enum.
type Op uint8

const (
	// OpPut sets the key to the command's value.
	OpPut Op = 0
	// OpRemove deletes the key.
	OpRemove Op = 1
)

// Valid reports whether o is an operation this version knows.
func (o Op) Valid() bool { return o == OpPut || o == OpRemove }

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpRemove:
		return "remove"
	default:
		return fmt.Sprintf("op(%d)", uint8(o))
	}
}

// Command is one client write as it is stored in the log.
//
// ClientID and Seq identify the request for de-duplication: a client retries with the
// same Seq, and a ClientID of 0 opts out of de-duplication. On the wire they are the
// IDL's i64 fields, carrying the same 64 bits.
type Command struct {
	ClientID uint64
	Seq      uint64
	Op       Op
	Key      string
	// Value is the value of a put; a remove carries none.
	Value []byte
}
