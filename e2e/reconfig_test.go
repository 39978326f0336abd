package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/chaos"
	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Tests of membership changes through the log (idl/kv.thrift, reconfigure):
// replicas added, removed and replaced while clients run, their history checked
// for linearizability by porcupine (package chaos records it); a replicas file
// edited without a change, which must not let new replicas form a majority; a
// leader killed in the middle of a change; and the lists a change refuses.

// reconfigTimeout bounds one reconfigure, NotLeader redirects included.
const reconfigTimeout = 15 * time.Second

// address is replica id as a reconfigure call lists it.
func (c *cluster) address(id int) *kvapi.ReplicaAddress {
	r := c.rep(id)
	return &kvapi.ReplicaAddress{ID: int64(id), ClientAddr: r.clientAddr, PeerAddr: r.peerAddr}
}

func (c *cluster) addresses(ids []int) []*kvapi.ReplicaAddress {
	out := make([]*kvapi.ReplicaAddress, 0, len(ids))
	for _, id := range ids {
		out = append(out, c.address(id))
	}
	return out
}

// idAt returns the id of the replica whose client address is addr, 0 if none.
func (c *cluster) idAt(addr string) int {
	for _, r := range c.reps {
		if r.clientAddr == addr {
			return r.id
		}
	}
	return 0
}

// nextRunning returns the running replica after id, in id order, wrapping.
func (c *cluster) nextRunning(id int) int {
	for i := 1; i <= len(c.reps); i++ {
		next := (id-1+i)%len(c.reps) + 1
		if c.rep(next).running() {
			return next
		}
	}
	return id
}

// startAll starts the replicas ids at once and waits until each answers status.
func (c *cluster) startAll(ids ...int) {
	c.t.Helper()
	for _, id := range ids {
		c.startNoWait(id)
	}
	for _, id := range ids {
		c.waitServing(id)
	}
}

// reconfigureAt sends one reconfigure call to the replica at addr on a new
// connection. sent reports whether the connection opened, so that the call may
// have reached the replica.
func reconfigureAt(addr string, members []*kvapi.ReplicaAddress) (res *kvapi.ReconfigureResult_, sent bool, err error) {
	kv, err := dialKV(addr)
	if err != nil {
		return nil, false, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err = kv.Reconfigure(ctx, members)
	return res, true, err
}

// reconfigure asks the cluster for the members ids: it sends the call to
// replica via first and follows NotLeader (to the next running replica when no
// leader is named) for up to reconfigTimeout. Any other answer ends it: the
// change may or may not have been made, and the caller decides what to expect.
func (c *cluster) reconfigure(via int, ids []int) (*kvapi.ReconfigureResult_, error) {
	members := c.addresses(ids)
	deadline := time.Now().Add(reconfigTimeout)
	target := via
	var lastErr error
	for time.Now().Before(deadline) {
		res, sent, err := reconfigureAt(c.rep(target).clientAddr, members)
		var nl *kvapi.NotLeader
		switch {
		case err == nil:
			return res, nil
		case errors.As(err, &nl):
			lastErr = fmt.Errorf("replica %d: %w", target, err)
			if id := c.idAt(nl.LeaderAddr); id != 0 && id != target && c.rep(id).running() {
				target = id
			} else {
				target = c.nextRunning(target)
			}
		case !sent:
			lastErr = fmt.Errorf("replica %d: %w", target, err)
			target = c.nextRunning(target)
		default:
			return nil, fmt.Errorf("reconfigure to %v at replica %d: %w", ids, target, err)
		}
		// Pace the attempts while an election runs.
		<-time.After(25 * time.Millisecond)
	}
	return nil, fmt.Errorf("reconfigure to %v: no leader took it within %s; last: %v", ids, reconfigTimeout, lastErr)
}

// mustReconfigure changes the members to ids and fails the test unless the
// change was made, as epoch want, and the answer lists ids and names a slot.
func (c *cluster) mustReconfigure(via int, ids []int, want int64) *kvapi.ReconfigureResult_ {
	c.t.Helper()
	begin := time.Now()
	res, err := c.reconfigure(via, ids)
	if err != nil {
		c.t.Fatal(err)
	}
	if got := memberIDs(res.Members); res.Epoch != want || !slices.Equal(got, sortedIDs(ids)) || res.Slot <= 0 {
		c.t.Fatalf("reconfigure to %v returned epoch %d, members %v, slot %d; want epoch %d, those members and the change's slot",
			ids, res.Epoch, got, res.Slot, want)
	}
	c.t.Logf("reconfigure to %v: epoch %d, chosen at slot %d, in %s", ids, res.Epoch, res.Slot, time.Since(begin).Round(time.Millisecond))
	return res
}

// memberIDs returns the ids a reconfigure answer lists, in order.
func memberIDs(list []*kvapi.ReplicaAddress) []int {
	out := make([]int, 0, len(list))
	for _, m := range list {
		out = append(out, int(m.ID))
	}
	slices.Sort(out)
	return out
}

// statusIDs returns the member ids a status lists, in order.
func statusIDs(list []int64) []int {
	out := make([]int, 0, len(list))
	for _, id := range list {
		out = append(out, int(id))
	}
	slices.Sort(out)
	return out
}

func sortedIDs(ids []int) []int {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// configError says how a replica's status differs from following configuration
// epoch with members (ids and the addresses they were laid out with), and voting
// exactly when it is one of them.
func (c *cluster) configError(st *kvapi.ReplicaStatus, epoch int64, members []int) error {
	got := statusIDs(st.Members)
	member := slices.Contains(members, int(st.ID))
	if st.ConfigEpoch != epoch || !slices.Equal(got, sortedIDs(members)) || st.Member != member {
		return fmt.Errorf("replica %d: config_epoch %d, members %v, member %v; want %d, %v, %v",
			st.ID, st.ConfigEpoch, got, st.Member, epoch, sortedIDs(members), member)
	}
	want := c.addresses(sortedIDs(members))
	addrs := slices.Clone(st.MemberAddresses)
	slices.SortFunc(addrs, func(a, b *kvapi.ReplicaAddress) int { return int(a.ID - b.ID) })
	if !slices.EqualFunc(addrs, want, func(a, b *kvapi.ReplicaAddress) bool { return *a == *b }) {
		return fmt.Errorf("replica %d: member_addresses %v; want %v", st.ID, addrs, want)
	}
	return nil
}

// waitConfig waits until each replica ids reports configuration epoch with the
// members, and itself as a member exactly when it is one.
func (c *cluster) waitConfig(timeout time.Duration, epoch int64, members []int, ids ...int) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("replicas %v to follow configuration %d with members %v", ids, epoch, members), func() error {
		for _, id := range ids {
			st, err := rawStatus(c.rep(id).clientAddr)
			if err != nil {
				return fmt.Errorf("replica %d: %w", id, err)
			}
			if err := c.configError(st, epoch, members); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitJoined waits until replica id is a member and has applied the change
// that made it one (slot).
func (c *cluster) waitJoined(id int, slot int64) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("replica %d to vote and apply slot %d", id, slot), func() error {
		st, err := rawStatus(c.rep(id).clientAddr)
		if err != nil {
			return err
		}
		if !st.Member || st.Applied < slot {
			return fmt.Errorf("member %v, applied %d, epoch %d", st.Member, st.Applied, st.ConfigEpoch)
		}
		return nil
	})
}

// claimedLeader returns the one running member of members that says it leads
// and that a majority of members names as leader.
func (c *cluster) claimedLeader(members []int) (int, error) {
	var claims []int
	votes := make(map[int64]int)
	for _, id := range members {
		if !c.rep(id).running() {
			continue
		}
		st, err := rawStatus(c.rep(id).clientAddr)
		if err != nil {
			continue
		}
		if st.IsLeader && st.Member {
			claims = append(claims, id)
		}
		votes[st.LeaderID]++
	}
	if len(claims) != 1 {
		return 0, fmt.Errorf("members of %v claiming to lead: %v", members, claims)
	}
	if v := votes[int64(claims[0])]; v <= len(members)/2 {
		return 0, fmt.Errorf("only %d of members %v name %d as leader", v, members, claims[0])
	}
	return claims[0], nil
}

// waitMemberLeader waits for a leader among members (see claimedLeader).
func (c *cluster) waitMemberLeader(members []int) int {
	c.t.Helper()
	leader := 0
	waitFor(c.t, 20*time.Second, fmt.Sprintf("a leader among members %v", members), func() error {
		var err error
		leader, err = c.claimedLeader(members)
		return err
	})
	return leader
}

// checkRetired checks that replica id, no longer a member, neither leads nor
// votes, and refuses a write and a linearizable read with NotLeader naming a
// member of the configuration that removed it (the last it knows), and that
// following such hints from replica to replica reaches a member of members, the
// configuration in force.
func (c *cluster) checkRetired(id int, members []int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at := id
	var path []int
	for !slices.Contains(members, at) {
		path = append(path, at)
		if len(path) > len(c.reps) {
			c.t.Errorf("NotLeader hints from removed replica %d go round in circles: %v", id, path)
			return
		}
		// It learns of its removal once the members tell it, or it asks them.
		var st *kvapi.ReplicaStatus
		waitFor(c.t, 15*time.Second, fmt.Sprintf("removed replica %d to stop voting", at), func() error {
			var err error
			if st, err = rawStatus(c.rep(at).clientAddr); err != nil {
				return err
			}
			if st.Member || st.IsLeader {
				return fmt.Errorf("member=%v, leader=%v, config_epoch %d", st.Member, st.IsLeader, st.ConfigEpoch)
			}
			return nil
		})
		known := statusIDs(st.Members)
		kv := mustDialKV(c.t, c.rep(at).clientAddr)
		var next int
		check := func(what string, err error) {
			var nl *kvapi.NotLeader
			if !errors.As(err, &nl) {
				c.t.Errorf("%s at removed replica %d: %v, want NotLeader", what, at, err)
				return
			}
			to := c.idAt(nl.LeaderAddr)
			if !slices.Contains(known, to) || to == at {
				c.t.Errorf("%s at removed replica %d: NotLeader sends the client to %q (replica %d), not to a member of its last configuration %v",
					what, at, nl.LeaderAddr, to, known)
			}
			next = to
		}
		_, err := kv.Put(ctx, time.Now().UnixNano()&(1<<62-1)+1, 1, "retired/put", []byte("x"))
		check("put", err)
		_, err = kv.Get(ctx, "k1", kvapi.Consistency_LINEARIZABLE)
		check("linearizable get", err)
		if next == 0 || !c.rep(next).running() {
			c.t.Errorf("NotLeader hints from removed replica %d lead to replica %d, which does not run (path %v)", id, next, path)
			return
		}
		at = next
	}
	if len(path) > 1 {
		c.t.Logf("NotLeader hints from removed replica %d reach member %d through removed replicas %v", id, at, path)
	}
}

// rawDigest asks the replica at addr for its digest on a new connection.
func rawDigest(addr string) (*kvapi.Digest, error) {
	kv, err := dialKV(addr)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return kv.Digest(ctx)
}

// waitSameDigest waits until the replicas ids report their digests at one
// applied slot, and returns it. Two of them with different digests at the same
// slot fail the test at once.
func (c *cluster) waitSameDigest(ids []int) *kvapi.Digest {
	c.t.Helper()
	var got *kvapi.Digest
	waitFor(c.t, 30*time.Second, fmt.Sprintf("replicas %v to apply one slot", ids), func() error {
		first := make(map[int64]int) // applied slot -> first replica seen there
		ds := make(map[int]*kvapi.Digest)
		for _, id := range ids {
			d, err := rawDigest(c.rep(id).clientAddr)
			if err != nil {
				return fmt.Errorf("digest of replica %d: %w", id, err)
			}
			ds[id] = d
			if other, ok := first[d.Applied]; ok {
				if o := ds[other]; o.Keys != d.Keys || !bytes.Equal(o.Sha256, d.Sha256) {
					c.t.Fatalf("at applied slot %d replica %d holds %d keys, sha256 %x; replica %d %d keys, sha256 %x",
						d.Applied, other, o.Keys, o.Sha256, id, d.Keys, d.Sha256)
				}
			} else {
				first[d.Applied] = id
			}
		}
		if len(first) > 1 {
			applied := make(map[int]int64)
			for id, d := range ds {
				applied[id] = d.Applied
			}
			return fmt.Errorf("applied slots %v", applied)
		}
		got = ds[ids[0]]
		return nil
	})
	return got
}

// loadLimit bounds a checked load, should a test forget to stop it.
const loadLimit = 90 * time.Second

// checkedLoad is the clients of a membership test: package chaos's workload
// (gets, puts and deletes of five keys by raw Thrift clients that follow
// NotLeader and retry unknown writes with the same client id and seq, recorded
// for porcupine), and writers of distinct keys through the Go client, each
// acknowledged key of which is read back at the end. Both know every replica
// laid out when it starts, members or not.
type checkedLoad struct {
	c    *cluster
	h    *chaos.History
	keys []string
	seed uint64

	cancel context.CancelFunc
	done   chan chaos.WorkloadStats
	uniq   *writers
	cl     *client.Client

	stopped bool
	stats   chaos.WorkloadStats
}

func startCheckedLoad(c *cluster) *checkedLoad {
	c.t.Helper()
	l := &checkedLoad{
		c:    c,
		h:    chaos.NewHistory(),
		keys: []string{"k1", "k2", "k3", "k4", "k5"},
		seed: uint64(time.Now().UnixNano()),
		done: make(chan chaos.WorkloadStats, 1),
	}
	cfg := chaos.WorkloadConfig{
		Clients: 6,
		Keys:    l.keys,
		// Retry an unknown write until it is answered (8 s): every write the
		// history holds then has a known outcome unless a change lost it.
		GiveUp: -1,
		TLS:    c.tls.clientConfig(),
	}
	addrs := c.clientAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), loadLimit)
	l.cancel = cancel
	go func() { l.done <- chaos.RunWorkload(ctx, cfg, l.seed, addrs, l.h) }()
	cl, err := client.New(client.Config{Endpoints: addrs, Timeout: 10 * time.Second, TLS: c.tls.clientConfig()})
	if err != nil {
		c.t.Fatal(err)
	}
	l.cl = cl
	l.uniq = startWriters(cl, "uniq", 2, 1_000_000, loadLimit)
	c.t.Cleanup(func() {
		l.stop()
		l.uniq.stop()
		cl.Close()
	})
	c.t.Logf("workload seed %d on replicas %v", l.seed, c.ids())
	return l
}

// stop ends the workload and waits for its clients, at most one write budget.
func (l *checkedLoad) stop() chaos.WorkloadStats {
	if !l.stopped {
		l.stopped = true
		l.cancel()
		l.stats = <-l.done
	}
	return l.stats
}

// acked counts the writes acknowledged so far.
func (l *checkedLoad) acked() int {
	n := 0
	for _, op := range l.h.Ops() {
		if op.Input.(chaos.Input).Kind != chaos.OpGet && !op.Output.(chaos.Output).Unknown {
			n++
		}
	}
	return n
}

// waitProgress waits until the workload has n more writes acknowledged, and the
// writers of distinct keys n/10 more.
func (l *checkedLoad) waitProgress(n int) {
	l.c.t.Helper()
	from, fromUniq := l.acked(), l.uniq.ackedCount()
	waitFor(l.c.t, 30*time.Second, fmt.Sprintf("%d more acknowledged writes", n), func() error {
		if got, uniq := l.acked()-from, l.uniq.ackedCount()-fromUniq; got < n || uniq < n/10 {
			return fmt.Errorf("%d more by the workload, %d more distinct keys", got, uniq)
		}
		return nil
	})
}

// check stops the clients and checks what they saw against the cluster whose
// members are members: no client error outside the IDL, a linearizable history
// (final linearizable reads of every key included) with no acknowledged write
// lost, every acknowledged distinct key readable, and the members holding the
// same data at the same slot. It returns the history.
func (l *checkedLoad) check(members []int) []porcupine.Operation {
	t := l.c.t
	t.Helper()
	stats := l.stop()
	uniqAcked, uniqFailed, _ := l.uniq.stop()
	for _, e := range stats.Errors {
		t.Errorf("workload: %s", e)
	}
	for i, err := range uniqFailed {
		if i == 5 {
			t.Errorf("... %d failed puts of distinct keys in all", len(uniqFailed))
			break
		}
		t.Errorf("writer of distinct keys: %v", err)
	}

	final := l.finalReads(members)
	ops := l.h.Ops()
	counts := chaos.CountOps(ops)
	lost, detail := chaos.LostWrites(ops, final)
	verdict, info := porcupine.CheckOperationsVerbose(chaos.KVModel, ops, time.Minute)
	if verdict != porcupine.Ok || lost > 0 {
		l.keepHistory(ops, info)
	}
	if verdict != porcupine.Ok {
		t.Errorf("porcupine: the history of %d operations is %s, not linearizable", len(ops), verdict)
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost: %v", lost, detail)
	}
	readBack := l.readBack(members, uniqAcked)
	d := l.c.waitSameDigest(members)
	t.Logf("workload: %d gets, %d writes acknowledged, %d unknown (%d retries, %d gets dropped, %d writes refused by all); "+
		"porcupine %s; %d distinct keys acknowledged, %d read back; members %v at slot %d hold %d keys",
		counts.Reads, counts.Writes, counts.Unknown, stats.Retries, stats.ReadsDropped, stats.WritesNotProposed,
		verdict, len(uniqAcked), readBack, members, d.Applied, d.Keys)
	return ops
}

// finalReads reads every key of the workload linearizably from the leader of
// members, adding the reads to the history.
func (l *checkedLoad) finalReads(members []int) map[string]chaos.Output {
	session := l.h.NewSession()
	final := make(map[string]chaos.Output)
	for _, key := range l.keys {
		waitFor(l.c.t, 20*time.Second, "a linearizable read of "+key, func() error {
			leader, err := l.c.claimedLeader(members)
			if err != nil {
				return err
			}
			kv, err := dialKV(l.c.rep(leader).clientAddr)
			if err != nil {
				return err
			}
			defer kv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			call := l.h.Now()
			r, err := kv.Get(ctx, key, kvapi.Consistency_LINEARIZABLE)
			ret := l.h.Now()
			out := chaos.Output{Replica: leader}
			var nf *kvapi.NotFound
			switch {
			case err == nil:
				out.Found, out.Value = true, string(r.Value)
			case errors.As(err, &nf):
			default:
				return fmt.Errorf("get %s at replica %d: %w", key, leader, err)
			}
			l.h.Add(porcupine.Operation{ClientId: session, Input: chaos.Input{Kind: chaos.OpGet, Key: key},
				Call: call, Output: out, Return: ret})
			final[key] = out
			return nil
		})
	}
	return final
}

// readBack reads every acknowledged distinct key linearizably, eight at a time,
// and returns how many held their value.
func (l *checkedLoad) readBack(members []int, keys []string) int {
	cl, err := client.New(client.Config{Endpoints: l.c.clientAddrs(members...), Timeout: 10 * time.Second, TLS: l.c.tls.clientConfig()})
	if err != nil {
		l.c.t.Fatal(err)
	}
	defer cl.Close()
	var (
		mu   sync.Mutex // guards ok and bad
		ok   int
		bad  []string
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range next {
				v, err := cl.Get(context.Background(), key)
				mu.Lock()
				if err != nil || string(v) != key {
					bad = append(bad, fmt.Sprintf("%s: %q, %v", key, v, err))
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	if len(bad) > 0 {
		l.c.t.Errorf("%d of %d acknowledged distinct keys do not read back their value; first: %v",
			len(bad), len(keys), bad[:min(5, len(bad))])
	}
	return ok
}

// keepHistory writes the history and porcupine's visualisation beside the kept
// logs.
func (l *checkedLoad) keepHistory(ops []porcupine.Operation, info porcupine.LinearizationInfo) {
	dir, err := l.c.keptDir()
	if err != nil {
		l.c.t.Logf("keeping the history: %v", err)
		return
	}
	var b bytes.Buffer
	chaos.WriteHistory(&b, ops)
	os.WriteFile(filepath.Join(dir, "history.txt"), b.Bytes(), 0o644)
	porcupine.VisualizePath(chaos.KVModel, info, filepath.Join(dir, "history.html"))
	l.c.t.Logf("history (seed %d) kept in %s", l.seed, dir)
}

// longestWriteGap returns the longest time between two consecutive
// acknowledgements of writes in ops, and when (history time) it began.
func longestWriteGap(ops []porcupine.Operation) (time.Duration, int64) {
	var acks []int64
	for _, op := range ops {
		if op.Input.(chaos.Input).Kind != chaos.OpGet && !op.Output.(chaos.Output).Unknown {
			acks = append(acks, op.Return)
		}
	}
	slices.Sort(acks)
	var gap, at int64
	for i := 1; i < len(acks); i++ {
		if d := acks[i] - acks[i-1]; d > gap {
			gap, at = d, acks[i-1]
		}
	}
	return time.Duration(gap), at
}

// TestReconfigGrow grows three replicas to five, one member at a time, while
// clients run: two replicas started from a file listing five wait idle until a
// change adds them; each change returns the next epoch; all five end as members
// of epoch 3 holding the same data, and the clients' history is linearizable
// with no acknowledged write lost.
func TestReconfigGrow(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	joining := []int{c.addReplica(), c.addReplica()}
	c.writeReplicasFile()
	c.startAll(joining...)
	for _, id := range joining {
		st, err := rawStatus(c.rep(id).clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Member || st.IsLeader {
			t.Errorf("replica %d, started from a file listing it but in no configuration, reports member=%v leader=%v",
				id, st.Member, st.IsLeader)
		}
	}
	c.waitConfig(5*time.Second, 1, []int{1, 2, 3}, 1, 2, 3)

	load := startCheckedLoad(c)
	load.waitProgress(200)
	members := []int{1, 2, 3}
	for i, id := range joining {
		members = append(members, id)
		res := c.mustReconfigure(leader, members, int64(2+i))
		c.waitJoined(id, res.Slot)
		load.waitProgress(200)
	}
	c.waitConfig(20*time.Second, 3, members, c.ids()...)
	load.check(members)
}

// TestReconfigRemoveLeader shrinks five replicas to three in one change that
// removes the leader (and one follower), asked of the leader itself, while
// clients run. The removed replicas must stop leading and voting and send
// clients to the members; writes pause no longer than a failover.
func TestReconfigRemoveLeader(t *testing.T) {
	const maxGap = 3 * time.Second
	c := newCluster(t, 5)
	leader := c.waitLeader()
	removed := []int{leader, others(c.ids(), leader)[0]}
	keep := others(c.ids(), removed...)

	load := startCheckedLoad(c)
	load.waitProgress(200)
	call := load.h.Now()
	res := c.mustReconfigure(leader, keep, 2)
	c.waitConfig(15*time.Second, 2, keep, c.ids()...)
	next := c.waitMemberLeader(keep)
	load.waitProgress(200)
	for _, id := range removed {
		c.checkRetired(id, keep)
	}
	ops := load.check(keep)

	gap, at := longestWriteGap(ops)
	t.Logf("leader %d removed with replica %d at slot %d; replica %d leads %v; longest time between acknowledged writes %s, from %s after the reconfigure call",
		leader, removed[1], res.Slot, next, keep, gap.Round(time.Millisecond), time.Duration(at-call).Round(time.Millisecond))
	if gap > maxGap {
		t.Errorf("writes stopped for %s around the change, want under %s (no longer than a failover)", gap.Round(time.Millisecond), maxGap)
	}
}

// TestReconfigReplace replaces a member by a new replica on new ports (add the
// new one, then remove the old), then the other two original members the same
// way, while clients run; then stops the original three: the new members serve
// alone.
func TestReconfigReplace(t *testing.T) {
	c := newCluster(t, 3)
	c.waitLeader()
	originals := c.ids()
	fresh := []int{c.addReplica(), c.addReplica(), c.addReplica()}
	c.writeReplicasFile()
	c.startAll(fresh...)

	load := startCheckedLoad(c)
	load.waitProgress(200)
	members := slices.Clone(originals)
	epoch := int64(1)
	for i, old := range originals {
		add := fresh[i]
		members = append(members, add)
		epoch++
		res := c.mustReconfigure(members[0], members, epoch)
		c.waitJoined(add, res.Slot)
		load.waitProgress(100)

		members = others(members, old)
		epoch++
		c.mustReconfigure(members[0], members, epoch)
		c.waitConfig(15*time.Second, epoch, members, old)
		c.checkRetired(old, members)
		load.waitProgress(100)
	}
	// A removed replica is told of no later change: it stays in the
	// configuration that removed it, as checked above.
	c.waitConfig(20*time.Second, epoch, members, members...)
	for _, id := range originals {
		c.kill(id)
	}
	load.waitProgress(200)
	load.check(members)
}

// cliStep is one object of `ballot reconfigure --json`.
type cliStep struct {
	Action  string `json:"action"`
	ID      int    `json:"id"`
	Members []int  `json:"members"`
	Epoch   int64  `json:"epoch"`
	Slot    int64  `json:"slot"`
}

// cliReconfigure runs `ballot reconfigure --json` with the replicas file and
// checks that it made the steps want ("add 4", "remove 1", in order), each
// committing the next epoch after from.
func (c *cluster) cliReconfigure(from int64, want ...string) []cliStep {
	c.t.Helper()
	res := c.ballot("reconfigure", "--json")
	if res.code != 0 {
		c.t.Fatalf("ballot reconfigure: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	var steps []cliStep
	if err := json.Unmarshal([]byte(res.stdout), &steps); err != nil {
		c.t.Fatalf("ballot reconfigure --json: %v\nstdout: %s\nstderr: %s", err, res.stdout, res.stderr)
	}
	var got []string
	for i, st := range steps {
		got = append(got, fmt.Sprintf("%s %d", st.Action, st.ID))
		if st.Epoch != from+int64(i)+1 || st.Slot <= 0 {
			c.t.Errorf("ballot reconfigure step %d (%s %d): epoch %d, slot %d; want epoch %d and a slot",
				i+1, st.Action, st.ID, st.Epoch, st.Slot, from+int64(i)+1)
		}
	}
	if !slices.Equal(got, want) {
		c.t.Fatalf("ballot reconfigure made the steps %q, want %q\nstderr: %s", got, want, res.stderr)
	}
	c.t.Logf("ballot reconfigure: %q in %s", got, res.took.Round(time.Millisecond))
	return steps
}

// TestReconfigureCLI changes the members as an operator does: edit the replicas
// file, start the replicas it adds, run ballot reconfigure. It grows three
// replicas to five, then drops two of the original three, the leader among
// them, with only the new file to go by (the dropped members' addresses come
// from the committed configuration), while clients run; a third run, with
// nothing to change, changes nothing.
func TestReconfigureCLI(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	joining := []int{c.addReplica(), c.addReplica()}
	c.writeReplicasFile()
	c.startAll(joining...)

	load := startCheckedLoad(c)
	load.waitProgress(200)
	c.cliReconfigure(1, fmt.Sprintf("add %d", joining[0]), fmt.Sprintf("add %d", joining[1]))
	c.waitConfig(20*time.Second, 3, c.ids(), c.ids()...)
	load.waitProgress(200)

	drop := []int{leader, others([]int{1, 2, 3}, leader)[0]}
	keep := others(c.ids(), drop...)
	c.writeReplicasFile(keep...)
	steps := c.cliReconfigure(3, fmt.Sprintf("remove %d", min(drop[0], drop[1])), fmt.Sprintf("remove %d", max(drop[0], drop[1])))
	c.waitConfig(20*time.Second, 5, keep, keep...)
	for _, id := range drop {
		c.checkRetired(id, steps[len(steps)-1].Members)
	}
	load.waitProgress(200)

	res := c.ballot("reconfigure")
	if res.code != 0 || !strings.Contains(res.stdout, "nothing to change") {
		t.Errorf("ballot reconfigure with nothing to change: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	c.waitConfig(time.Second, 5, keep, keep...)
	load.check(keep)
}

// TestReconfigFollowersApplyChangeFromLog checks how a change reaches the
// members it keeps: each follower applies the change's log entry and goes on in
// the new configuration from the next slot, without fetching a snapshot of the
// whole store; and the leader, which campaigns at once in the new
// configuration, takes writes again sooner than an election timeout (the
// default 10 ticks of 15 ms).
func TestReconfigFollowersApplyChangeFromLog(t *testing.T) {
	const electionTimeout = 150 * time.Millisecond
	c := newCluster(t, 3)
	leader := c.waitLeader()
	cl := c.client(5 * time.Second)
	ctx := context.Background()
	for i := range 500 {
		if _, err := cl.Put(ctx, fmt.Sprintf("fill/%03d", i), bytes.Repeat([]byte("x"), 100)); err != nil {
			t.Fatal(err)
		}
	}
	added := c.addReplica()
	c.writeReplicasFile()
	c.start(added)
	target := []int{1, 2, 3, added}
	followers := others([]int{1, 2, 3}, leader)
	installs := make(map[int]int)
	for _, id := range followers {
		installs[id] = len(c.logLines(id, "snapshot installed"))
	}

	begin := time.Now()
	res := c.mustReconfigure(leader, target, 2)
	if _, err := cl.Put(ctx, "after-change", []byte("1")); err != nil {
		t.Fatal(err)
	}
	firstWrite := time.Since(begin)
	c.waitConfig(10*time.Second, 2, target, target...)
	t.Logf("first write acknowledged %s after the reconfigure call (change at slot %d)", firstWrite.Round(time.Millisecond), res.Slot)
	for _, id := range followers {
		if lines := c.logLines(id, "snapshot installed")[installs[id]:]; len(lines) > 0 {
			t.Errorf("follower %d installed %d snapshot(s) to follow the change at slot %d instead of applying it from its log: %s",
				id, len(lines), res.Slot, lines[0])
		}
	}
	if firstWrite > electionTimeout {
		t.Errorf("the first write after the change took %s, longer than an election timeout (%s): the leader's campaign at once did not lead the new configuration",
			firstWrite.Round(time.Millisecond), electionTimeout)
	}
}

// TestSplitBrainTrap edits the replicas file of a running three-replica cluster
// to list five and starts the two new replicas, without a change. With two of the
// three paused, the third and the new two are three of the five the file lists,
// but not a majority of any configuration: none of them may lead or take a
// write. Once the two resume, the cluster works with its three members, epoch 1.
func TestSplitBrainTrap(t *testing.T) {
	const trap = 3 * time.Second
	c := newCluster(t, 3)
	leader := c.waitLeader()
	newcomers := []int{c.addReplica(), c.addReplica()}
	c.writeReplicasFile()
	c.startAll(newcomers...)
	survivor := others([]int{1, 2, 3}, leader)[0]
	paused := others([]int{1, 2, 3}, survivor)
	for _, id := range paused {
		c.pause(id)
	}
	live := append([]int{survivor}, newcomers...)

	// Every poll asks each live replica for its status and sends it a write.
	tally := make(map[string]int)
	var notProposed []string
	seq := int64(0)
	clientID := time.Now().UnixNano()&(1<<62-1) + 1
	end := time.Now().Add(trap)
	for time.Now().Before(end) {
		for _, id := range live {
			if st, err := rawStatus(c.rep(id).clientAddr); err == nil && (st.IsLeader || (st.Member && id != survivor)) {
				t.Errorf("replica %d reports leader=%v member=%v (leader id %d, epoch %d) with replicas %v paused",
					id, st.IsLeader, st.Member, st.LeaderID, st.ConfigEpoch, paused)
			}
			seq++
			key := fmt.Sprintf("trap/%d/%d", id, seq)
			err := trapPut(c.rep(id).clientAddr, clientID, seq, key)
			var nl *kvapi.NotLeader
			var ua *kvapi.Unavailable
			switch {
			case err == nil:
				t.Errorf("put %s at replica %d succeeded with replicas %v paused: a minority of the configuration took a write", key, id, paused)
				tally["acknowledged"]++
			case errors.As(err, &nl):
				tally["NotLeader"]++
				notProposed = append(notProposed, key)
			case errors.As(err, &ua):
				tally["Unavailable"]++
			default:
				tally["other: "+err.Error()]++
			}
			// Each write gets its own client id: an unanswered one may be in flight.
			clientID++
		}
		<-time.After(50 * time.Millisecond)
	}
	t.Logf("with replicas %v paused, %s of polling replicas %v: writes answered %v", paused, trap, live, tally)
	if tally["NotLeader"]+tally["Unavailable"] == 0 {
		t.Errorf("no write was refused with NotLeader or Unavailable: %v", tally)
	}

	for _, id := range paused {
		c.resume(id)
	}
	c.waitMemberLeader([]int{1, 2, 3})
	cl := c.client(10*time.Second, 1, 2, 3)
	ctx := context.Background()
	if _, err := cl.Put(ctx, "after-trap", []byte("1")); err != nil {
		t.Fatalf("put after resuming replicas %v: %v", paused, err)
	}
	c.waitConfig(10*time.Second, 1, []int{1, 2, 3}, 1, 2, 3)
	for _, id := range newcomers {
		st, err := rawStatus(c.rep(id).clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Member || st.IsLeader || st.ConfigEpoch > 1 {
			t.Errorf("replica %d after the trap: member=%v leader=%v config_epoch=%d; want no member, epoch 1 untouched",
				id, st.Member, st.IsLeader, st.ConfigEpoch)
		}
	}
	// A write refused with NotLeader was not proposed: it never takes effect.
	for _, key := range notProposed {
		if v, err := cl.Get(ctx, key); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("get %s, a put refused with NotLeader during the trap: %q, %v; want not found", key, v, err)
		}
	}
	c.waitSameDigest([]int{1, 2, 3})
}

// trapPut sends one put on a new connection whose calls time out after a
// second, so that a poll stays short.
func trapPut(addr string, clientID, seq int64, key string) error {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: time.Second}
	sock, err := openKVSocket(addr, cfg, envTLS.clientConfig())
	if err != nil {
		return err
	}
	defer sock.Close()
	trans := thrift.NewTFramedTransportConf(sock, cfg)
	proto := thrift.NewTBinaryProtocolConf(trans, cfg)
	kv := kvapi.NewKVClient(thrift.NewTStandardClient(proto, proto))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = kv.Put(ctx, clientID, seq, key, []byte("trap"))
	return err
}

// sentSignal is a transport that closes sent once its first message has been
// written to the socket.
type sentSignal struct {
	thrift.TTransport
	once sync.Once
	sent chan struct{}
}

func (s *sentSignal) Flush(ctx context.Context) error {
	err := s.TTransport.Flush(ctx)
	s.once.Do(func() { close(s.sent) })
	return err
}

// dialKVSignalled is dialKV whose connection says when its first request is sent.
func dialKVSignalled(t *testing.T, addr string) (*kvapi.KVClient, <-chan struct{}) {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 5 * time.Second}
	sock, err := openKVSocket(addr, cfg, envTLS.clientConfig())
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { sock.Close() })
	sig := &sentSignal{TTransport: sock, sent: make(chan struct{})}
	trans := thrift.NewTFramedTransportConf(sig, cfg)
	proto := thrift.NewTBinaryProtocolConf(trans, cfg)
	return kvapi.NewKVClient(thrift.NewTStandardClient(proto, proto)), sig.sent
}

// TestReconfigLeaderKilledMidChange kills the leader with SIGKILL while it
// handles a change from three replicas to four: as soon as the request is
// sent, and once it has proposed the change while both followers were paused
// (their kernels queue its accept requests, which they take up only when they
// resume, after the leader is gone). The survivors must end wholly in the old
// or wholly in the new configuration and take writes; asking again for the new
// members completes; the killed leader rejoins.
func TestReconfigLeaderKilledMidChange(t *testing.T) {
	t.Run("killed-once-sent", func(t *testing.T) { leaderKilledMidChange(t, false) })
	t.Run("killed-after-proposing-to-paused-followers", func(t *testing.T) { leaderKilledMidChange(t, true) })
}

func leaderKilledMidChange(t *testing.T, isolate bool) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ctx := context.Background()
	if _, err := c.client(10*time.Second).Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	added := c.addReplica()
	c.writeReplicasFile()
	c.start(added)
	target := []int{1, 2, 3, added}
	followers := others([]int{1, 2, 3}, leader)
	survivors := append(slices.Clone(followers), added)

	if isolate {
		for _, id := range followers {
			c.pause(id)
		}
	}
	kv, sent := dialKVSignalled(t, c.rep(leader).clientAddr)
	type answer struct {
		res *kvapi.ReconfigureResult_
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := kv.Reconfigure(callCtx, c.addresses(target))
		answered <- answer{res, err}
	}()
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Fatal("the reconfigure request was not sent within 5s")
	}
	if isolate {
		c.waitLog(leader, 5*time.Second, "configuration change proposed", 0)
	}
	c.kill(leader)
	var got answer
	select {
	case got = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the reconfigure call to the killed leader did not end within 10s")
	}
	if isolate {
		for _, id := range followers {
			c.resume(id)
		}
	}
	t.Logf("leader %d killed; its reconfigure call returned %+v, %v", leader, got.res, got.err)
	if got.err == nil && isolate {
		t.Errorf("the change was acknowledged (%+v) while both followers were paused", got.res)
	}

	// Never stuck: the survivors take a write.
	if _, err := c.client(20*time.Second, survivors...).Put(ctx, "after-kill", []byte("2")); err != nil {
		t.Fatalf("put through the survivors %v: %v", survivors, err)
	}
	// Wholly in one configuration: the old one, with the added replica still
	// waiting outside any, or the new one with the added replica voting.
	var epoch int64
	waitFor(t, 20*time.Second, "the survivors to agree on a configuration", func() error {
		sts := make(map[int]*kvapi.ReplicaStatus)
		for _, id := range survivors {
			st, err := rawStatus(c.rep(id).clientAddr)
			if err != nil {
				return err
			}
			sts[id] = st
		}
		e := sts[followers[0]].ConfigEpoch
		switch e {
		case 1:
			for _, id := range followers {
				if err := c.configError(sts[id], 1, []int{1, 2, 3}); err != nil {
					return err
				}
			}
			if st := sts[added]; st.Member || st.IsLeader || st.ConfigEpoch > 1 {
				return fmt.Errorf("replica %d: member=%v leader=%v config_epoch=%d while the others are in configuration 1",
					added, st.Member, st.IsLeader, st.ConfigEpoch)
			}
		case 2:
			for _, id := range survivors {
				if err := c.configError(sts[id], 2, target); err != nil {
					return err
				}
			}
		default:
			t.Fatalf("replica %d is in configuration %d after one change was asked for", followers[0], e)
		}
		epoch = e
		return nil
	})
	t.Logf("the survivors %v settled in configuration %d", survivors, epoch)
	if got.err == nil && epoch != 2 {
		t.Errorf("the call returned epoch %d but the survivors are in configuration %d", got.res.Epoch, epoch)
	}

	// Asking again completes, as a change, or as the change already made.
	res, err := c.reconfigure(followers[0], target)
	if err != nil {
		t.Fatal(err)
	}
	if res.Epoch != 2 || !slices.Equal(memberIDs(res.Members), target) || (res.Slot == 0) != (epoch == 2) {
		t.Fatalf("reconfigure to %v again returned epoch %d, members %v, slot %d; want epoch 2 and a slot only if the survivors were in epoch 1",
			target, res.Epoch, memberIDs(res.Members), res.Slot)
	}
	c.waitConfig(20*time.Second, 2, target, survivors...)

	c.start(leader)
	c.waitConfig(20*time.Second, 2, target, target...)
	cl := c.client(10 * time.Second)
	if _, err := cl.Put(ctx, "after-rejoin", []byte("3")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"before": "1", "after-kill": "2", "after-rejoin": "3"} {
		if v, err := cl.Get(ctx, key); err != nil || string(v) != want {
			t.Errorf("get %s: %q, %v; want %q", key, v, err, want)
		}
	}
	d := c.waitSameDigest(target)
	if d.Keys != 3 {
		t.Errorf("replicas %v hold %d keys, want 3", target, d.Keys)
	}
}

// TestReconfigureBadInput sends lists a change must refuse: each is refused with
// InvalidArgument and nothing changes. Asking for the current members, in any
// order, returns the current epoch and changes nothing; a follower sends the
// caller to the leader.
func TestReconfigureBadInput(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	c.waitCaughtUp(10*time.Second, 0)
	before, err := rawStatus(c.rep(leader).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	spare := func(id int64) *kvapi.ReplicaAddress {
		return &kvapi.ReplicaAddress{ID: id, ClientAddr: freeAddr(t), PeerAddr: freeAddr(t)}
	}
	a1, a2, a3 := c.address(1), c.address(2), c.address(3)
	dupClient := spare(4)
	dupClient.ClientAddr = a3.ClientAddr
	dupPeer := spare(4)
	dupPeer.PeerAddr = a2.PeerAddr
	crossed := spare(4)
	crossed.ClientAddr = a1.PeerAddr
	sameOwn := spare(4)
	sameOwn.PeerAddr = sameOwn.ClientAddr
	noPeer := spare(4)
	noPeer.PeerAddr = ""
	tooMany := []*kvapi.ReplicaAddress{a1, a2, a3}
	for id := int64(4); id <= 65; id++ {
		tooMany = append(tooMany, spare(id))
	}
	cases := []struct {
		name    string
		members []*kvapi.ReplicaAddress
	}{
		{"no members", nil},
		{"an empty list", []*kvapi.ReplicaAddress{}},
		{"an id twice", []*kvapi.ReplicaAddress{a1, a2, a3, spare(2)}},
		{"an id twice, same addresses", []*kvapi.ReplicaAddress{a1, a2, a3, a3}},
		{"a client address twice", []*kvapi.ReplicaAddress{a1, a2, a3, dupClient}},
		{"a peer address twice", []*kvapi.ReplicaAddress{a1, a2, a3, dupPeer}},
		{"a client address that is another's peer address", []*kvapi.ReplicaAddress{a1, a2, a3, crossed}},
		{"one address for both services", []*kvapi.ReplicaAddress{a1, a2, a3, sameOwn}},
		{"no peer address", []*kvapi.ReplicaAddress{a1, a2, a3, noPeer}},
		{"id 0", []*kvapi.ReplicaAddress{a1, a2, a3, spare(0)}},
		{"a negative id", []*kvapi.ReplicaAddress{a1, a2, a3, spare(-4)}},
		{"65 members", tooMany},
	}
	for _, tc := range cases {
		res, _, err := reconfigureAt(c.rep(leader).clientAddr, tc.members)
		var inv *kvapi.InvalidArgument
		if !errors.As(err, &inv) {
			t.Errorf("reconfigure with %s: %+v, %v; want InvalidArgument", tc.name, res, err)
		}
	}

	// The current members, as listed and in another order: nothing to change.
	for _, order := range [][]int{{1, 2, 3}, {3, 1, 2}} {
		res, _, err := reconfigureAt(c.rep(leader).clientAddr, c.addresses(order))
		if err != nil {
			t.Fatalf("reconfigure to the current members %v: %v", order, err)
		}
		if res.Epoch != 1 || res.Slot != 0 || !slices.Equal(memberIDs(res.Members), []int{1, 2, 3}) {
			t.Errorf("reconfigure to the current members %v: epoch %d, slot %d, members %v; want epoch 1, slot 0, [1 2 3]",
				order, res.Epoch, res.Slot, memberIDs(res.Members))
		}
	}

	// A follower does not change anything either: it names the leader.
	follower := others(c.ids(), leader)[0]
	_, _, err = reconfigureAt(c.rep(follower).clientAddr, c.addresses([]int{1, 2}))
	var nl *kvapi.NotLeader
	if !errors.As(err, &nl) || nl.LeaderAddr != c.rep(leader).clientAddr {
		t.Errorf("reconfigure at follower %d: %v; want NotLeader naming the leader at %s", follower, err, c.rep(leader).clientAddr)
	}

	after, err := rawStatus(c.rep(leader).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	if after.Applied != before.Applied || after.Chosen != before.Chosen {
		t.Errorf("the leader went from applied %d, chosen %d to %d, %d: a refused or empty change reached the log",
			before.Applied, before.Chosen, after.Applied, after.Chosen)
	}
	for _, id := range c.ids() {
		st, err := rawStatus(c.rep(id).clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.configError(st, 1, []int{1, 2, 3}); err != nil {
			t.Error(err)
		}
	}
	if _, err := c.client(5*time.Second).Put(context.Background(), "after-bad-input", []byte("1")); err != nil {
		t.Errorf("put after the refused changes: %v", err)
	}
}

// TestMeasureReconfigJoin reports, with 100,000 keys in the store, how long a
// change adding a fourth replica takes to return, and how long until the new
// replica votes (reports itself a member and has applied the change's slot).
func TestMeasureReconfigJoin(t *testing.T) {
	measure(t)
	const keys = 100_000
	c := newCluster(t, 3)
	leader := c.waitLeader()
	sum := c.bench(10*time.Minute, nil, "--keys", fmt.Sprint(keys), "--mix", "put=50,get=50", "--preload",
		"--ops", "1000", "--warmup", "0", "--clients", "32", "--value-size", "100")
	if sum.Preload == nil || sum.Preload.Errors > 0 || sum.Total.Errors > 0 {
		t.Fatalf("preload of %d keys: %+v, %d errors after", keys, sum.Preload, sum.Total.Errors)
	}
	st, err := rawStatus(c.rep(leader).clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys < keys {
		t.Fatalf("the leader holds %d keys after the preload, want %d", st.Keys, keys)
	}
	t.Logf("preload: %d keys of 100 bytes in %.1fs; the leader applied slot %d", keys, sum.Preload.Seconds, st.Applied)

	added := c.addReplica()
	c.writeReplicasFile()
	c.start(added)
	begin := time.Now()
	res := c.mustReconfigure(leader, []int{1, 2, 3, added}, 2)
	returned := time.Since(begin)
	var voting time.Duration
	var joined *kvapi.ReplicaStatus
	waitFor(t, 5*time.Minute, fmt.Sprintf("replica %d to vote", added), func() error {
		st, err := rawStatus(c.rep(added).clientAddr)
		if err != nil {
			return err
		}
		if !st.Member || st.Applied < res.Slot {
			return fmt.Errorf("member %v, applied %d of %d", st.Member, st.Applied, res.Slot)
		}
		voting, joined = time.Since(begin), st
		return nil
	})
	t.Logf("adding a replica to 3 holding %d keys: reconfigure returned after %s", keys, returned.Round(time.Millisecond))
	t.Logf("adding a replica to 3 holding %d keys: the new replica voted (member, applied slot %d >= change slot %d, %d keys) %s after the call",
		keys, joined.Applied, res.Slot, joined.Keys, voting.Round(time.Millisecond))
	if joined.Keys < keys {
		t.Errorf("the new replica holds %d keys, want %d", joined.Keys, keys)
	}
}

// TestMeasureReconfigThroughput reports the put throughput and p99 latency of 32
// writers on three replicas, while they grow to five (two single-member
// changes, each new member voting before the next), and on five afterwards.
func TestMeasureReconfigThroughput(t *testing.T) {
	measure(t)
	const (
		writers = 32
		steady  = 5 * time.Second
		skip    = time.Second // warm-up, left out of the first window
	)
	c := newCluster(t, 3)
	leader := c.waitLeader()
	joining := []int{c.addReplica(), c.addReplica()}
	c.writeReplicasFile()
	c.startAll(joining...)
	cl := c.client(10 * time.Second)

	type sample struct {
		start time.Time
		lat   time.Duration
	}
	samples := make([][]sample, writers)
	failures := make([]int, writers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				begin := time.Now()
				_, err := cl.Put(context.Background(), fmt.Sprintf("tp/%02d/%07d", w, i%10000), []byte("0123456789abcdef"))
				if err != nil {
					failures[w]++
					continue
				}
				samples[w] = append(samples[w], sample{begin, time.Since(begin)})
			}
		}()
	}
	start := time.Now()
	// The windows are the measurement: a fixed time of steady load on each side.
	<-time.After(skip + steady)
	changeStart := time.Now()
	members := []int{1, 2, 3}
	for i, id := range joining {
		members = append(members, id)
		res := c.mustReconfigure(leader, members, int64(2+i))
		c.waitJoined(id, res.Slot)
	}
	changeEnd := time.Now()
	<-time.After(steady)
	stopAt := time.Now()
	close(quit)
	wg.Wait()

	var all []sample
	failed := 0
	for w := range writers {
		all = append(all, samples[w]...)
		failed += failures[w]
	}
	// A put counts in the window it started in, so that one held up by the
	// change counts there with all of its latency.
	window := func(name string, from, to time.Time) {
		var lats []time.Duration
		for _, s := range all {
			if !s.start.Before(from) && s.start.Before(to) {
				lats = append(lats, s.lat)
			}
		}
		slices.Sort(lats)
		if len(lats) == 0 {
			t.Logf("%s (%s): no put acknowledged", name, to.Sub(from).Round(time.Millisecond))
			return
		}
		t.Logf("%s (%s): %.0f puts/s, p50 %s, p99 %s, max %s (%d puts)", name, to.Sub(from).Round(time.Millisecond),
			float64(len(lats))/to.Sub(from).Seconds(), lats[len(lats)/2].Round(time.Microsecond),
			lats[len(lats)*99/100].Round(time.Microsecond), lats[len(lats)-1].Round(time.Microsecond), len(lats))
	}
	window("steady, 3 replicas", start.Add(skip), changeStart)
	window("during 3 -> 4 -> 5 (both changes until each new member voted)", changeStart, changeEnd)
	window("steady, 5 replicas", changeEnd, stopAt)
	ends := make([]time.Time, 0, len(all))
	for _, s := range all {
		ends = append(ends, s.start.Add(s.lat))
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	var gapAt time.Time
	for i := 1; i < len(ends); i++ {
		if d := ends[i].Sub(ends[i-1]); d > gap {
			gap, gapAt = d, ends[i-1]
		}
	}
	t.Logf("longest time without an acknowledged put: %s, from %s after the first reconfigure call (the changes took %s until both new members voted)",
		gap.Round(time.Millisecond), gapAt.Sub(changeStart).Round(time.Millisecond), changeEnd.Sub(changeStart).Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d puts failed", failed)
	}
}
