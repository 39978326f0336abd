package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/command"
)

func queuedPuts(n, valueSize int) []*proposal {
	ps := make([]*proposal, n)
	for i := range ps {
		ps[i] = &proposal{cmd: command.Command{Op: command.OpPut, Key: fmt.Sprintf("k%d", i),
			Value: make([]byte, valueSize)}}
	}
	return ps
}

func TestNextBatch(t *testing.T) {
	limit := slotLimit{commands: 10, bytes: 1000}
	small := func(n int) []*proposal { return queuedPuts(n, 1) }
	big := queuedPuts(5, 400) // each ~470 bytes with key and overhead: two fill a slot
	huge := queuedPuts(2, 5000)
	cases := []struct {
		name          string
		queued        []*proposal
		inFlight, max int
		want          int
	}{
		{"nothing queued", nil, 0, 4, 0},
		{"idle: everything goes at once", small(3), 0, 4, 3},
		{"idle, more than a slot: one full slot", small(25), 0, 4, 10},
		{"a round in flight: a partial slot waits", small(9), 1, 4, 0},
		{"a round in flight: a full slot by count overtakes", small(25), 1, 4, 10},
		{"a round in flight: a full slot by bytes overtakes", big, 1, 4, 2},
		{"idle: bytes bound the slot", big, 0, 4, 2},
		{"pipeline full: even a full slot waits", small(25), 4, 4, 0},
		{"one in flight allowed: nothing overtakes", small(25), 1, 1, 0},
		{"a write larger than the byte limit goes alone", huge, 0, 4, 1},
		{"a round in flight: a write larger than the limit waits its turn", huge[:1], 1, 4, 0},
	}
	for _, c := range cases {
		if got := nextBatch(c.queued, c.inFlight, c.max, limit); got != c.want {
			t.Errorf("%s: nextBatch = %d, want %d", c.name, got, c.want)
		}
	}
}

// However many large writes arrive together, no slot holds more than the slot
// limit, and every write still gets its own result.
func TestSlotsStayWithinTheirLimit(t *testing.T) {
	policy := snapshotPolicy{everySlots: 1000, everyBytes: 1 << 30, retainSlots: 10, retainBytes: 1 << 30, rewriteBytes: 1 << 30}
	n, _, _ := startLoneNodeWith(t, t.TempDir(), policy, func(n *node) {
		n.slotLimit = slotLimit{commands: 1024, bytes: 40 << 10}
	})

	const writers, valueSize = 64, 10 << 10
	value := []byte(strings.Repeat("v", valueSize))
	slots := make([]uint64, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := n.propose(ctx, command.Command{ClientID: uint64(i + 1), Seq: 1, Op: command.OpPut,
				Key: fmt.Sprintf("key%d", i), Value: value})
			slots[i], errs[i] = res.Slot, err
		}()
	}
	wg.Wait()
	perSlot := make(map[uint64]int)
	for i := range writers {
		if errs[i] != nil || slots[i] == 0 {
			t.Fatalf("write %d: slot %d, %v", i, slots[i], errs[i])
		}
		perSlot[slots[i]]++
	}
	// 40 KiB holds three 10 KiB writes with their keys and encoding, not four.
	for slot, count := range perSlot {
		if count > 3 {
			t.Errorf("slot %d carries %d writes of %d bytes; the limit of 40 KiB allows 3", slot, count, valueSize)
		}
	}
	if len(perSlot) < writers/3 {
		t.Errorf("%d writes in %d slots", writers, len(perSlot))
	}
}
