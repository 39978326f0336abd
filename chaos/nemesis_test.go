package chaos

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// linkCluster is a Cluster with proxies to nowhere and no processes: enough for
// the nemesis's link faults.
func linkCluster(t *testing.T, n int) *Cluster {
	t.Helper()
	c := &Cluster{links: make(map[[2]int]*Link)}
	for id := 1; id <= n; id++ {
		c.reps = append(c.reps, &Replica{ID: id})
	}
	for a := 1; a <= n; a++ {
		for b := 1; b <= n; b++ {
			if a == b {
				continue
			}
			l, err := NewLink(a, b, "127.0.0.1:1", 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			c.links[[2]int{a, b}] = l
		}
	}
	return c
}

func (l *Link) cuts() (fwd, bwd bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropFwd, l.dropBwd
}

// TestPartitionCutsBothWays checks that every partition cuts whole links,
// symmetrically, isolates the leader when it says so, and heals completely.
func TestPartitionCutsBothWays(t *testing.T) {
	c := linkCluster(t, 5)
	seen := make(map[string]bool)
	for seed := range uint64(64) {
		n := NewNemesis(c, NemesisConfig{Faults: []FaultKind{FaultPartition}}, seed, NewHistory(), nil)
		leader := 1 + int(seed%5)
		desc, heal, err := n.partition(c.IDs(), leader)
		if err != nil {
			t.Fatal(err)
		}
		kind := desc[strings.Index(desc, "(")+1 : strings.Index(desc, ",")]
		seen[kind] = true
		cut := make(map[[2]int]bool)
		for _, l := range c.Links() {
			fwd, bwd := l.cuts()
			if fwd != bwd {
				t.Fatalf("%s: link %s cut one way only", desc, l)
			}
			cut[[2]int{l.From, l.To}] = fwd
		}
		isolated, total := 0, 0
		for a := 1; a <= 5; a++ {
			n := 0
			for b := 1; b <= 5; b++ {
				if a == b {
					continue
				}
				if cut[[2]int{a, b}] != cut[[2]int{b, a}] {
					t.Fatalf("%s: %d→%d and %d→%d differ", desc, a, b, b, a)
				}
				if cut[[2]int{a, b}] {
					n++
					total++
				}
			}
			if n == 4 {
				isolated++
				if kind == "leader isolated" && a != leader {
					t.Fatalf("%s: replica %d isolated, not the leader", desc, a)
				}
			}
		}
		if kind == "leader isolated" && isolated != 1 {
			t.Fatalf("%s: %d replicas isolated", desc, isolated)
		}
		if total == 0 {
			t.Fatalf("%s: nothing cut", desc)
		}
		heal()
		for _, l := range c.Links() {
			if l.Faulty() {
				t.Fatalf("%s: link %s still faulty after healing", desc, l)
			}
		}
	}
	for _, want := range []string{"minority | majority", "leader isolated", "leader with a minority", "bridge"} {
		if !seen[want] {
			t.Errorf("64 seeds never drew a %q partition (drew %v)", want, seen)
		}
	}
}

// TestOneWayLeader checks the mute and deaf leader faults: exactly the
// directions that carry the leader's voice (or its hearing) are cut.
func TestOneWayLeader(t *testing.T) {
	c := linkCluster(t, 3)
	const leader = 2
	checked := make(map[string]bool)
	for seed := uint64(0); seed < 64 && len(checked) < 2; seed++ {
		n := NewNemesis(c, NemesisConfig{Faults: []FaultKind{FaultOneWay}}, seed, NewHistory(), nil)
		desc, heal, err := n.oneWay(c.IDs(), leader)
		if err != nil {
			t.Fatal(err)
		}
		mute, deaf := strings.Contains(desc, "mute"), strings.Contains(desc, "deaf")
		if mute || deaf {
			for _, other := range []int{1, 3} {
				outF, outB := c.Link(leader, other).cuts()
				inF, inB := c.Link(other, leader).cuts()
				// Mute: the leader's requests and its replies are lost.
				// Deaf: the replies to it and the requests to it are lost.
				want := [4]bool{mute, deaf, deaf, mute}
				if got := [4]bool{outF, outB, inF, inB}; got != want {
					t.Fatalf("%s: links with %d cut %v (out fwd, out bwd, in fwd, in bwd), want %v", desc, other, got, want)
				}
			}
			if f, b := c.Link(1, 3).cuts(); f || b {
				t.Fatalf("%s: link 1→3 between followers cut", desc)
			}
			checked[desc] = true
		}
		heal()
		for _, l := range c.Links() {
			if l.Faulty() {
				t.Fatalf("%s: link %s still faulty after healing", desc, l)
			}
		}
	}
	if len(checked) < 2 {
		t.Errorf("64 seeds did not draw both a mute and a deaf leader: %v", checked)
	}
}

// TestWipeVictim checks that wipes never leave more than a minority without
// state: once a minority is rebuilding, only they may be wiped again.
func TestWipeVictim(t *testing.T) {
	for _, tc := range []struct {
		ids, rebuilding []int
		minority        int
		allowed         []int
	}{
		{[]int{1, 2, 3}, nil, 1, []int{1, 2, 3}},
		{[]int{1, 2, 3}, []int{2}, 1, []int{2}},
		{[]int{1, 2, 3, 4, 5}, nil, 2, []int{1, 2, 3, 4, 5}},
		{[]int{1, 2, 3, 4, 5}, []int{4}, 2, []int{1, 2, 3, 4, 5}},
		{[]int{1, 2, 3, 4, 5}, []int{1, 4}, 2, []int{1, 4}},
		// One member more than the initial three while a spare is added:
		// still one of them at most.
		{[]int{1, 2, 4, 5}, []int{5}, 1, []int{5}},
		// Four members at first, five during a change: one at most.
		{[]int{1, 2, 3, 4, 6}, []int{3}, 1, []int{3}},
	} {
		seen := make(map[int]bool)
		for seed := range uint64(200) {
			rng := rand.New(rand.NewPCG(seed, 1))
			leader := 1 + int(seed%uint64(len(tc.ids)))
			v, err := wipeVictim(rng, tc.ids, tc.rebuilding, leader, tc.minority)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(tc.allowed, v) {
				t.Fatalf("ids %v, rebuilding %v: wiped %d; only %v may be", tc.ids, tc.rebuilding, v, tc.allowed)
			}
			seen[v] = true
		}
		if len(seen) != len(tc.allowed) {
			t.Errorf("ids %v, rebuilding %v: 200 seeds wiped only %v of %v", tc.ids, tc.rebuilding, seen, tc.allowed)
		}
	}
	for _, n := range []int{1, 2} {
		if _, err := wipeVictim(rand.New(rand.NewPCG(1, 1)), []int{1, 2}[:n], nil, 1, (n-1)/2); err == nil {
			t.Errorf("a cluster of %d replicas had a replica to wipe", n)
		}
	}
}

// TestDrawDealsEveryKind checks that every kind of the mix comes once in each
// round of draws.
func TestDrawDealsEveryKind(t *testing.T) {
	n := NewNemesis(linkCluster(t, 3), NemesisConfig{Faults: AllFaults}, 7, NewHistory(), nil)
	for round := range 5 {
		var got []FaultKind
		for range AllFaults {
			got = append(got, n.draw())
		}
		slices.Sort(got)
		want := slices.Clone(AllFaults)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d drew %v", round, got)
		}
	}
}

// TestDrawDealsEarlyFirst checks that the kinds named Early come first, once
// each, and that every kind still comes once in each round.
func TestDrawDealsEarlyFirst(t *testing.T) {
	early := []FaultKind{FaultWipe, FaultReconfigure}
	for seed := range uint64(20) {
		n := NewNemesis(linkCluster(t, 3), NemesisConfig{Faults: AllFaults, Early: early}, seed, NewHistory(), nil)
		first := []FaultKind{n.draw(), n.draw()}
		slices.Sort(first)
		if want := []FaultKind{FaultReconfigure, FaultWipe}; !slices.Equal(first, want) {
			t.Fatalf("seed %d: first draws %v, want %v in some order", seed, first, want)
		}
		for round := range 3 {
			got := slices.Clone(first)
			for range len(AllFaults) - len(got) {
				got = append(got, n.draw())
			}
			slices.Sort(got)
			want := slices.Clone(AllFaults)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d, round %d drew %v", seed, round, got)
			}
			first = nil
		}
	}
}

// TestPartitionAmongMembers checks that partitions are drawn among the members
// of the configuration in force: an isolated leader is cut off from every
// other member, whatever side the spares fall on.
func TestPartitionAmongMembers(t *testing.T) {
	c := linkCluster(t, 7)
	c.config = Configuration{Epoch: 3, Members: []int{1, 2, 4, 6, 7}}
	const leader = 4
	isolated := 0
	for seed := range uint64(64) {
		n := NewNemesis(c, NemesisConfig{Faults: []FaultKind{FaultPartition}}, seed, NewHistory(), nil)
		desc, heal, err := n.partition(c.Members(), leader)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(desc, "leader isolated") {
			isolated++
			for _, m := range c.Members() {
				if m == leader {
					continue
				}
				if fwd, bwd := c.Link(leader, m).cuts(); !fwd || !bwd {
					t.Fatalf("%s: link %d→%d not cut", desc, leader, m)
				}
				for _, o := range c.Members() {
					if o != m && o != leader {
						if fwd, _ := c.Link(m, o).cuts(); fwd {
							t.Fatalf("%s: link %d→%d between members on the majority side cut", desc, m, o)
						}
					}
				}
			}
		}
		heal()
	}
	if isolated == 0 {
		t.Fatal("64 seeds never isolated the leader")
	}
}
