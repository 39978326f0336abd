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
// returns the reads, which also join the history, with any problem met. Only
// the members in force take part: replicas a change removed are left alone.
//
// Every wiped member must first finish rebuilding; then each wiped member, and
// each member a change added (joined), in turn is made to lead and answers the
// reads itself, so what a rebuilt or newly added replica serves is checked by
// porcupine and by the lost-write count, not only compared with the others'
// data. Without such members, whichever member leads answers.
func readBack(ctx context.Context, c *Cluster, h *History, keys []string, joined []int, timeout time.Duration,
	logf func(string, ...any)) ([]finalRead, []string) {
	var (
		reads    []finalRead
		problems []string
	)
	// A replica removed while it rebuilt never finishes, and is not expected to.
	members := c.Members()
	wiped := slices.DeleteFunc(c.Wiped(), func(id int) bool { return !slices.Contains(members, id) })
	if len(wiped) > 0 {
		err := poll(ctx, timeout, fmt.Sprintf("wiped members %v to log %q", wiped, rebuiltMarker), func() error {
			left := slices.DeleteFunc(c.Rebuilding(), func(id int) bool { return !slices.Contains(wiped, id) })
			if len(left) > 0 {
				return fmt.Errorf("replicas %v still rebuilding", left)
			}
			return nil
		})
		if err != nil {
			problems = append(problems, "a wiped replica did not rebuild: "+err.Error())
			wiped = slices.DeleteFunc(wiped, func(id int) bool { return slices.Contains(c.Rebuilding(), id) })
		}
	}
	type leader struct {
		id   int
		what string
	}
	var leaders []leader
	for _, id := range wiped {
		leaders = append(leaders, leader{id, "wiped"})
	}
	for _, id := range joined {
		if slices.Contains(members, id) && !slices.Contains(wiped, id) {
			leaders = append(leaders, leader{id, "added"})
		}
	}
	for _, l := range leaders {
		r, err := finalReads(ctx, c, h, keys, func() (int, error) { return l.id, makeLeader(ctx, c, l.id, 10*time.Second) })
		if err != nil {
			problems = append(problems, fmt.Sprintf("final reads at %s replica %d, made to lead: %v", l.what, l.id, err))
			continue
		}
		logf("final reads answered by %s replica %d as leader", l.what, l.id)
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

// makeLeader returns once replica id leads and a majority of the members names
// it, moving the leadership to it if need be: every other replica's requests
// are dropped, so that only id can run an election or keep a leadership, until
// it leads.
func makeLeader(ctx context.Context, c *Cluster, id int, timeout time.Duration) error {
	leads := func() error {
		st := c.Statuses(ctx, time.Second)
		members := c.observe(st).Members
		s, ok := st[id]
		switch {
		case !ok:
			return fmt.Errorf("replica %d does not answer status", id)
		case !s.IsLeader:
			return fmt.Errorf("replica %d does not lead (it names %d)", id, s.LeaderID)
		}
		votes := 0
		for other, s := range st {
			if s.LeaderID == int64(id) && slices.Contains(members, other) {
				votes++
			}
		}
		if votes <= len(members)/2 {
			return fmt.Errorf("only %d members of %v name %d as leader", votes, members, id)
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
