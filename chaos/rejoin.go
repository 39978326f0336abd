package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// finalRead is one linearizable read of every key after healing.
type finalRead struct {
	replica int               // the replica that answered (the last one, if several)
	values  map[string]Output // by key
	applied int64             // the highest applied slot the answers reported
}

// readBack reads every key linearizably once the cluster is healed, and
// returns the reads, which also join the history, with any problem met.
//
// Without wipes, whichever replica leads answers. Otherwise every wiped replica
// must first finish rebuilding; then each in turn is made to lead and answers
// the reads itself, so what a rebuilt replica serves is checked by porcupine
// and by the lost-write count, not only compared with the others' data.
func readBack(ctx context.Context, c *Cluster, h *History, keys []string, timeout time.Duration,
	logf func(string, ...any)) ([]finalRead, []string) {
	var (
		reads    []finalRead
		problems []string
	)
	wiped := c.Wiped()
	if len(wiped) > 0 {
		err := poll(ctx, timeout, fmt.Sprintf("wiped replicas %v to log %q", wiped, rebuiltMarker), func() error {
			if left := c.Rebuilding(); len(left) > 0 {
				return fmt.Errorf("replicas %v still rebuilding", left)
			}
			return nil
		})
		if err != nil {
			problems = append(problems, "a wiped replica did not rebuild: "+err.Error())
			wiped = slices.DeleteFunc(wiped, func(id int) bool { return slices.Contains(c.Rebuilding(), id) })
		}
	}
	for _, id := range wiped {
		r, err := finalReads(ctx, c, h, keys, func() (int, error) { return id, makeLeader(ctx, c, id, 10*time.Second) })
		if err != nil {
			problems = append(problems, fmt.Sprintf("final reads at wiped replica %d, made to lead: %v", id, err))
			continue
		}
		logf("final reads answered by wiped replica %d as leader", id)
		reads = append(reads, r)
	}
	if len(reads) == 0 {
		r, err := finalReads(ctx, c, h, keys, currentLeader(ctx, c))
		if err != nil {
			problems = append(problems, "final reads: "+err.Error())
			return reads, problems
		}
		reads = append(reads, r)
	}
	return reads, problems
}

// makeLeader returns once replica id leads and a majority names it, moving the
// leadership to it if need be: every other replica's requests are dropped, so
// that only id can run an election or keep a leadership, until it leads.
func makeLeader(ctx context.Context, c *Cluster, id int, timeout time.Duration) error {
	leads := func() error {
		st := c.Statuses(ctx, time.Second)
		s, ok := st[id]
		switch {
		case !ok:
			return fmt.Errorf("replica %d does not answer status", id)
		case !s.IsLeader:
			return fmt.Errorf("replica %d does not lead (it names %d)", id, s.LeaderID)
		}
		votes := 0
		for _, s := range st {
			if s.LeaderID == int64(id) {
				votes++
			}
		}
		if votes <= len(c.IDs())/2 {
			return fmt.Errorf("only %d replicas name %d as leader", votes, id)
		}
		return nil
	}
	if leads() == nil {
		return nil
	}
	var cut []*Link
	for _, l := range c.Links() {
		if l.From != id {
			l.Cut(true, false)
			cut = append(cut, l)
		}
	}
	defer healLinks(cut)()
	return poll(ctx, timeout, fmt.Sprintf("replica %d to lead, the others' requests dropped", id), leads)
}

// answeredAfterWipe counts the operations answered by a replica after it was
// wiped.
func answeredAfterWipe(ops []porcupine.Operation, events []FaultEvent) int {
	n := 0
	for _, op := range ops {
		out := op.Output.(Output)
		if out.Unknown || out.Replica == 0 {
			continue
		}
		for _, e := range events {
			if e.Wiped == out.Replica && e.Start < op.Call {
				n++
				break
			}
		}
	}
	return n
}
