package chaos

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// OpKind is what a client asked for.
type OpKind int

const (
	OpGet OpKind = iota
	OpPut
	OpRemove
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpRemove:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// Input is one operation's request.
type Input struct {
	Kind  OpKind
	Key   string
	Value string // put only
	// Client and Seq identify a write on the wire (for the visualisation).
	Client int64
	Seq    int64
}

// Output is one operation's response.
type Output struct {
	// Unknown: the write may or may not have taken effect (timeout,
	// Unavailable, connection lost). Reads are never unknown: a failed read is
	// left out of the history.
	Unknown bool
	// Found and Value: what a get returned.
	Found bool
	Value string
	// Existed: whether the key held a value before a put or delete.
	Existed bool
	// Replica answered (for the visualisation); 0 if unknown.
	Replica int
}

// keyState is the model's state for one key: its value, or absent.
type keyState struct {
	Present bool
	Value   string
}

// KVModel is the sequential specification of the store, one key at a time: a
// put sets the value, a delete removes it, both report whether the key held a
// value before, and a get returns the current value or not-found.
var KVModel = porcupine.Model{
	Partition:      partitionOps,
	PartitionEvent: partitionEvents,
	Init:           func() any { return keyState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(keyState), input.(Input), output.(Output)
		switch in.Kind {
		case OpGet:
			if out.Unknown {
				return false, st
			}
			ok := out.Found == st.Present && (!out.Found || out.Value == st.Value)
			return ok, st
		case OpPut:
			next := keyState{Present: true, Value: in.Value}
			return out.Unknown || out.Existed == st.Present, next
		case OpRemove:
			return out.Unknown || out.Existed == st.Present, keyState{}
		}
		return false, st
	},
	Equal: func(a, b any) bool { return a.(keyState) == b.(keyState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		at := ""
		if out.Replica != 0 {
			at = fmt.Sprintf(" @%d", out.Replica)
		}
		switch in.Kind {
		case OpGet:
			if !out.Found {
				return fmt.Sprintf("get(%s) → not found%s", in.Key, at)
			}
			return fmt.Sprintf("get(%s) → %s%s", in.Key, out.Value, at)
		case OpPut:
			if out.Unknown {
				return fmt.Sprintf("put(%s, %s) → ?", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%s, %s) → existed=%v%s", in.Key, in.Value, out.Existed, at)
		case OpRemove:
			if out.Unknown {
				return fmt.Sprintf("delete(%s) [%d/%d] → ?", in.Key, in.Client, in.Seq)
			}
			return fmt.Sprintf("delete(%s) [%d/%d] → existed=%v%s", in.Key, in.Client, in.Seq, out.Existed, at)
		}
		return "?"
	},
	DescribeState: func(state any) string {
		st := state.(keyState)
		if !st.Present {
			return "absent"
		}
		return st.Value
	},
}

func partitionOps(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	// A return event carries an Output; find each call's key by its id.
	keyOf := make(map[int]string)
	byKey := make(map[string][]porcupine.Event)
	var keys []string
	for _, ev := range history {
		var k string
		if ev.Kind == porcupine.CallEvent {
			k = ev.Value.(Input).Key
			keyOf[ev.Id] = k
		} else {
			k = keyOf[ev.Id]
		}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], ev)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Event, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}
