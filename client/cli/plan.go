package cli

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ballot-kv/ballot/replicas"
)

// Actions of a step.
const (
	actionAdd    = "add"
	actionRemove = "remove"
)

// step is one single-member change of a reconfiguration plan.
type step struct {
	// Action is actionAdd or actionRemove.
	Action string
	// Replica is the member added or removed, with its addresses.
	Replica replicas.Replica
	// Members is the whole configuration after the step, sorted by id: the list
	// the reconfigure call sends.
	Members []replicas.Replica
}

// errNoPlan: the wanted configuration cannot be reached in single-member steps
// from the committed one with what is known of its members' addresses.
var errNoPlan = errors.New("no single-member plan")

// planSteps returns the changes that take the committed members current to
// wanted, each adding or removing one member, so that any majority of a
// configuration overlaps any majority of the next and every step is safe on its
// own. An empty plan means there is nothing to change.
//
// A wanted id missing from current is added; a current id missing from wanted is
// removed; an id in both whose addresses differ is removed and then added back
// with its new addresses, since an id names one member of a configuration.
// Additions and removals alternate, an addition first, so that the size stays
// within one of the original until only additions or only removals remain
// (replacing 1,2,3 by 4,5,6: add 4, remove 1, add 5, remove 2, add 6, remove 3).
// Additions follow wanted's order, removals go by id with leader (the current
// leader's id, 0 if unknown) last, so that the cluster elects a new leader at
// most once. An addition waits until no member holds one of its addresses, and
// removals that free such an address go first.
//
// A current member with an empty address is one whose addresses are unknown: no
// list can name it, so it must be removed at the first step, which is possible
// for one such member of a configuration of two or more (a member of current that
// wanted also lists takes wanted's addresses when its own are unknown).
func planSteps(current, wanted []replicas.Replica, leader uint64) ([]step, error) {
	want := make(map[uint64]replicas.Replica, len(wanted))
	for _, w := range wanted {
		want[w.ID] = w
	}
	members := make([]replicas.Replica, 0, len(current))
	for _, r := range current {
		if w, ok := want[r.ID]; ok && !knownAddrs(r) {
			r = w
		}
		members = append(members, r)
	}
	slices.SortFunc(members, byID)
	n0 := len(members)

	var adds, readds, removes, changes []replicas.Replica
	var unknown []uint64
	for _, w := range wanted {
		if _, ok := findMember(members, w.ID); !ok {
			adds = append(adds, w)
		}
	}
	for _, r := range members {
		w, ok := want[r.ID]
		switch {
		case !ok && !knownAddrs(r):
			unknown = append(unknown, r.ID)
		case !ok:
			removes = append(removes, r)
		case w.ClientAddr != r.ClientAddr || w.PeerAddr != r.PeerAddr:
			changes = append(changes, r)
		}
	}
	// The leader last, so that removing it (and electing another) happens once.
	for _, list := range [][]replicas.Replica{removes, changes} {
		slices.SortStableFunc(list, func(a, b replicas.Replica) int {
			return cmp.Compare(boolInt(a.ID == leader), boolInt(b.ID == leader))
		})
	}

	var steps []step
	apply := func(action string, r replicas.Replica) {
		if action == actionAdd {
			members = append(members, r)
			slices.SortFunc(members, byID)
		} else {
			members = slices.DeleteFunc(members, func(m replicas.Replica) bool { return m.ID == r.ID })
		}
		steps = append(steps, step{Action: action, Replica: r, Members: slices.Clone(members)})
	}

	switch {
	case len(unknown) > 1:
		return nil, fmt.Errorf("%w: members %s of the committed configuration are to be removed, but their addresses are unknown and every list that still names one of them must give them",
			errNoPlan, joinIDs(unknown))
	case len(unknown) == 1 && n0 < 2:
		return nil, fmt.Errorf("%w: member %d, the only member, is to be removed, but its addresses are unknown", errNoPlan, unknown[0])
	case len(unknown) == 1:
		r, _ := findMember(members, unknown[0])
		apply(actionRemove, r)
	}

	for len(adds)+len(readds)+len(removes)+len(changes) > 0 {
		// An addition is ready when none of the members holds one of its addresses.
		ready := func(list []replicas.Replica) int {
			return slices.IndexFunc(list, func(r replicas.Replica) bool { return !addrTaken(members, r) })
		}
		from := &readds // a member whose address changed goes back first
		next := ready(readds)
		if next < 0 {
			from, next = &adds, ready(adds)
		}
		canRemove := len(changes) > 0 || len(removes) > 0
		if next >= 0 && (len(members) <= n0 || !canRemove) {
			r := (*from)[next]
			*from = slices.Delete(*from, next, next+1)
			apply(actionAdd, r)
			continue
		}
		if !canRemove {
			return nil, fmt.Errorf("%w: cannot add %s: addresses used by members that stay",
				errNoPlan, joinIDs(ids(slices.Concat(readds, adds))))
		}
		if len(members) == 1 {
			return nil, fmt.Errorf("%w: member %d is the only one, and removing it would leave none; add another member first",
				errNoPlan, members[0].ID)
		}
		// A removal: first a member whose address changes (it goes back once
		// removed), then one holding an address a pending addition wants.
		var r replicas.Replica
		if len(changes) > 0 {
			r, changes = changes[0], changes[1:]
			readds = append(readds, want[r.ID])
		} else {
			i := slices.IndexFunc(removes, func(m replicas.Replica) bool {
				return slices.ContainsFunc(adds, func(a replicas.Replica) bool { return sharesAddr(a, m) })
			})
			i = max(i, 0)
			r = removes[i]
			removes = slices.Delete(removes, i, i+1)
		}
		apply(actionRemove, r)
	}
	return steps, nil
}

// knownAddrs reports whether both of r's addresses are known.
func knownAddrs(r replicas.Replica) bool { return r.ClientAddr != "" && r.PeerAddr != "" }

// addrTaken reports whether a member holds one of r's addresses.
func addrTaken(members []replicas.Replica, r replicas.Replica) bool {
	return slices.ContainsFunc(members, func(m replicas.Replica) bool { return sharesAddr(m, r) })
}

// sharesAddr reports whether a and b have an address in common, as client or
// peer address.
func sharesAddr(a, b replicas.Replica) bool {
	for _, x := range []string{a.ClientAddr, a.PeerAddr} {
		if x != "" && (x == b.ClientAddr || x == b.PeerAddr) {
			return true
		}
	}
	return false
}

func findMember(list []replicas.Replica, id uint64) (replicas.Replica, bool) {
	i := slices.IndexFunc(list, func(r replicas.Replica) bool { return r.ID == id })
	if i < 0 {
		return replicas.Replica{}, false
	}
	return list[i], true
}

func byID(a, b replicas.Replica) int { return cmp.Compare(a.ID, b.ID) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ids(list []replicas.Replica) []uint64 {
	out := make([]uint64, len(list))
	for i, r := range list {
		out[i] = r.ID
	}
	return out
}

// joinIDs writes ids as "1,2,3", sorted.
func joinIDs(ids []uint64) string {
	ids = slices.Sorted(slices.Values(ids))
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ",")
}
