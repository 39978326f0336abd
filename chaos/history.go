package chaos

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// never is the return time of an operation whose outcome is unknown: it may
// take effect at any time after its call, even after the history ends.
const never = math.MaxInt64

// History records operations with their call and return times, in nanoseconds
// since the history began, on the monotonic clock.
type History struct {
	start time.Time

	mu       sync.Mutex // guards ops and sessions
	ops      []porcupine.Operation
	sessions int
}

// NewHistory starts an empty history now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the current time in the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// NewSession returns a fresh porcupine client id: one per sequence of
// operations that never overlap.
func (h *History) NewSession() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions++
	return h.sessions - 1
}

// Add records one completed (or unknown) operation.
func (h *History) Add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Ops returns a copy of the operations recorded so far, in call order.
func (h *History) Ops() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]porcupine.Operation(nil), h.ops...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Counts summarises a history.
type Counts struct {
	Reads, Writes, Unknown int
}

func countOps(ops []porcupine.Operation) Counts {
	var c Counts
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		switch {
		case in.Kind == OpGet:
			c.Reads++
		case out.Unknown:
			c.Unknown++
		default:
			c.Writes++
		}
	}
	return c
}

// CountOps summarises ops.
func CountOps(ops []porcupine.Operation) Counts { return countOps(ops) }

// WriteHistory lists ops as text, one per line, in call order: the evidence a
// test outside this package keeps when a history fails.
func WriteHistory(w io.Writer, ops []porcupine.Operation) error { return writeHistory(w, ops) }

// writeHistory lists ops as text, one per line, in call order.
func writeHistory(w io.Writer, ops []porcupine.Operation) error {
	for _, op := range ops {
		ret := "never"
		if op.Return != never {
			ret = fmt.Sprintf("%.6fs", time.Duration(op.Return).Seconds())
		}
		_, err := fmt.Fprintf(w, "%.6fs %s session=%d %s\n", time.Duration(op.Call).Seconds(), ret,
			op.ClientId, KVModel.DescribeOperation(op.Input, op.Output))
		if err != nil {
			return err
		}
	}
	return nil
}
