package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/internal/tlsconfig"
)

// ClusterConfig describes a cluster of real ballotd processes.
type ClusterConfig struct {
	// Binary is the ballotd executable.
	Binary string
	// Replicas is how many replicas the cluster starts with as its members
	// (ids 1..Replicas).
	Replicas int
	// Spares is how many more replicas to run beyond them (ids Replicas+1 on),
	// not members until a configuration change adds them. They have proxies
	// and are listed in every replica's file from the start, and start with
	// --join.
	Spares int
	// Dir holds the replicas files, data directories and logs.
	Dir string
	// Env is added to each replica's environment (BALLOT_FAULTS=..., say).
	Env []string
	// DiskFaults lets FailDisk make a replica's disk fail: every replica starts
	// with a write or fsync failure (drawn at each start) that waits for its
	// own trigger file (see disk.go). Binary must be built with the
	// ballotfaults tag; the release build ignores BALLOT_FAULTS, and its
	// disk never fails.
	DiskFaults bool
	// Seed seeds the proxies' random choices.
	Seed uint64
	// Compaction sets the replicas' snapshot, log compaction and store rewrite
	// flags. The zero value is AggressiveCompaction.
	Compaction Compaction
	// Logf receives one line per process start and exit. Nil discards.
	Logf func(format string, args ...any)
}

// Cluster is a set of ballotd processes on loopback whose peer links all pass
// through fault-injecting proxies. Each replica has its own replicas file, in
// which every other replica's peer address is the proxy for the link from this
// replica to that one; replicas identify each other by the id in every message,
// so they cannot tell.
//
// The cluster's first configuration is replicas 1..Replicas; the harness
// follows later ones from what the replicas report (ObserveConfig).
type Cluster struct {
	cfg   ClusterConfig
	reps  []*Replica       // reps[i] has id i+1
	links map[[2]int]*Link // by {from, to}
	logf  func(string, ...any)

	mu         sync.Mutex // guards unexpected, config, misfits and diskRNG
	unexpected []string
	// config is the latest committed configuration the harness knows of.
	config Configuration
	// misfits lists the configurations seen with other than the initial
	// number of members or one more, which the harness never asks for.
	misfits []string
	// diskRNG draws each start's disk failure, with DiskFaults.
	diskRNG *rand.Rand
}

// Configuration is a committed configuration: its epoch and its members' ids,
// in order.
type Configuration struct {
	Epoch   int64
	Members []int
}

func (c Configuration) String() string { return fmt.Sprintf("epoch %d %v", c.Epoch, c.Members) }

// Replica is one ballotd and the process currently running it.
type Replica struct {
	ID           int
	ClientAddr   string
	PeerAddr     string
	DataDir      string
	ReplicasFile string
	LogPath      string

	mu     sync.Mutex // guards cmd, done, killed, armed, diskFault, paused, starts, neverMember and the wipe fields
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	killed *atomic.Bool  // set before this harness kills cmd
	// armed is set before FailDisk makes cmd's disk fail, after which cmd
	// is meant to exit; diskFault says how its disk fails then (the
	// BALLOT_FAULTS items cmd started with, DiskFaults only).
	armed     *atomic.Bool
	diskFault string
	paused    bool
	starts    int
	// neverMember is set for a spare no change has yet been asked to add: it
	// starts with --join. A replica that may have been a member must not (one
	// that lost its disk must rebuild its state instead).
	neverMember bool
	// wipes counts the times its data directory was deleted; rebuilding is
	// set from a wipe until its log shows, after wipeLogAt (the log's size at
	// the wipe), that it rebuilt its lost acceptor state.
	wipes      int
	rebuilding bool
	wipeLogAt  int64
}

// rebuiltMarker is what ballotd logs once a replica that lost its acceptor
// state has learned the log far enough to vote again (server/node.go).
const rebuiltMarker = "lost acceptor state rebuilt"

// StartCluster creates the proxies and replicas files and starts every replica.
// It does not wait for them to serve; see WaitServing. With spares it first
// founds the cluster with its members alone (see found).
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Replicas < 1 || cfg.Spares < 0 {
		return nil, fmt.Errorf("cluster of %d replicas and %d spares", cfg.Replicas, cfg.Spares)
	}
	c := &Cluster{cfg: cfg, links: make(map[[2]int]*Link), logf: cfg.Logf, diskRNG: newDiskRNG(cfg.Seed)}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	total := cfg.Replicas + cfg.Spares
	ports, err := freePorts(2 * total)
	if err != nil {
		return nil, err
	}
	for id := 1; id <= total; id++ {
		c.reps = append(c.reps, &Replica{
			ID:           id,
			ClientAddr:   ports[2*(id-1)],
			PeerAddr:     ports[2*(id-1)+1],
			DataDir:      filepath.Join(cfg.Dir, fmt.Sprintf("data-%d", id)),
			ReplicasFile: filepath.Join(cfg.Dir, fmt.Sprintf("replicas-%d.txt", id)),
			LogPath:      filepath.Join(cfg.Dir, fmt.Sprintf("replica-%d.log", id)),
			neverMember:  id > cfg.Replicas,
		})
		if id <= cfg.Replicas {
			c.config.Members = append(c.config.Members, id)
		}
	}
	c.config.Epoch = 1
	for _, from := range c.reps {
		for _, to := range c.reps {
			if from == to {
				continue
			}
			l, err := NewLink(from.ID, to.ID, to.PeerAddr, cfg.Seed)
			if err != nil {
				c.Close()
				return nil, err
			}
			c.links[[2]int{from.ID, to.ID}] = l
		}
	}
	if cfg.Spares > 0 {
		if err := c.found(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.writeFiles(c.IDs()); err != nil {
		c.Close()
		return nil, err
	}
	for _, r := range c.reps {
		if err := c.Start(r.ID); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// writeFiles writes every replica's replicas file listing the replicas ids:
// its own line with its real addresses, every other with the proxy of the
// link from it.
func (c *Cluster) writeFiles(ids []int) error {
	for _, r := range c.reps {
		var b strings.Builder
		fmt.Fprintf(&b, "# replica %d's view: its own line is real; every other peer address is the proxy for the link %d→that replica\n", r.ID, r.ID)
		for _, id := range ids {
			o := c.Replica(id)
			peer := o.PeerAddr
			if o != r {
				peer = c.links[[2]int{r.ID, o.ID}].Addr()
			}
			fmt.Fprintf(&b, "%d  %s  %s\n", o.ID, o.ClientAddr, peer)
		}
		if err := os.WriteFile(r.ReplicasFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// found starts the members alone, from files that list only them, waits until
// each has recorded them as the cluster's first configuration and promised a
// ballot, and kills them. A new cluster's members are the replicas its files
// list, and the spares must not be among them; once the configuration is
// recorded, the files may list the spares too (StartCluster rewrites them and
// starts everything again), and the members reach the spares through proxies
// from then on, as they would not if only a change told them the spares'
// addresses.
func (c *Cluster) found() error {
	members := c.Members()
	if err := c.writeFiles(members); err != nil {
		return err
	}
	for _, id := range members {
		if err := c.Start(id); err != nil {
			return err
		}
	}
	err := poll(context.Background(), 20*time.Second, fmt.Sprintf("members %v to found the cluster", members), func() error {
		st := c.Statuses(context.Background(), time.Second)
		for _, id := range members {
			s, ok := st[id]
			switch {
			case !ok:
				return fmt.Errorf("no status from replica %d", id)
			case s.ConfigEpoch != 1 || !s.Member || len(s.Members) != len(members):
				return fmt.Errorf("replica %d: epoch %d, members %v, member %v", id, s.ConfigEpoch, s.Members, s.Member)
			case s.Ballot == zeroBallot:
				return fmt.Errorf("replica %d has promised no ballot yet", id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, tails(c))
	}
	for _, id := range members {
		if err := c.Kill(id); err != nil {
			return err
		}
	}
	return nil
}

// zeroBallot is how status spells the ballot of a replica that has promised
// none.
const zeroBallot = "0.0"

// IDs returns every replica id in order.
func (c *Cluster) IDs() []int {
	ids := make([]int, len(c.reps))
	for i := range c.reps {
		ids[i] = i + 1
	}
	return ids
}

// Replica returns replica id.
func (c *Cluster) Replica(id int) *Replica { return c.reps[id-1] }

// Link returns the proxy for from→to.
func (c *Cluster) Link(from, to int) *Link { return c.links[[2]int{from, to}] }

// Links returns every proxy.
func (c *Cluster) Links() []*Link {
	out := make([]*Link, 0, len(c.links))
	for _, from := range c.IDs() {
		for _, to := range c.IDs() {
			if l := c.links[[2]int{from, to}]; l != nil {
				out = append(out, l)
			}
		}
	}
	return out
}

// ClientAddrs returns every replica's client address, by id order.
func (c *Cluster) ClientAddrs() []string {
	out := make([]string, len(c.reps))
	for i, r := range c.reps {
		out[i] = r.ClientAddr
	}
	return out
}

// Running reports whether replica id has a live process (paused counts).
func (c *Cluster) Running(id int) bool {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runningLocked()
}

func (r *Replica) runningLocked() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Start starts replica id's process unless it is running.
func (c *Cluster) Start(id int) error {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runningLocked() {
		return nil
	}
	logf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "=== chaos: start #%d of replica %d at %s: %s\n", r.starts, id, time.Now().Format(time.RFC3339Nano),
		c.cfg.Compaction)
	args := append([]string{"--id", strconv.Itoa(id), "--replicas", r.ReplicasFile, "--data", r.DataDir}, c.cfg.Compaction.args()...)
	if r.neverMember {
		args = append(args, "--join")
		fmt.Fprintf(logf, "=== chaos: replica %d is a spare never asked to join: --join\n", id)
	}
	env := c.cfg.Env
	diskFault := ""
	if c.cfg.DiskFaults {
		// A disk failure ends with the process it struck: the new one starts
		// on a working disk, which fails only if FailDisk arms it again.
		if err := os.Remove(c.diskTrigger(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logf.Close()
			return fmt.Errorf("start replica %d: %w", id, err)
		}
		diskFault = c.drawDiskFault()
		env = withFaults(env, diskFault+",disk-faults-armed-by="+c.diskTrigger(id))
		fmt.Fprintf(logf, "=== chaos: replica %d's disk will fail (%s) once %s exists\n", id, diskFault, c.diskTrigger(id))
	}
	cmd := exec.Command(c.cfg.Binary, args...)
	cmd.Env = append(os.Environ(), env...)
	// If the test process dies without cleaning up (a go test timeout, say),
	// the kernel kills its replicas too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start replica %d: %w", id, err)
	}
	done := make(chan struct{})
	killed, armed := new(atomic.Bool), new(atomic.Bool)
	r.cmd, r.done, r.killed, r.armed, r.diskFault, r.paused = cmd, done, killed, armed, diskFault, false
	go func() {
		err := cmd.Wait()
		// Its last words, read before the exit line below is appended.
		last := c.Tail(id, 1)
		fmt.Fprintf(logf, "=== chaos: replica %d (pid %d) exited: %v\n", id, cmd.Process.Pid, err)
		logf.Close()
		if !killed.Load() && !armed.Load() {
			c.mu.Lock()
			c.unexpected = append(c.unexpected, fmt.Sprintf("replica %d (pid %d) exited on its own: %v; its log ends: %s", id, cmd.Process.Pid, err, last))
			c.mu.Unlock()
		}
		close(done)
	}()
	return nil
}

// Kill sends SIGKILL to replica id and waits for the process to exit.
func (c *Cluster) Kill(id int) error {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.runningLocked() {
		return nil
	}
	r.killed.Store(true)
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill replica %d (pid %d): %w", id, r.cmd.Process.Pid, err)
	}
	r.paused = false
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-r.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("replica %d (pid %d) still running 10s after SIGKILL", id, r.cmd.Process.Pid)
	}
}

// Wipe kills replica id with SIGKILL and deletes its data directory, as if its
// disk had been lost; it does not restart it. Until the replica's log shows it
// rebuilt its lost state, Rebuilding lists it.
func (c *Cluster) Wipe(id int) error {
	if err := c.Kill(id); err != nil {
		return err
	}
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runningLocked() {
		// Started again between Kill and here: not by this harness, whose
		// nemesis is the only one to start replicas while faults run.
		return fmt.Errorf("wipe replica %d: it is running again", id)
	}
	size := int64(0)
	if fi, err := os.Stat(r.LogPath); err == nil {
		size = fi.Size()
	}
	if err := os.RemoveAll(r.DataDir); err != nil {
		return fmt.Errorf("wipe replica %d: %w", id, err)
	}
	if f, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "=== chaos: data directory of replica %d deleted at %s\n", id, time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
	r.wipes++
	r.rebuilding, r.wipeLogAt = true, size
	return nil
}

// Rebuilding returns the wiped replicas whose log does not yet show, since the
// last wipe, that they rebuilt their lost acceptor state.
func (c *Cluster) Rebuilding() []int {
	var out []int
	for _, r := range c.reps {
		r.mu.Lock()
		if r.rebuilding && logContainsSince(r.LogPath, r.wipeLogAt, rebuiltMarker) {
			r.rebuilding = false
		}
		if r.rebuilding {
			out = append(out, r.ID)
		}
		r.mu.Unlock()
	}
	return out
}

// Wiped returns every replica that was wiped at least once.
func (c *Cluster) Wiped() []int {
	var out []int
	for _, r := range c.reps {
		r.mu.Lock()
		if r.wipes > 0 {
			out = append(out, r.ID)
		}
		r.mu.Unlock()
	}
	return out
}

// logContainsSince reports whether the file at path holds s after offset.
func logContainsSince(path string, offset int64, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	data, err := io.ReadAll(f)
	return err == nil && strings.Contains(string(data), s)
}

// Pause stops replica id with SIGSTOP.
func (c *Cluster) Pause(id int) error { return c.signal(id, syscall.SIGSTOP, true) }

// Resume continues replica id with SIGCONT.
func (c *Cluster) Resume(id int) error { return c.signal(id, syscall.SIGCONT, false) }

func (c *Cluster) signal(id int, sig syscall.Signal, paused bool) error {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.runningLocked() {
		return nil
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v to replica %d (pid %d): %w", sig, id, r.cmd.Process.Pid, err)
	}
	r.paused = paused
	return nil
}

// Paused reports whether replica id is stopped by Pause.
func (c *Cluster) Paused(id int) bool {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused && r.runningLocked()
}

// HealNetwork ends every link fault.
func (c *Cluster) HealNetwork() {
	for _, l := range c.links {
		l.Heal()
	}
}

// HealAll ends every fault: heals the links, resumes paused replicas and
// starts stopped ones.
func (c *Cluster) HealAll() error {
	c.HealNetwork()
	var errs []error
	for _, id := range c.IDs() {
		if c.Paused(id) {
			errs = append(errs, c.Resume(id))
		}
		errs = append(errs, c.Start(id))
	}
	return errors.Join(errs...)
}

// Close kills every process this cluster started and stops the proxies.
func (c *Cluster) Close() {
	for _, r := range c.reps {
		r.mu.Lock()
		if r.runningLocked() {
			r.killed.Store(true)
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
		r.mu.Unlock()
	}
	for _, l := range c.links {
		l.Close()
	}
}

// Trouble returns the replicas' exits that no one asked for, configurations
// of a size the harness never asks for, and every log line that shows a crash
// or a data race.
func (c *Cluster) Trouble() []string {
	c.mu.Lock()
	out := append(slices.Clone(c.unexpected), c.misfits...)
	c.mu.Unlock()
	for _, r := range c.reps {
		data, err := os.ReadFile(r.LogPath)
		if err != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(string(data), bad) {
				out = append(out, fmt.Sprintf("replica %d's log contains %q", r.ID, bad))
			}
		}
	}
	return out
}

// Status asks replica id for its status on a fresh connection.
func (c *Cluster) Status(ctx context.Context, id int, timeout time.Duration) (*kvapi.ReplicaStatus, error) {
	kv, err := dialKV(c.Replica(id).ClientAddr, timeout)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := kv.Status(ctx)
	if err == nil && st.GetStarting() != "" {
		// Still starting: it serves nothing and reports no state yet.
		return nil, fmt.Errorf("replica %d is starting: %s", id, st.GetStarting())
	}
	return st, err
}

// Digest asks replica id for the digest of its store on a fresh connection.
func (c *Cluster) Digest(ctx context.Context, id int, timeout time.Duration) (*kvapi.Digest, error) {
	kv, err := dialKV(c.Replica(id).ClientAddr, timeout)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return kv.Digest(ctx)
}

// Statuses asks every replica for its status at once; replicas that do not
// answer within timeout are missing from the result.
func (c *Cluster) Statuses(ctx context.Context, timeout time.Duration) map[int]*kvapi.ReplicaStatus {
	var mu sync.Mutex // guards out
	out := make(map[int]*kvapi.ReplicaStatus)
	var wg sync.WaitGroup
	for _, id := range c.IDs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Status(ctx, id, timeout)
			if err == nil {
				mu.Lock()
				out[id] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Members returns the members of the latest configuration the harness knows
// of (see ObserveConfig).
func (c *Cluster) Members() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.config.Members) == 0 {
		return c.IDs()
	}
	return slices.Clone(c.config.Members)
}

// Config returns the latest configuration the harness knows of.
func (c *Cluster) Config() Configuration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Configuration{Epoch: c.config.Epoch, Members: slices.Clone(c.config.Members)}
}

// Spares returns every replica that is not a member of Config.
func (c *Cluster) Spares() []int {
	members := c.Members()
	var out []int
	for _, id := range c.IDs() {
		if !slices.Contains(members, id) {
			out = append(out, id)
		}
	}
	return out
}

// InitialMembers is how many members the cluster started with.
func (c *Cluster) InitialMembers() int {
	if c.cfg.Replicas == 0 {
		return len(c.reps)
	}
	return c.cfg.Replicas
}

// Minority is the most members a fault may take: a minority of the initial
// member count, and so no more than a minority of any configuration the
// harness moves the cluster to (the initial count of members or one more).
func (c *Cluster) Minority() int { return (c.InitialMembers() - 1) / 2 }

// MarkMember records that a change adding replica id may have been made: it
// starts without --join from now on.
func (c *Cluster) MarkMember(id int) {
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.neverMember = false
}

// noteConfig records a committed configuration if it is later than the one
// known, and returns the latest known.
func (c *Cluster) noteConfig(cfg Configuration) Configuration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Epoch > c.config.Epoch && len(cfg.Members) > 0 {
		c.config = Configuration{Epoch: cfg.Epoch, Members: slices.Clone(cfg.Members)}
		slices.Sort(c.config.Members)
		c.logf("configuration %s in force", c.config)
		if n, initial := len(cfg.Members), c.InitialMembers(); n != initial && n != initial+1 {
			c.misfits = append(c.misfits, fmt.Sprintf("configuration %s has %d members; the harness asks for %d or %d",
				c.config, n, initial, initial+1))
		}
	}
	return Configuration{Epoch: c.config.Epoch, Members: slices.Clone(c.config.Members)}
}

// observe records the latest configuration any of the statuses reports (a
// replica reports only a configuration it has committed), and returns the
// latest known.
func (c *Cluster) observe(st map[int]*kvapi.ReplicaStatus) Configuration {
	var latest Configuration
	for _, s := range st {
		if s.ConfigEpoch > latest.Epoch && len(s.Members) > 0 {
			latest = Configuration{Epoch: s.ConfigEpoch, Members: statusMembers(s)}
		}
	}
	return c.noteConfig(latest)
}

// ObserveConfig asks every replica for its status and returns the latest
// committed configuration any reports, or a later one the harness knows of.
func (c *Cluster) ObserveConfig(ctx context.Context) Configuration {
	return c.observe(c.Statuses(ctx, time.Second))
}

// statusMembers returns the member ids a status lists, in order.
func statusMembers(s *kvapi.ReplicaStatus) []int {
	out := make([]int, 0, len(s.Members))
	for _, id := range s.Members {
		out = append(out, int(id))
	}
	slices.Sort(out)
	return out
}

// Leader returns the member that claims to lead and that most members name as
// leader, or 0 when none claims to.
func (c *Cluster) Leader(ctx context.Context) int {
	st := c.Statuses(ctx, 400*time.Millisecond)
	members := c.observe(st).Members
	votes := make(map[int64]int)
	for id, s := range st {
		if s.LeaderID != 0 && slices.Contains(members, id) {
			votes[s.LeaderID]++
		}
	}
	best, bestVotes := 0, -1
	for id, s := range st {
		if s.IsLeader && slices.Contains(members, id) && votes[int64(id)] > bestVotes {
			best, bestVotes = id, votes[int64(id)]
		}
	}
	return best
}

// WaitLeader waits until one member of the latest configuration claims to lead
// and a majority of its members name it, and returns its id.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	leader := 0
	err := poll(ctx, timeout, "a leader named by a majority of the members", func() error {
		st := c.Statuses(ctx, time.Second)
		cfg := c.observe(st)
		var claims []int
		for id, s := range st {
			if s.IsLeader && slices.Contains(cfg.Members, id) {
				claims = append(claims, id)
			}
		}
		if len(claims) != 1 {
			return fmt.Errorf("members of %s claiming to lead: %v (of %d replicas answering)", cfg, claims, len(st))
		}
		votes := 0
		for id, s := range st {
			if s.LeaderID == int64(claims[0]) && slices.Contains(cfg.Members, id) {
				votes++
			}
		}
		if votes <= len(cfg.Members)/2 {
			return fmt.Errorf("only %d members of %s name %d as leader", votes, cfg, claims[0])
		}
		leader = claims[0]
		return nil
	})
	return leader, err
}

// WaitServing waits until every replica answers status.
func (c *Cluster) WaitServing(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, "every replica to answer status", func() error {
		st := c.Statuses(ctx, time.Second)
		var missing []int
		for _, id := range c.IDs() {
			if _, ok := st[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no status from replicas %v", missing)
		}
		return nil
	})
}

// Tail returns the last n lines of replica id's log.
func (c *Cluster) Tail(id, n int) string {
	data, err := os.ReadFile(c.Replica(id).LogPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// poll calls cond every 20ms until it returns nil, and returns an error naming
// what and cond's last error once timeout has passed or ctx has ended.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("waited %s for %s; last: %w", timeout, what, err)
		}
		if !pause(ctx, 20*time.Millisecond) {
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// pause waits d or until ctx ends, and reports whether d passed. It paces
// retries and the fault schedule; it never stands in for waiting on a condition.
func pause(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// usedPorts holds every port freePorts has handed out in this process, so two
// replicas never share one even after the first let it go.
var usedPorts = struct {
	sync.Mutex // guards m
	m          map[int]bool
}{m: make(map[int]bool)}

// freePorts returns n loopback addresses whose ports were free a moment ago.
// The ports lie below the kernel's ephemeral range, where neither a listener on
// port 0 (the proxies', other tests') nor an outgoing connection can take one
// while its replica is down between a kill and a restart.
func freePorts(n int) ([]string, error) {
	lo, hi := 10000, ephemeralLow()-1
	if hi-lo < 1000 {
		return nil, fmt.Errorf("no room below the ephemeral port range (it starts at %d)", hi+1)
	}
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000*n {
			return nil, errors.New("no free port below the ephemeral range")
		}
		port := lo + rand.IntN(hi-lo+1)
		usedPorts.Lock()
		seen := usedPorts.m[port]
		usedPorts.m[port] = true
		usedPorts.Unlock()
		if seen {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		out = append(out, addr)
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if it
// cannot be read).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(data))
	if len(fields) < 1 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return low
}

// kvConn is a raw Thrift connection to one replica's client service: framed
// transport and strict binary protocol, as a client in any language would use.
type kvConn struct {
	*kvapi.KVClient
	addr string
	sock thrift.TTransport
}

// dialKV connects to addr; every read and write on the connection times out
// after timeout.
func dialKV(addr string, timeout time.Duration) (*kvConn, error) {
	return dialKVWith(addr, timeout, nil)
}

// dialKVWith is dialKV over TLS with tlsConfig (for addr's host), or plaintext
// if it is nil.
func dialKVWith(addr string, timeout time.Duration, tlsConfig *tls.Config) (*kvConn, error) {
	strict := true
	cfg := &thrift.TConfiguration{
		ConnectTimeout:     min(timeout, time.Second),
		SocketTimeout:      timeout,
		TBinaryStrictRead:  &strict,
		TBinaryStrictWrite: &strict,
		TLSConfig:          tlsconfig.ForHost(tlsConfig, addr),
	}
	var sock thrift.TTransport = thrift.NewTSocketConf(addr, cfg)
	if tlsConfig != nil {
		sock = thrift.NewTSSLSocketConf(addr, cfg)
	}
	if err := sock.Open(); err != nil {
		return nil, err
	}
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	proto := thrift.NewTBinaryProtocolConf(trans, cfg)
	return &kvConn{KVClient: kvapi.NewKVClient(thrift.NewTStandardClient(proto, proto)), addr: addr, sock: sock}, nil
}

func (k *kvConn) Close() error { return k.sock.Close() }
