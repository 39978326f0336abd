package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// FaultKind names one kind of fault the nemesis injects.
type FaultKind string

// The kinds of fault. A fault-mix setting is a comma-separated list of them, or
// "all".
const (
	// FaultPartition splits the replicas: a minority from a majority, the
	// leader alone, the leader with a minority, or two halves joined only
	// through one bridge replica.
	FaultPartition FaultKind = "partition"
	// FaultOneWay drops the bytes of one direction only: the leader's requests
	// (it hears but is not heard), the replies to the leader, or random links.
	FaultOneWay FaultKind = "oneway"
	// FaultDelay delays the bytes of some links (tens to hundreds of ms).
	FaultDelay FaultKind = "delay"
	// FaultDrop closes connections on some links at random.
	FaultDrop FaultKind = "drop"
	// FaultKill kills a minority of replicas with SIGKILL (often the leader),
	// and restarts them when the fault ends.
	FaultKill FaultKind = "kill"
	// FaultKillMajority kills a majority (sometimes every replica), the leader
	// among them, all at once, and restarts them together.
	FaultKillMajority FaultKind = "kill-majority"
	// FaultPause stops a replica (usually the leader) with SIGSTOP and
	// continues it with SIGCONT when the fault ends.
	FaultPause FaultKind = "pause"
	// FaultWipe kills one replica with SIGKILL (often the leader), deletes its
	// data directory and restarts it empty, at once or when the fault ends; it
	// must rebuild itself from the others. Never more than a minority of the
	// replicas are wiped and not yet rebuilt at once.
	FaultWipe FaultKind = "wipe"
	// FaultReconfigure replaces a random member (the leader, sometimes) by a
	// spare in two changes, while the other faults go on: it adds the spare,
	// waits until it votes and has caught up, then removes the member, which
	// stays running as a spare. See reconfig.go.
	FaultReconfigure FaultKind = "reconfigure"
	// FaultDisk makes the store of one member (the leader half the time)
	// fail a write or an fsync with EIO; the replica must exit with status 1
	// naming its store file, and is restarted on the same data directory
	// when the fault ends. Needs a ballotfaults build. See disk.go.
	FaultDisk FaultKind = "disk"
)

// AllFaults is what "all" means.
var AllFaults = []FaultKind{FaultPartition, FaultOneWay, FaultDelay, FaultDrop, FaultKill, FaultKillMajority, FaultPause, FaultWipe,
	FaultReconfigure, FaultDisk}

// ParseFaults reads a fault mix: kinds separated by commas, or "all".
func ParseFaults(s string) ([]FaultKind, error) {
	var out []FaultKind
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case name == "all":
			for _, k := range AllFaults {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		case slices.Contains(AllFaults, FaultKind(name)):
			if !slices.Contains(out, FaultKind(name)) {
				out = append(out, FaultKind(name))
			}
		default:
			return nil, fmt.Errorf("unknown fault %q (want all or some of %v)", name, AllFaults)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no fault kinds given")
	}
	return out, nil
}

// network reports whether k acts on links (two such faults never overlap:
// healing one would end the other).
func (k FaultKind) network() bool {
	return k == FaultPartition || k == FaultOneWay || k == FaultDelay || k == FaultDrop || k == FaultKillMajority
}

func (k FaultKind) kills() bool { return k == FaultKill || k == FaultKillMajority }

// stopsProcesses reports whether k kills, stops or fails replicas' processes.
func (k FaultKind) stopsProcesses() bool {
	return k.kills() || k == FaultPause || k == FaultWipe || k == FaultDisk
}

// overlap reports whether faults of kinds a and b may run at once: two of the
// same kind or two link faults never do (healing one would end the other), nor
// kill and kill-majority, nor a disk failure and another fault that stops
// processes: its victim must be running to meet the failure, and stop by
// itself.
func overlap(a, b FaultKind) bool {
	switch {
	case a == b, a.network() && b.network(), a.kills() && b.kills():
		return false
	case a == FaultDisk || b == FaultDisk:
		return !(a.stopsProcesses() && b.stopsProcesses())
	}
	return true
}

// NemesisConfig paces the fault schedule.
type NemesisConfig struct {
	Faults []FaultKind
	// Hold: how long each fault lasts, drawn from [MinHold, MaxHold].
	// Defaults 1s and 4s.
	MinHold, MaxHold time.Duration
	// Quiet: the pause between faults, drawn from [MinQuiet, MaxQuiet].
	// Defaults 200ms and 1.5s.
	MinQuiet, MaxQuiet time.Duration
	// IsolateBeforeKill is the chance that kill-majority first cuts the
	// survivors off from the victims. Default 0.5; negative means never.
	IsolateBeforeKill float64
	// Combine is the chance that a second fault of another kind runs at the
	// same time. Default 0.3; negative means never.
	Combine float64
	// Early lists kinds of the mix dealt first, in a random order, before the
	// rest of the first round: a short history whose checks need some kind
	// to have happened names it here.
	Early []FaultKind
	// DiskStopBound is how long a replica whose disk fails may go on
	// running before the fault counts as not honoured. Default
	// DefaultDiskStopBound.
	DiskStopBound time.Duration
}

func (c NemesisConfig) withDefaults() NemesisConfig {
	if c.MinHold == 0 {
		c.MinHold = time.Second
	}
	if c.MaxHold == 0 {
		c.MaxHold = 4 * time.Second
	}
	if c.MinQuiet == 0 {
		c.MinQuiet = 200 * time.Millisecond
	}
	if c.MaxQuiet == 0 {
		c.MaxQuiet = 1500 * time.Millisecond
	}
	if c.IsolateBeforeKill == 0 {
		c.IsolateBeforeKill = 0.5
	}
	if c.Combine == 0 {
		c.Combine = 0.3
	}
	if c.DiskStopBound == 0 {
		c.DiskStopBound = DefaultDiskStopBound
	}
	return c
}

// FaultEvent is one fault as it was injected, in the history's clock.
type FaultEvent struct {
	Start, End int64
	Kind       FaultKind
	Detail     string
	// Wiped is the replica a wipe deleted the data of; 0 for other kinds.
	Wiped int
}

// ConfigChange is one configuration change the reconfigure fault saw
// committed, in the history's clock.
type ConfigChange struct {
	At             int64
	From, To       Configuration
	Added, Removed int // the replica added or removed, 0 if none
}

// Nemesis injects faults into a cluster on a schedule drawn from a seeded
// random source. What a fault targets ("the leader") is resolved when it starts.
type Nemesis struct {
	c    *Cluster
	cfg  NemesisConfig
	rng  *rand.Rand
	h    *History
	logf func(string, ...any)

	// deck holds the kinds still to be drawn in this round: every kind of
	// the mix comes once per round, in a random order. dealt is set once the
	// first round is in the deck.
	deck  []FaultKind
	dealt bool

	mu     sync.Mutex // guards events, errs, unhonoured, changes, added and outcomes
	events []FaultEvent
	errs   []error
	// unhonoured lists the faults the replicas did not respond to as they
	// must (a disk failure that did not stop its replica).
	unhonoured []string
	// changes are the configuration changes the reconfigure fault made;
	// added is the replica it added last.
	changes []ConfigChange
	added   int
	// outcomes says how the last fault of a kind ended, for the kinds that
	// say (reconfigure, disk); it joins the fault's description.
	outcomes map[FaultKind]string
}

// NewNemesis returns a nemesis for c whose choices come from seed.
func NewNemesis(c *Cluster, cfg NemesisConfig, seed uint64, h *History, logf func(string, ...any)) *Nemesis {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Nemesis{c: c, cfg: cfg.withDefaults(), rng: rand.New(rand.NewPCG(seed, 0x6e656d65)), h: h, logf: logf}
}

// Events returns the faults injected so far.
func (n *Nemesis) Events() []FaultEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]FaultEvent(nil), n.events...)
}

// Changes returns the configuration changes the reconfigure fault made.
func (n *Nemesis) Changes() []ConfigChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ConfigChange(nil), n.changes...)
}

// Unhonoured returns the faults the replicas did not respond to as they must.
func (n *Nemesis) Unhonoured() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.unhonoured...)
}

// setOutcome records how the current fault of kind k ended.
func (n *Nemesis) setOutcome(k FaultKind, outcome string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.outcomes == nil {
		n.outcomes = make(map[FaultKind]string)
	}
	n.outcomes[k] = outcome
}

// Err returns the errors met while injecting or healing faults.
func (n *Nemesis) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}

func (n *Nemesis) fail(err error) {
	if err == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.errs = append(n.errs, err)
}

func (n *Nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// Run injects faults until ctx ends, then heals the one in force and returns.
func (n *Nemesis) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if !pause(ctx, n.between(n.cfg.MinQuiet, n.cfg.MaxQuiet)) {
			return
		}
		kinds := []FaultKind{n.draw()}
		if n.rng.Float64() < n.cfg.Combine {
			second := n.cfg.Faults[n.rng.IntN(len(n.cfg.Faults))]
			if overlap(kinds[0], second) {
				kinds = append(kinds, second)
			}
		}
		if len(kinds) == 2 && kinds[1] == FaultReconfigure {
			// The change starts first, so that the other fault strikes
			// while it is under way; it is waited for last.
			kinds[0], kinds[1] = kinds[1], kinds[0]
		}
		hold := n.between(n.cfg.MinHold, n.cfg.MaxHold)
		var heals []func() error
		var started []int
		for _, k := range kinds {
			detail, heal, wiped, err := n.inject(ctx, k)
			if err != nil {
				n.fail(fmt.Errorf("inject %s: %w", k, err))
			}
			if heal == nil {
				continue
			}
			n.mu.Lock()
			n.events = append(n.events, FaultEvent{Start: n.h.Now(), End: -1, Kind: k, Detail: detail, Wiped: wiped})
			started = append(started, len(n.events)-1)
			n.mu.Unlock()
			n.logf("fault %s: %s for %s", k, detail, hold.Round(time.Millisecond))
			heals = append(heals, heal)
		}
		pause(ctx, hold)
		for i := len(heals) - 1; i >= 0; i-- {
			n.fail(heals[i]())
		}
		end := n.h.Now()
		n.mu.Lock()
		for _, i := range started {
			n.events[i].End = end
			k := n.events[i].Kind
			if outcome, ok := n.outcomes[k]; ok {
				n.events[i].Detail += "; " + outcome
				n.logf("fault %s ended: %s", k, outcome)
				delete(n.outcomes, k)
			}
		}
		n.mu.Unlock()
	}
}

// draw returns the next kind from the deck, refilled with every kind of the
// mix in a new random order when empty: the first k faults of a history with a
// mix of k kinds are one of each, so a short history still sees every kind.
func (n *Nemesis) draw() FaultKind {
	if len(n.deck) == 0 {
		var early []FaultKind
		if !n.dealt {
			for _, k := range n.cfg.Early {
				if slices.Contains(n.cfg.Faults, k) && !slices.Contains(early, k) {
					early = append(early, k)
				}
			}
			n.dealt = true
		}
		rest := slices.DeleteFunc(slices.Clone(n.cfg.Faults), func(k FaultKind) bool { return slices.Contains(early, k) })
		n.rng.Shuffle(len(early), func(i, j int) { early[i], early[j] = early[j], early[i] })
		n.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		n.deck = append(early, rest...)
	}
	k := n.deck[0]
	n.deck = n.deck[1:]
	return k
}

// inject starts one fault and returns what it did, how to end it and, for a
// wipe, the replica wiped. Faults are aimed at the members of the latest
// configuration known; some also strike spares, which must not mind.
func (n *Nemesis) inject(ctx context.Context, k FaultKind) (string, func() error, int, error) {
	leader := n.c.Leader(ctx)
	ids := n.c.Members()
	switch k {
	case FaultWipe:
		return n.wipe(ids, leader)
	case FaultReconfigure:
		detail, heal, err := n.reconfigure(ctx, leader)
		return detail, heal, 0, err
	case FaultDisk:
		detail, heal, err := n.diskFault(ctx, ids, leader)
		return detail, heal, 0, err
	}
	detail, heal, err := n.injectOther(ctx, k, ids, leader)
	return detail, heal, 0, err
}

// maybeSpare returns a random spare one time in every, or 0.
func (n *Nemesis) maybeSpare(every int) int {
	spares := n.c.Spares()
	if len(spares) == 0 || n.rng.IntN(every) != 0 {
		return 0
	}
	return spares[n.rng.IntN(len(spares))]
}

// injectOther starts a fault of any kind but wipe.
func (n *Nemesis) injectOther(ctx context.Context, k FaultKind, ids []int, leader int) (string, func() error, error) {
	switch k {
	case FaultPartition:
		return n.partition(ids, leader)
	case FaultOneWay:
		return n.oneWay(ids, leader)
	case FaultDelay:
		links := n.someLinks(ids)
		d := n.between(5*time.Millisecond, 250*time.Millisecond)
		jitter := d / 2
		for _, l := range links {
			l.Delay(d, jitter)
		}
		return fmt.Sprintf("delay %s (+%s jitter) on %s", d.Round(time.Millisecond), jitter.Round(time.Millisecond), linkNames(links)),
			healLinks(links), nil
	case FaultDrop:
		links := n.someLinks(ids)
		p := 0.02 + 0.2*n.rng.Float64()
		for _, l := range links {
			l.Drop(p)
		}
		return fmt.Sprintf("close connections with p=%.2f per chunk on %s", p, linkNames(links)), healLinks(links), nil
	case FaultKillMajority:
		return n.killMajority(ctx, ids, leader)
	case FaultKill:
		count := 1 + n.rng.IntN(max(1, n.c.Minority()))
		withLeader := 0
		if n.rng.IntN(2) == 0 {
			withLeader = leader
		}
		victims := n.pick(ids, count, withLeader)
		what := fmt.Sprintf("replicas %v", victims)
		if spare := n.maybeSpare(4); spare != 0 {
			victims = append(victims, spare)
			what += fmt.Sprintf(" and spare %d", spare)
		}
		var errs []error
		for _, id := range victims {
			errs = append(errs, n.c.Kill(id))
		}
		heal := func() error {
			var errs []error
			for _, id := range victims {
				errs = append(errs, n.c.Start(id))
			}
			return errors.Join(errs...)
		}
		return fmt.Sprintf("kill -9 %s (leader %d), restart after", what, leader), heal, errors.Join(errs...)
	case FaultPause:
		victim, what := leader, "replica"
		if victim == 0 || n.rng.IntN(4) == 0 {
			victim = ids[n.rng.IntN(len(ids))]
			if spare := n.maybeSpare(3); spare != 0 {
				victim, what = spare, "spare"
			}
		}
		if err := n.c.Pause(victim); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("SIGSTOP %s %d (leader %d), SIGCONT after", what, victim, leader),
			func() error { return n.c.Resume(victim) }, nil
	}
	return "", nil, fmt.Errorf("unknown fault kind %q", k)
}

// wipe kills one replica, deletes its data directory and restarts it, two
// times in three at once and otherwise when the fault ends. The victim is the
// leader half the time. A wiped replica counts as rebuilding until its log
// says it rebuilt its state; while a minority of the cluster is rebuilding, the
// victim is one of them (wiping it again leaves no more replicas without state).
func (n *Nemesis) wipe(ids []int, leader int) (string, func() error, int, error) {
	// Members only: a spare that rebuilds only once a change adds it would
	// count as rebuilding until then.
	rebuilding := slices.DeleteFunc(n.c.Rebuilding(), func(id int) bool { return !slices.Contains(ids, id) })
	victim, err := wipeVictim(n.rng, ids, rebuilding, leader, n.c.Minority())
	if err != nil {
		return "", nil, 0, err
	}
	atOnce := n.rng.IntN(3) != 0
	if err := n.c.Wipe(victim); err != nil {
		return "", nil, 0, err
	}
	detail := fmt.Sprintf("kill -9 replica %d (leader %d), delete its data directory", victim, leader)
	if len(rebuilding) > 0 {
		detail += fmt.Sprintf(" (rebuilding before: %v)", rebuilding)
	}
	restart := func() error { return n.c.Start(victim) }
	if atOnce {
		return detail + ", restart it at once", func() error { return nil }, victim, restart()
	}
	return detail + ", restart it after", restart, victim, nil
}

// wipeVictim picks the member to wipe: any of ids (the leader half the time)
// while fewer than minority are rebuilding, otherwise one of those.
func wipeVictim(rng *rand.Rand, ids, rebuilding []int, leader, minority int) (int, error) {
	if minority < 1 {
		return 0, fmt.Errorf("members %v have no minority to wipe", ids)
	}
	candidates := ids
	if len(rebuilding) >= minority {
		candidates = rebuilding
	}
	if leader != 0 && slices.Contains(candidates, leader) && rng.IntN(2) == 0 {
		return leader, nil
	}
	return candidates[rng.IntN(len(candidates))], nil
}

// killMajority kills a majority (sometimes every replica), the leader among
// them, at once. Sometimes it
// first cuts the survivors off from the victims for a moment, so that the
// latest writes are on the victims' disks only: once the victims are back, only
// what they kept on disk can bring those writes back.
func (n *Nemesis) killMajority(ctx context.Context, ids []int, leader int) (string, func() error, error) {
	majority := len(ids)/2 + 1
	victims := n.pick(ids, majority+n.rng.IntN(len(ids)-majority+1), leader)
	if len(victims) == len(ids) {
		// Every replica, the spares too.
		victims = n.c.IDs()
	}
	var cut []*Link
	detail := fmt.Sprintf("kill -9 replicas %v (leader %d), restart after", victims, leader)
	if n.rng.Float64() < n.cfg.IsolateBeforeKill {
		all := n.c.IDs()
		for _, a := range all {
			for _, b := range all {
				if a != b && slices.Contains(victims, a) != slices.Contains(victims, b) {
					l := n.c.Link(a, b)
					l.Cut(true, true)
					cut = append(cut, l)
				}
			}
		}
		lead := n.between(200*time.Millisecond, time.Second)
		pause(ctx, lead)
		detail = fmt.Sprintf("cut the others off from replicas %v (leader %d) for %s, then kill -9 those, heal and restart after",
			victims, leader, lead.Round(time.Millisecond))
	}
	var errs []error
	for _, id := range victims {
		errs = append(errs, n.c.Kill(id))
	}
	heal := func() error {
		healLinks(cut)()
		var errs []error
		for _, id := range victims {
			errs = append(errs, n.c.Start(id))
		}
		return errors.Join(errs...)
	}
	return detail, heal, errors.Join(errs...)
}

// pick returns count distinct ids, must (if non-zero) among them.
func (n *Nemesis) pick(ids []int, count, must int) []int {
	shuffled := append([]int(nil), ids...)
	n.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	out := make([]int, 0, count)
	if must != 0 {
		out = append(out, must)
	}
	for _, id := range shuffled {
		if len(out) == count {
			break
		}
		if id != must {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// partition cuts every link between replicas on different sides: the sides
// are drawn among the members ids, and every spare joins one at random.
func (n *Nemesis) partition(ids []int, leader int) (string, func() error, error) {
	if leader == 0 {
		leader = ids[n.rng.IntN(len(ids))]
	}
	var (
		side   = make(map[int]int) // replica → side 0 or 1
		bridge = 0
		what   string
	)
	minority := func(size, must int) []int { return n.pick(ids, size, must) }
	switch n.rng.IntN(4) {
	case 0:
		what = "minority | majority"
		for _, id := range minority(1+n.rng.IntN(max(1, (len(ids)-1)/2)), 0) {
			side[id] = 1
		}
	case 1:
		what = "leader isolated"
		side[leader] = 1
	case 2:
		what = "leader with a minority"
		for _, id := range minority(max(1, (len(ids)-1)/2), leader) {
			side[id] = 1
		}
	case 3:
		what = "bridge"
		shuffled := n.pick(ids, len(ids), 0)
		n.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		bridge = shuffled[0]
		for i, id := range shuffled[1:] {
			if i%2 == 1 {
				side[id] = 1
			}
		}
	}
	// Spares go to either side.
	all := n.c.IDs()
	for _, id := range all {
		if !slices.Contains(ids, id) {
			side[id] = n.rng.IntN(2)
		}
	}
	var cut []*Link
	for _, a := range all {
		for _, b := range all {
			if a == b || a == bridge || b == bridge || side[a] == side[b] {
				continue
			}
			l := n.c.Link(a, b)
			l.Cut(true, true)
			cut = append(cut, l)
		}
	}
	var left, right []int
	for _, id := range all {
		switch {
		case id == bridge:
		case side[id] == 0:
			left = append(left, id)
		default:
			right = append(right, id)
		}
	}
	desc := fmt.Sprintf("partition (%s, leader %d): %v | %v", what, leader, left, right)
	if bridge != 0 {
		desc += fmt.Sprintf(", bridged by %d", bridge)
	}
	if len(all) > len(ids) {
		desc += fmt.Sprintf(" (members %v)", ids)
	}
	return desc, healLinks(cut), nil
}

// oneWay drops the bytes of one direction on some links.
func (n *Nemesis) oneWay(ids []int, leader int) (string, func() error, error) {
	var (
		links []*Link
		what  string
	)
	switch r := n.rng.IntN(3); {
	case r == 0 && leader != 0:
		// The leader's requests are lost and so are its replies: others
		// cannot hear it, while it hears them.
		what = fmt.Sprintf("leader %d mute", leader)
		for _, id := range n.c.IDs() {
			if id == leader {
				continue
			}
			out, in := n.c.Link(leader, id), n.c.Link(id, leader)
			out.Cut(true, false)
			in.Cut(false, true)
			links = append(links, out, in)
		}
	case r == 1 && leader != 0:
		// The replies to the leader and the requests to it are lost: it is
		// heard but hears nothing.
		what = fmt.Sprintf("leader %d deaf", leader)
		for _, id := range n.c.IDs() {
			if id == leader {
				continue
			}
			out, in := n.c.Link(leader, id), n.c.Link(id, leader)
			out.Cut(false, true)
			in.Cut(true, false)
			links = append(links, out, in)
		}
	default:
		var parts []string
		for _, l := range n.someLinks(ids) {
			fwd := n.rng.IntN(2) == 0
			l.Cut(fwd, !fwd)
			links = append(links, l)
			dir := "replies"
			if fwd {
				dir = "requests"
			}
			parts = append(parts, fmt.Sprintf("%s %s", l, dir))
		}
		what = "lost " + strings.Join(parts, ", ")
	}
	return "one-way: " + what, healLinks(links), nil
}

// someLinks picks the links of one of ids, or a random handful of every
// replica's links, or all.
func (n *Nemesis) someLinks(ids []int) []*Link {
	all := n.c.Links()
	switch n.rng.IntN(3) {
	case 0:
		id := ids[n.rng.IntN(len(ids))]
		var out []*Link
		for _, l := range all {
			if l.From == id || l.To == id {
				out = append(out, l)
			}
		}
		return out
	case 1:
		n.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		return all[:1+n.rng.IntN(len(all)/2)]
	}
	return all
}

func healLinks(links []*Link) func() error {
	return func() error {
		for _, l := range links {
			l.Heal()
		}
		return nil
	}
}

func linkNames(links []*Link) string {
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.String()
	}
	if len(names) > 8 {
		return fmt.Sprintf("%d links", len(names))
	}
	return strings.Join(names, " ")
}

// writeSchedule lists the faults, one per line, with their times.
func writeSchedule(w io.Writer, seed uint64, events []FaultEvent) error {
	if _, err := fmt.Fprintf(w, "# seed %d: %d faults; times are seconds since the history began\n", seed, len(events)); err != nil {
		return err
	}
	for _, e := range events {
		end := "(not healed)"
		if e.End >= 0 {
			end = fmt.Sprintf("%9.3fs", time.Duration(e.End).Seconds())
		}
		if _, err := fmt.Fprintf(w, "%9.3fs %s %-13s %s\n", time.Duration(e.Start).Seconds(), end, e.Kind, e.Detail); err != nil {
			return err
		}
	}
	return nil
}
