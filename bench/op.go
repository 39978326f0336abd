package bench

import (
	"fmt"
	"strings"
)

// OpKind is the kind of one operation.
type OpKind uint8

// The operations a run issues. A get reads linearizably or stale as Config.Read says.
const (
	OpPut OpKind = iota
	OpGet
	OpDelete
	numOpKinds
)

// OpKinds lists every kind in report order.
var OpKinds = [numOpKinds]OpKind{OpPut, OpGet, OpDelete}

// String returns the lower-case name used in flags, reports and JSON.
func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// parseOpKind reads an operation name, ignoring case.
func parseOpKind(s string) (OpKind, bool) {
	switch strings.ToLower(s) {
	case "put":
		return OpPut, true
	case "get":
		return OpGet, true
	case "delete":
		return OpDelete, true
	}
	return 0, false
}

// ReadMode says how gets read.
type ReadMode uint8

const (
	// Linearizable gets are served by the leader (client.Client.Get).
	Linearizable ReadMode = iota
	// Stale gets read any replica's local copy (client.Client.GetStale).
	Stale
)

// String returns "linearizable" or "stale".
func (m ReadMode) String() string {
	if m == Stale {
		return "stale"
	}
	return "linearizable"
}

// ParseReadMode reads "linearizable" or "stale" (any case).
func ParseReadMode(s string) (ReadMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "linearizable", "lin":
		return Linearizable, nil
	case "stale":
		return Stale, nil
	}
	return 0, fmt.Errorf("read mode %q: want linearizable or stale", s)
}
