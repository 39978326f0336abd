package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// RunConfig describes one history: a fresh cluster, clients and a nemesis for
// Duration, then healing, final reads and the checks.
type RunConfig struct {
	// Binary is the ballotd to run; Env is added to its environment. With
	// the disk fault in the mix it must be built with the ballotfaults tag.
	Binary string
	Env    []string
	// Replicas is the cluster size: its initial members. Default 5.
	Replicas int
	// Spares is how many replicas to lay out beyond the members for the
	// reconfigure fault to add. Default 2 if the fault mix has reconfigure,
	// none otherwise; negative means none.
	Spares int
	// Dir is a scratch directory for data and logs.
	Dir string
	// Compaction sets the replicas' snapshot and compaction flags. The zero
	// value is AggressiveCompaction.
	Compaction Compaction
	// OutDir receives the evidence of a failed history, in a subdirectory
	// named after Name.
	OutDir string
	Name   string
	Seed   uint64
	// Duration is how long clients run while faults are injected.
	Duration time.Duration
	Workload WorkloadConfig
	Nemesis  NemesisConfig
	// CheckTimeout bounds each porcupine check (a failed one is checked again,
	// verbosely, for the evidence). Default 60s.
	CheckTimeout time.Duration
	// SettleTimeout bounds the wait, after healing, for every replica to apply
	// the same slot, and for wiped replicas to finish rebuilding. Default 30s.
	SettleTimeout time.Duration
	// Logf receives progress lines. Nil discards.
	Logf func(format string, args ...any)
}

// Result is what one history showed.
type Result struct {
	Name string
	Seed uint64
	Counts
	ReadsDropped, WritesNotProposed, Retries int64
	Faults                                   int
	// Wipes counts wipe faults; AfterWipe the operations a replica answered
	// after it was wiped (and rebuilt: it neither leads nor answers before),
	// final reads included; WipedMembers the wiped replicas still members at
	// the end, each of which answered final reads as leader.
	Wipes, AfterWipe, WipedMembers int
	// Changes counts the configuration changes the reconfigure fault saw
	// committed, Replacements the members it replaced (a spare added, then a
	// member removed), AfterJoin the operations answered by a replica a change
	// had added. Final is the configuration in force at the end, whose members
	// the final checks cover.
	Changes, Replacements, AfterJoin int
	Final                            Configuration
	// DiskFaults counts disk faults; Unhonoured lists the faults the
	// replicas did not respond to as they must (a replica that went on
	// running after its disk failed, or stopped otherwise than it must).
	DiskFaults int
	Unhonoured []string
	// Compaction is what the replicas' logs say they did: snapshots taken and
	// installed, store files rewritten, and failures of either.
	Compaction compactionLog
	// Verdict is porcupine's: Ok, Illegal or Unknown (it ran out of time).
	Verdict porcupine.CheckResult
	// Lost counts acknowledged writes whose effect the final reads do not show
	// although no later write can explain it; LostDetail says which.
	Lost       int
	LostDetail []string
	// Diverged says how replicas that applied the same slots disagree; "" if
	// they all agree.
	Diverged string
	// Problems are failures other than those: a replica that does not recover
	// after healing, no leader, no convergence, an impossible answer.
	Problems []string
	// Artifacts is the directory holding the evidence, when it was written.
	Artifacts string
	Took      time.Duration
}

// Violation reports whether the history broke linearizability or left
// replicas disagreeing.
func (r Result) Violation() bool { return r.Verdict != porcupine.Ok || r.Diverged != "" }

// Failed reports whether anything at all went wrong.
func (r Result) Failed() bool {
	return r.Violation() || r.Lost > 0 || len(r.Unhonoured) > 0 || len(r.Problems) > 0
}

// String is a one-line summary.
func (r Result) String() string {
	s := fmt.Sprintf("%s: seed=%d verdict=%s ops=%d (reads=%d writes=%d unknown=%d; retries=%d, reads dropped=%d, writes refused=%d) "+
		"faults=%d (wipes=%d, ops answered by wiped replicas=%d) snapshots=%d installed=%d rewrites=%d lost=%d took=%s",
		r.Name, r.Seed, r.Verdict, r.Reads+r.Writes+r.Unknown, r.Reads, r.Writes, r.Unknown, r.Retries, r.ReadsDropped, r.WritesNotProposed,
		r.Faults, r.Wipes, r.AfterWipe, r.Compaction.Snapshots, r.Compaction.Installs, r.Compaction.Rewrites, r.Lost, r.Took.Round(time.Millisecond))
	if r.Changes > 0 || r.Final.Epoch > 1 {
		s += fmt.Sprintf(" changes=%d (replacements=%d, ops answered by added replicas=%d, final configuration %s)",
			r.Changes, r.Replacements, r.AfterJoin, r.Final)
	}
	if r.DiskFaults > 0 {
		s += fmt.Sprintf(" disk-faults=%d", r.DiskFaults)
	}
	if r.Compaction.Failures > 0 {
		s += fmt.Sprintf(" compaction-failures=%d", r.Compaction.Failures)
	}
	if r.Diverged != "" {
		s += " DIVERGED: " + r.Diverged
	}
	for _, u := range r.Unhonoured {
		s += "; FAULT NOT HONOURED: " + u
	}
	for _, p := range r.Problems {
		s += "; PROBLEM: " + p
	}
	if r.Artifacts != "" {
		s += " evidence: " + r.Artifacts
	}
	return s
}

// RunHistory runs one history and checks it. The error is for a harness that
// could not run at all (no binary, a cluster that never elects a leader at the
// start); everything the replicas do wrong is in the Result.
func RunHistory(ctx context.Context, cfg RunConfig) (Result, error) {
	begin := time.Now()
	if cfg.Replicas == 0 {
		cfg.Replicas = 5
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 30 * time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 60 * time.Second
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	switch {
	case cfg.Spares < 0:
		cfg.Spares = 0
	case cfg.Spares == 0 && slices.Contains(cfg.Nemesis.Faults, FaultReconfigure):
		cfg.Spares = 2
	}
	wl := cfg.Workload.withDefaults()
	res := Result{Name: cfg.Name, Seed: cfg.Seed}

	c, err := StartCluster(ClusterConfig{Binary: cfg.Binary, Replicas: cfg.Replicas, Spares: cfg.Spares, Dir: cfg.Dir, Env: cfg.Env,
		DiskFaults: slices.Contains(cfg.Nemesis.Faults, FaultDisk), Seed: cfg.Seed, Compaction: cfg.Compaction, Logf: logf})
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.WaitServing(ctx, 20*time.Second); err != nil {
		return res, fmt.Errorf("%w\n%s", err, tails(c))
	}
	if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
		return res, fmt.Errorf("before any fault: %w\n%s", err, tails(c))
	}

	h := NewHistory()
	nem := NewNemesis(c, cfg.Nemesis, cfg.Seed, h, func(f string, a ...any) {
		logf("%s +%s "+f, append([]any{cfg.Name, time.Duration(h.Now()).Round(time.Millisecond)}, a...)...)
	})
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nem.Run(runCtx)
	}()
	stats := RunWorkload(runCtx, wl, cfg.Seed, c.ClientAddrs(), h)
	cancel()
	wg.Wait()
	res.ReadsDropped, res.WritesNotProposed, res.Retries = stats.ReadsDropped, stats.WritesNotProposed, stats.Retries
	res.Problems = append(res.Problems, stats.Errors...)
	if err := nem.Err(); err != nil {
		res.Problems = append(res.Problems, "nemesis: "+err.Error())
	}
	res.Unhonoured = nem.Unhonoured()
	events := nem.Events()
	res.Faults = len(events)
	changes := nem.Changes()
	res.Changes = len(changes)
	for _, ch := range changes {
		if ch.Removed != 0 {
			res.Replacements++
		}
	}

	// Heal everything, restart everything, and wait for a leader.
	if err := c.HealAll(); err != nil {
		res.Problems = append(res.Problems, "heal: "+err.Error())
	}
	healed := h.Now()
	var reads []finalRead
	if err := c.WaitServing(ctx, 20*time.Second); err != nil {
		res.Problems = append(res.Problems, "after healing: "+err.Error())
	} else if _, err := c.WaitLeader(ctx, 30*time.Second); err != nil {
		res.Problems = append(res.Problems, "after healing: "+err.Error())
	} else {
		// A configuration of the wrong size is among c.Trouble().
		res.Final = c.ObserveConfig(ctx)
		var joined []int
		for _, ch := range changes {
			if ch.Added != 0 && !slices.Contains(joined, ch.Added) {
				joined = append(joined, ch.Added)
			}
		}
		var problems []string
		reads, problems = readBack(ctx, c, h, wl.Keys, joined, cfg.SettleTimeout, logf)
		res.Problems = append(res.Problems, problems...)
		if len(reads) > 0 {
			last := reads[len(reads)-1]
			res.Diverged, res.Final, err = converge(ctx, c, wl.Keys, last.values, last.applied, cfg.SettleTimeout)
			if err != nil {
				res.Problems = append(res.Problems, err.Error())
			}
		}
	}

	res.Problems = append(res.Problems, c.Trouble()...)
	ops := h.Ops()
	res.Counts = countOps(ops)
	for _, r := range reads {
		// Each set of final reads came after every acknowledged write, so
		// each must show the last of them.
		lost, detail := lostWrites(ops, r.values)
		res.Lost = max(res.Lost, lost)
		for _, d := range detail {
			res.LostDetail = append(res.LostDetail, fmt.Sprintf("final reads at replica %d: %s", r.replica, d))
		}
	}
	for _, e := range events {
		switch e.Kind {
		case FaultWipe:
			res.Wipes++
		case FaultDisk:
			res.DiskFaults++
		}
	}
	res.AfterWipe = answeredAfterWipe(ops, events)
	for _, id := range c.Wiped() {
		if slices.Contains(res.Final.Members, id) {
			res.WipedMembers++
		}
	}
	res.AfterJoin = answeredAfterJoin(ops, changes)
	res.Compaction = countCompaction(c)
	// The plain check is several times faster than the verbose one, which also
	// records partial linearizations for the visualisation (an 84,000-operation
	// history under -race: 5 s against 26 s); those are wanted only as evidence.
	result := porcupine.CheckOperationsTimeout(KVModel, ops, cfg.CheckTimeout)
	var info porcupine.LinearizationInfo
	if result != porcupine.Ok {
		result, info = porcupine.CheckOperationsVerbose(KVModel, ops, cfg.CheckTimeout)
	}
	res.Verdict = result
	res.Took = time.Since(begin)
	if res.Failed() {
		dir, err := writeEvidence(cfg, c, ops, info, events, healed, res)
		if err != nil {
			res.Problems = append(res.Problems, "writing evidence: "+err.Error())
		}
		res.Artifacts = dir
	}
	return res, nil
}

// finalReads reads every key linearizably once the cluster is healed and
// records the reads in h. Each read goes to the replica at returns (which may
// wait for one to lead). It returns the values and the highest applied slot the
// answering replica reported.
func finalReads(ctx context.Context, c *Cluster, h *History, keys []string, at func() (int, error)) (finalRead, error) {
	session := h.NewSession()
	out := finalRead{values: make(map[string]Output)}
	for _, key := range keys {
		err := poll(ctx, 20*time.Second, "a linearizable read of "+key, func() error {
			target, err := at()
			if err != nil {
				return err
			}
			kv, err := dialKV(c.Replica(target).ClientAddr, 4*time.Second)
			if err != nil {
				return err
			}
			defer kv.Close()
			callCtx, cancel := context.WithTimeout(ctx, 4*time.Second)
			defer cancel()
			call := h.Now()
			r, err := kv.Get(callCtx, key, kvapi.Consistency_LINEARIZABLE)
			ret := h.Now()
			kind, _ := classify(err)
			o := Output{Replica: target}
			switch kind {
			case errNone:
				o.Found, o.Value = true, string(r.Value)
				out.applied = max(out.applied, r.Applied)
			case errNotFound:
			default:
				return err
			}
			h.Add(porcupine.Operation{ClientId: session, Input: Input{Kind: OpGet, Key: key}, Call: call, Output: o, Return: ret})
			out.values[key] = o
			out.replica = target
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// currentLeader is finalReads' target when any leader will do.
func currentLeader(ctx context.Context, c *Cluster) func() (int, error) {
	return func() (int, error) {
		if leader := c.Leader(ctx); leader != 0 {
			return leader, nil
		}
		return 0, errors.New("no leader")
	}
}

// converge waits until every member of the configuration in force has applied
// the same slot (at least atLeast), in that configuration, and then compares
// stale reads of every key on every member, with each other and with the final
// linearizable reads, and the digests of their whole stores at that slot, with
// each other and with their own stale reads. Replicas a change removed are left
// out: they stop applying when they leave. It returns how the members disagree
// ("" if they do not) and the configuration, or an error if they never settle.
func converge(ctx context.Context, c *Cluster, keys []string, final map[string]Output, atLeast int64,
	timeout time.Duration) (string, Configuration, error) {
	var (
		diverged string
		cfg      Configuration
	)
	err := poll(ctx, timeout, "every member to apply the same slot", func() error {
		diverged = ""
		var (
			slot int64
			err  error
		)
		cfg, slot, err = sameApplied(ctx, c, atLeast)
		if err != nil {
			return err
		}
		ids := cfg.Members
		views := make(map[int]map[string]Output)
		for _, id := range ids {
			v, err := staleView(ctx, c, id, keys)
			if err != nil {
				return err
			}
			views[id] = v
		}
		digests := make(map[int]*kvapi.Digest)
		for _, id := range ids {
			d, err := c.Digest(ctx, id, 2*time.Second)
			if err != nil {
				return fmt.Errorf("digest of replica %d: %w", id, err)
			}
			if d.Applied != slot {
				return fmt.Errorf("replica %d's digest is at slot %d, its status said %d", id, d.Applied, slot)
			}
			digests[id] = d
		}
		after, slotAfter, err := sameApplied(ctx, c, atLeast)
		if err != nil {
			return err
		}
		if slotAfter != slot || after.Epoch != cfg.Epoch {
			return fmt.Errorf("applied moved from slot %d of %s to slot %d of %s while reading", slot, cfg, slotAfter, after)
		}
		diffs := compareDigests(ids, digests, views)
		for _, key := range keys {
			byValue := make(map[string][]int)
			for _, id := range ids {
				byValue[describeValue(views[id][key])] = append(byValue[describeValue(views[id][key])], id)
			}
			want := describeValue(final[key])
			if len(byValue) > 1 || byValue[want] == nil {
				diffs = append(diffs, fmt.Sprintf("%s: final linearizable read %s, replicas %s", key, want, formatViews(byValue)))
			}
		}
		if len(diffs) > 0 {
			diverged = fmt.Sprintf("at applied slot %d of configuration %s: %s", slot, cfg, strings.Join(diffs, "; "))
		}
		return nil
	})
	if err != nil {
		return "", cfg, fmt.Errorf("members did not converge: %w", err)
	}
	return diverged, cfg, nil
}

// compareDigests reports digests, taken at the same applied slot, that differ
// from each other (listing every group of equal ones), or from the digest of
// what the same replica's stale reads returned: the workload writes only the
// keys it reads, so the two cover the same keys.
func compareDigests(ids []int, digests map[int]*kvapi.Digest, views map[int]map[string]Output) []string {
	var diffs []string
	groups := make(map[string][]int)
	var order []string
	for _, id := range ids {
		d := digests[id]
		k := fmt.Sprintf("%d keys, sha256 %x", d.Keys, d.Sha256)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], id)
		if keys, sum := digestOf(views[id]); d.Keys != keys || !bytes.Equal(d.Sha256, sum[:]) {
			diffs = append(diffs, fmt.Sprintf("replica %d's digest (%s) is not that of its stale reads (%d keys, sha256 %x)", id, k, keys, sum))
		}
	}
	if len(groups) > 1 {
		var parts []string
		for _, k := range order {
			parts = append(parts, fmt.Sprintf("%v: %s", groups[k], k))
		}
		diffs = append(diffs, "digests differ: "+strings.Join(parts, "; "))
	}
	return diffs
}

// digestOf computes the digest kvapi documents over the keys a view found:
// keys in ascending byte order, each key and value preceded by its length as 8
// bytes big-endian, hashed with SHA-256.
func digestOf(view map[string]Output) (int64, [32]byte) {
	var keys []string
	for k, o := range view {
		if o.Found {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		v := view[k].Value
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(k))))
		h.Write([]byte(k))
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(v))))
		h.Write([]byte(v))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return int64(len(keys)), sum
}

// sameApplied returns the latest configuration and the applied slot every
// member of it reports, or an error if one does not answer, does not report
// itself a member of that configuration, or has applied another slot.
func sameApplied(ctx context.Context, c *Cluster, atLeast int64) (Configuration, int64, error) {
	st := c.Statuses(ctx, time.Second)
	cfg := c.observe(st)
	applied := make(map[int]int64)
	for _, id := range cfg.Members {
		s, ok := st[id]
		if !ok {
			return cfg, 0, fmt.Errorf("replica %d does not answer status", id)
		}
		if s.ConfigEpoch != cfg.Epoch || !s.Member {
			return cfg, 0, fmt.Errorf("replica %d reports configuration epoch %d, member %v; want %s", id, s.ConfigEpoch, s.Member, cfg)
		}
		applied[id] = s.Applied
	}
	first := applied[cfg.Members[0]]
	for _, a := range applied {
		if a != first || a < atLeast {
			return cfg, 0, fmt.Errorf("applied slots %v (want all equal, at least %d)", applied, atLeast)
		}
	}
	return cfg, first, nil
}

// staleView reads every key from replica id's local copy.
func staleView(ctx context.Context, c *Cluster, id int, keys []string) (map[string]Output, error) {
	kv, err := dialKV(c.Replica(id).ClientAddr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer kv.Close()
	out := make(map[string]Output)
	for _, key := range keys {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := kv.Get(callCtx, key, kvapi.Consistency_STALE)
		cancel()
		switch kind, _ := classify(err); kind {
		case errNone:
			out[key] = Output{Found: true, Value: string(r.Value)}
		case errNotFound:
			out[key] = Output{}
		default:
			return nil, fmt.Errorf("stale get %s at replica %d: %v", key, id, err)
		}
	}
	return out, nil
}

func describeValue(o Output) string {
	if !o.Found {
		return "absent"
	}
	return fmt.Sprintf("%q", o.Value)
}

func formatViews(byValue map[string][]int) string {
	var parts []string
	for v, ids := range byValue {
		parts = append(parts, fmt.Sprintf("%v=%s", ids, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// LostWrites is lostWrites for tests that record a history with RunWorkload
// and make their own final reads (package e2e's membership changes).
func LostWrites(ops []porcupine.Operation, final map[string]Output) (int, []string) {
	return lostWrites(ops, final)
}

// lostWrites finds acknowledged writes whose effect the final reads lack. For
// each key, the final value must come from a write that could be the last one:
// an acknowledged write that no other acknowledged write started after, or a
// write with an unknown outcome (it may land at any time), or the initial
// absence when no write was acknowledged. If it comes from none of them, the
// acknowledged writes that could have been last were lost.
func lostWrites(ops []porcupine.Operation, final map[string]Output) (int, []string) {
	type write struct {
		in   Input
		call int64
		ret  int64
		ok   bool
	}
	byKey := make(map[string][]write)
	for _, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if in.Kind == OpGet {
			continue
		}
		byKey[in.Key] = append(byKey[in.Key], write{in: in, call: op.Call, ret: op.Return, ok: !out.Unknown})
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lost := 0
	var detail []string
	for _, key := range keys {
		got := final[key]
		ws := byKey[key]
		var lastAcked []write
		explained := !got.Found && !slices.ContainsFunc(ws, func(w write) bool { return w.ok })
		for _, w := range ws {
			superseded := false
			if w.ok {
				for _, o := range ws {
					if o.ok && o.call > w.ret {
						superseded = true
						break
					}
				}
				if !superseded {
					lastAcked = append(lastAcked, w)
				}
			}
			if superseded {
				continue
			}
			switch {
			case w.in.Kind == OpPut && got.Found && got.Value == w.in.Value:
				explained = true
			case w.in.Kind == OpRemove && !got.Found:
				explained = true
			}
		}
		if !explained {
			lost += len(lastAcked)
			var names []string
			for _, w := range lastAcked {
				names = append(names, KVModel.DescribeOperation(w.in, Output{Existed: true}))
			}
			detail = append(detail, fmt.Sprintf("%s reads %s at the end; the last acknowledged writes were %s", key, describeValue(got), strings.Join(names, ", ")))
		}
	}
	return lost, detail
}

// writeEvidence writes porcupine's visualisation, the fault schedule, the
// history, a summary and the replicas' logs under cfg.OutDir/cfg.Name.
func writeEvidence(cfg RunConfig, c *Cluster, ops []porcupine.Operation, info porcupine.LinearizationInfo,
	events []FaultEvent, healed int64, res Result) (string, error) {
	base := cfg.OutDir
	if base == "" {
		base = filepath.Join(os.TempDir(), "ballot-chaos")
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-%s", cfg.Name, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var annotations []porcupine.Annotation
	for _, e := range events {
		end := e.End
		if end < 0 {
			end = healed
		}
		annotations = append(annotations, porcupine.Annotation{Tag: "faults", Start: e.Start, End: end,
			Description: string(e.Kind), Details: e.Detail, BackgroundColor: "#f4cccc"})
	}
	annotations = append(annotations, porcupine.Annotation{Tag: "faults", Start: healed, End: healed,
		Description: "healed", Details: "every fault ended; final reads follow", BackgroundColor: "#d9ead3"})
	info.AddAnnotations(annotations)
	var errs []error
	errs = append(errs, porcupine.VisualizePath(KVModel, info, filepath.Join(dir, "history.html")))
	var sched bytes.Buffer
	errs = append(errs, writeSchedule(&sched, cfg.Seed, events))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "schedule.txt"), sched.Bytes(), 0o644))
	var hist bytes.Buffer
	errs = append(errs, writeHistory(&hist, ops))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "history.txt"), hist.Bytes(), 0o644))
	summary := res.String() + "\n"
	for _, d := range res.LostDetail {
		summary += "lost: " + d + "\n"
	}
	summary += fmt.Sprintf("replay: CHAOS_SEED=%d with the same settings (the schedule is seeded; process timing is not)\n", cfg.Seed)
	errs = append(errs, os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(summary), 0o644))
	for _, id := range c.IDs() {
		r := c.Replica(id)
		data, err := os.ReadFile(r.LogPath)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, filepath.Base(r.LogPath)), data, 0o644))
	}
	return dir, errors.Join(errs...)
}

func tails(c *Cluster) string {
	var b strings.Builder
	for _, id := range c.IDs() {
		fmt.Fprintf(&b, "---- replica %d:\n%s\n", id, c.Tail(id, 15))
	}
	return b.String()
}
