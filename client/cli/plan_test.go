package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/replicas"
)

// rep is replica id at 127.0.0.1:70id (client) and 127.0.0.1:80id (peer).
func rep(id uint64) replicas.Replica {
	return replicas.Replica{ID: id, ClientAddr: fmt.Sprintf("127.0.0.1:70%02d", id), PeerAddr: fmt.Sprintf("127.0.0.1:80%02d", id)}
}

// moved is replica id at new addresses, 127.0.0.1:71id and 127.0.0.1:81id.
func moved(id uint64) replicas.Replica {
	return replicas.Replica{ID: id, ClientAddr: fmt.Sprintf("127.0.0.1:71%02d", id), PeerAddr: fmt.Sprintf("127.0.0.1:81%02d", id)}
}

// unknownAddrs is replica id whose addresses nobody knows.
func unknownAddrs(id uint64) replicas.Replica { return replicas.Replica{ID: id} }

func reps(ids ...uint64) []replicas.Replica {
	out := make([]replicas.Replica, len(ids))
	for i, id := range ids {
		out[i] = rep(id)
	}
	return out
}

// stepsString writes a plan as "+4 -1 +5", an addition of a moved replica as
// "+2'".
func stepsString(steps []step) string {
	var b []string
	for _, st := range steps {
		sign := "+"
		if st.Action == actionRemove {
			sign = "-"
		}
		mark := ""
		if st.Action == actionAdd && st.Replica == moved(st.Replica.ID) {
			mark = "'"
		}
		b = append(b, fmt.Sprintf("%s%d%s", sign, st.Replica.ID, mark))
	}
	return strings.Join(b, " ")
}

// checkPlan checks what makes a plan safe and complete: each step adds or
// removes exactly its replica, no list is empty, names a member without
// addresses or uses an id or address twice, and the last list is wanted.
func checkPlan(t *testing.T, current, wanted []replicas.Replica, steps []step) {
	t.Helper()
	prev := slices.Clone(current)
	for i, st := range steps {
		var want []replicas.Replica
		switch st.Action {
		case actionAdd:
			if _, ok := findMember(prev, st.Replica.ID); ok {
				t.Errorf("step %d adds %d, already a member", i+1, st.Replica.ID)
			}
			want = append(slices.Clone(prev), st.Replica)
		case actionRemove:
			if _, ok := findMember(prev, st.Replica.ID); !ok {
				t.Errorf("step %d removes %d, not a member", i+1, st.Replica.ID)
			}
			want = slices.DeleteFunc(slices.Clone(prev), func(r replicas.Replica) bool { return r.ID == st.Replica.ID })
		default:
			t.Fatalf("step %d: action %q", i+1, st.Action)
		}
		slices.SortFunc(want, byID)
		if !slices.Equal(st.Members, want) {
			t.Errorf("step %d (%s%d): members %v, want %v", i+1, st.Action, st.Replica.ID, st.Members, want)
		}
		if len(st.Members) == 0 {
			t.Errorf("step %d leaves no member", i+1)
		}
		seen := map[string]bool{}
		for _, m := range st.Members {
			if !knownAddrs(m) {
				t.Errorf("step %d names member %d without its addresses", i+1, m.ID)
			}
			for _, k := range []string{fmt.Sprint("id ", m.ID), m.ClientAddr, m.PeerAddr} {
				if seen[k] {
					t.Errorf("step %d uses %s twice: %v", i+1, k, st.Members)
				}
				seen[k] = true
			}
		}
		prev = st.Members
	}
	final := slices.SortedFunc(slices.Values(wanted), byID)
	if len(steps) > 0 && !slices.Equal(prev, final) {
		t.Errorf("plan ends with %v, want %v", prev, final)
	}
}

func TestPlanSteps(t *testing.T) {
	cases := []struct {
		name    string
		current []replicas.Replica
		wanted  []replicas.Replica
		leader  uint64
		want    string
	}{
		{"nothing to change", reps(1, 2, 3), reps(3, 1, 2), 1, ""},
		{"grow 3 to 5: two additions", reps(1, 2, 3), reps(1, 2, 3, 4, 5), 1, "+4 +5"},
		{"shrink 5 to 3: two removals, the leader last", reps(1, 2, 3, 4, 5), reps(1, 2, 3), 4, "-5 -4"},
		{"shrink 5 to 3 without a known leader", reps(1, 2, 3, 4, 5), reps(1, 2, 3), 0, "-4 -5"},
		{"replace one: add the new, then remove the old", reps(1, 2, 3), reps(1, 2, 4), 1, "+4 -3"},
		{"replace all three: alternate", reps(1, 2, 3), reps(4, 5, 6), 0, "+4 -1 +5 -2 +6 -3"},
		{"replace all three, the leader last", reps(1, 2, 3), reps(4, 5, 6), 1, "+4 -2 +5 -3 +6 -1"},
		{"additions in file order", reps(1, 2, 3), reps(6, 4, 5), 0, "+6 -1 +4 -2 +5 -3"},
		{"address change: remove, then add back", reps(1, 2, 3),
			[]replicas.Replica{rep(1), moved(2), rep(3)}, 1, "-2 +2'"},
		{"address change beside a replacement: no dip below three", reps(1, 2, 3),
			[]replicas.Replica{moved(1), rep(2), rep(4)}, 2, "+4 -1 +1' -3"},
		{"grow while replacing one", reps(1, 2, 3), reps(2, 3, 4, 5, 6), 2, "+4 -1 +5 +6"},
		{"shrink while replacing one", reps(1, 2, 3, 4, 5), reps(1, 2, 6), 1, "+6 -3 -4 -5"},
		{"single member replaced", reps(1), reps(2), 1, "+2 -1"},
		{"a new member takes a removed member's addresses",
			reps(1, 2, 3), []replicas.Replica{rep(1), rep(2), {ID: 4, ClientAddr: rep(3).ClientAddr, PeerAddr: rep(3).PeerAddr}}, 1, "-3 +4"},
		{"a dead member with unknown addresses goes first",
			[]replicas.Replica{rep(1), rep(2), unknownAddrs(3)}, reps(1, 2, 4), 1, "-3 +4"},
		{"a kept member with unknown addresses takes the file's",
			[]replicas.Replica{unknownAddrs(1), rep(2), rep(3)}, reps(1, 2, 3), 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := planSteps(tc.current, tc.wanted, tc.leader)
			if err != nil {
				t.Fatalf("planSteps: %v", err)
			}
			if got := stepsString(steps); got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
			current := slices.Clone(tc.current)
			for i, r := range current {
				if w, ok := replicas.Find(tc.wanted, r.ID); ok && !knownAddrs(r) {
					current[i] = w
				}
			}
			current = slices.DeleteFunc(current, func(r replicas.Replica) bool { return !knownAddrs(r) })
			if len(steps) > 0 && len(current) < len(tc.current) {
				// The member without addresses was removed by the first step.
				steps = steps[1:]
			}
			checkPlan(t, current, tc.wanted, steps)
		})
	}
}

func TestPlanStepsSizeStaysNearOriginal(t *testing.T) {
	// Replacing every member of five, one at a time, never takes the size
	// beyond six or below five.
	steps, err := planSteps(reps(1, 2, 3, 4, 5), reps(6, 7, 8, 9, 10), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		if n := len(st.Members); n < 5 || n > 6 {
			t.Errorf("step %d leaves %d members", i+1, n)
		}
	}
	checkPlan(t, reps(1, 2, 3, 4, 5), reps(6, 7, 8, 9, 10), steps)
}

func TestPlanStepsImpossible(t *testing.T) {
	cases := []struct {
		name            string
		current, wanted []replicas.Replica
		want            string
	}{
		{"two members with unknown addresses",
			[]replicas.Replica{rep(1), unknownAddrs(2), unknownAddrs(3)}, reps(1, 4, 5), "members 2,3"},
		{"the only member, unknown", []replicas.Replica{unknownAddrs(1)}, reps(2), "only member"},
		{"the only member moves", reps(1), []replicas.Replica{moved(1)}, "leave none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := planSteps(tc.current, tc.wanted, 0)
			if !errors.Is(err, errNoPlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("planSteps = %s, %v; want errNoPlan mentioning %q", stepsString(steps), err, tc.want)
			}
		})
	}
}
