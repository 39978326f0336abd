package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/replicas"
)

// Defaults and pacing of `ballot reconfigure`.
const (
	// defaultCatchUpTimeout bounds the wait for added members after each step.
	defaultCatchUpTimeout = time.Minute
	// catchUpPoll is how often a member that is catching up is asked for status.
	catchUpPoll = 100 * time.Millisecond
	// catchUpReport is how often the wait prints how far a member has got.
	catchUpReport = 5 * time.Second
)

// resumeHint ends every failure of a run that may have changed the members.
const resumeHint = "run 'ballot reconfigure' again to resume from the committed configuration"

// reconfigureCommand is `ballot reconfigure`: make the cluster's members those
// of the replicas file.
func reconfigureCommand() *cli.Command {
	return &cli.Command{
		Name:  "reconfigure",
		Usage: "change the cluster's members to those of the replicas file, one member at a time",
		Description: "Reads the wanted members from --replicas (default ./replicas.txt) and the\n" +
			"committed configuration from the replicas' status (the highest config epoch\n" +
			"any of them reports), then adds and removes one member per step, an addition\n" +
			"first, printing a line per step. After each step it waits until every member\n" +
			"it added has applied the change (--catch-up-timeout). A member whose address\n" +
			"changed is removed and added back. Give the file as it was before the edit\n" +
			"with --current: the members it drops are found there (without it, one such\n" +
			"member is removed before anything is added, and two or more cannot be).\n" +
			"It always starts from what the cluster has committed, so after a failure\n" +
			"running it again resumes; with nothing to change it changes nothing.",
		ArgsUsage:    " ",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "print the steps without making them"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array of the steps instead of lines"},
			&cli.DurationFlag{
				Name:  "catch-up-timeout",
				Value: defaultCatchUpTimeout,
				Usage: "how long to wait after a step for the members added so far to apply it",
			},
			&cli.StringFlag{
				Name:  "current",
				Usage: "replicas `FILE` listing the committed members (e.g. replicas.txt before the edit), for the addresses of those the new file drops",
			},
		},
		Action: reconfigure,
	}
}

// stepJSON is one object of `ballot reconfigure --json`.
type stepJSON struct {
	Action     string `json:"action"`
	ID         uint64 `json:"id"`
	ClientAddr string `json:"client_addr"`
	PeerAddr   string `json:"peer_addr"`
	// Members are the ids of the configuration after the step.
	Members []uint64 `json:"members"`
	// Epoch and Slot are what the change committed; absent with --dry-run.
	Epoch uint64 `json:"epoch,omitempty"`
	Slot  uint64 `json:"slot,omitempty"`
}

// committed is the configuration the cluster has committed, as the replicas'
// status shows it.
type committed struct {
	epoch uint64
	// members have empty addresses where none is known.
	members []replicas.Replica
	// leader is the id of a member that says it leads, 0 if none.
	leader uint64
	// lagging are members the wanted file keeps that answered status with an
	// older epoch: a run that stopped may have added them.
	lagging []replicas.Replica
}

func reconfigure(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "want no arguments, got %d", c.NArg())
	}
	wait := c.Duration("catch-up-timeout")
	if wait <= 0 {
		return usageError(c, "--catch-up-timeout must be positive, got %s", wait)
	}
	if strings.TrimSpace(c.String("endpoints")) != "" {
		return usageError(c, "the wanted members come from --replicas FILE; unset --endpoints (BALLOT_ENDPOINTS)")
	}
	t, err := loadTarget(c)
	if err != nil {
		return err
	}
	wanted := t.replicas
	var known []replicas.Replica
	if f := c.String("current"); f != "" {
		if known, err = replicas.Load(f); err != nil {
			return failure(fmt.Errorf("reconfigure: %w", err))
		}
	}

	// Ask every replica either file lists; those that answer say who they are.
	asked := slices.Clone(wanted)
	for _, r := range known {
		if !slices.ContainsFunc(asked, func(a replicas.Replica) bool { return a.ClientAddr == r.ClientAddr }) {
			asked = append(asked, r)
		}
	}
	t.replicas = asked
	cl, err := t.newClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	rows := queryAll(c.Context, cl.Status, asked)
	for _, r := range rows {
		if !r.Up {
			fmt.Fprintf(c.App.ErrWriter, "ballot: %s\n", oneLine(r.Error))
		}
	}
	cur, err := committedConfig(rows, wanted, known)
	if err != nil {
		return failure(fmt.Errorf("reconfigure: %w", err))
	}
	var unknown []uint64
	for _, m := range cur.members {
		if !knownAddrs(m) {
			unknown = append(unknown, m.ID)
		}
	}
	steps, err := planSteps(cur.members, wanted, cur.leader)
	if err != nil {
		hint := ""
		if len(unknown) > 0 {
			hint = " (give their addresses with --current FILE, e.g. the replicas file before the edit)"
		}
		return failure(fmt.Errorf("reconfigure from epoch %d (members %s): %w%s",
			cur.epoch, joinIDs(ids(cur.members)), err, hint))
	}
	if len(unknown) == 1 && slices.ContainsFunc(steps, func(st step) bool { return st.Action == actionAdd }) {
		// The order differs from the usual one: say why, and how to avoid it.
		fmt.Fprintf(c.App.ErrWriter, "ballot: replica %d of configuration %d is not in %s and its addresses are unknown, "+
			"so it is removed first; to add before removing, give its addresses with --current FILE\n", unknown[0], cur.epoch, t.source)
	}

	out := c.App.Writer
	asJSON := c.Bool("json")
	switch {
	case len(steps) == 0 && asJSON:
		return writeJSON(c, []stepJSON{})
	case len(steps) == 0:
		fmt.Fprintf(out, "nothing to change: epoch %d, members %s\n", cur.epoch, joinIDs(ids(cur.members)))
		return nil
	case c.Bool("dry-run"):
		return printPlan(c, cur, steps)
	}

	r := &reconfigureRun{cl: cl, progress: c.App.ErrWriter, wait: wait, total: len(steps), epoch: cur.epoch,
		watch: slices.Clone(cur.lagging)}
	done := []stepJSON{}
	for i, st := range steps {
		res, err := r.step(c.Context, i, st)
		if res != nil {
			done = append(done, *res)
			if !asJSON {
				fmt.Fprintln(out, stepLine(*res, st))
			}
		}
		if err != nil {
			if asJSON {
				writeJSON(c, done) // what was done, then the failure
			}
			return failure(err)
		}
	}
	if asJSON {
		return writeJSON(c, done)
	}
	last := steps[len(steps)-1]
	fmt.Fprintf(out, "configuration epoch %d: members %s\n", r.epoch, joinIDs(ids(last.Members)))
	return nil
}

// reconfigureRun carries out a plan, one step after another.
type reconfigureRun struct {
	cl       *client.Client
	progress io.Writer
	wait     time.Duration
	total    int
	// epoch is the configuration's epoch after the last step made.
	epoch uint64
	// watch are the members to wait for before each step and after the last:
	// those this run added, and members that answered with an older epoch.
	watch []replicas.Replica
}

// step waits for the watched members to catch up with the configuration in
// force, makes step i and returns what it committed. A nil result means the
// step was not made (or may have been made without an answer); a result with an
// error means it was made but its new members did not catch up.
func (r *reconfigureRun) step(ctx context.Context, i int, st step) (*stepJSON, error) {
	name := fmt.Sprintf("step %d of %d (%s)", i+1, r.total, describeStep(st))
	if i == 0 && len(r.watch) > 0 {
		// Members a stopped run added must be caught up before anything else.
		if err := r.catchUp(ctx, r.epoch, 0); err != nil {
			return nil, fmt.Errorf("reconfigure: before %s: %w; %s", name, err, resumeHint)
		}
	}
	res, err := r.cl.Reconfigure(ctx, st.Members)
	if err != nil {
		return nil, fmt.Errorf("reconfigure: %s failed: %w; the committed configuration may be the one before or after this step: %s",
			name, err, resumeHint)
	}
	if got, want := joinIDs(ids(res.Members)), joinIDs(ids(st.Members)); got != want {
		return nil, fmt.Errorf("reconfigure: %s: the leader answered epoch %d with members %s, not %s: another change was made; %s",
			name, res.Epoch, got, want, resumeHint)
	}
	r.epoch = res.Epoch
	done := &stepJSON{
		Action: st.Action, ID: st.Replica.ID, ClientAddr: st.Replica.ClientAddr, PeerAddr: st.Replica.PeerAddr,
		Members: ids(st.Members), Epoch: res.Epoch, Slot: res.Slot,
	}
	r.watch = slices.DeleteFunc(r.watch, func(m replicas.Replica) bool { return m.ID == st.Replica.ID })
	if st.Action == actionAdd {
		r.watch = append(r.watch, st.Replica)
	}
	if err := r.catchUp(ctx, res.Epoch, res.Slot); err != nil {
		return done, fmt.Errorf("reconfigure: %s was committed at epoch %d, but %w; %s", name, res.Epoch, err, resumeHint)
	}
	return done, nil
}

// catchUp waits, within r.wait, until every watched member answers status
// with config epoch epoch and an applied slot of at least slot, printing how
// far a member that keeps the run waiting has got.
func (r *reconfigureRun) catchUp(ctx context.Context, epoch, slot uint64) error {
	ctx, cancel := context.WithTimeout(ctx, r.wait)
	defer cancel()
	for _, m := range r.watch {
		if err := r.catchUpOne(ctx, m, epoch, slot); err != nil {
			return err
		}
	}
	return nil
}

func (r *reconfigureRun) catchUpOne(ctx context.Context, m replicas.Replica, epoch, slot uint64) error {
	name := fmt.Sprintf("replica %d (%s)", m.ID, m.ClientAddr)
	var last string // what the member last said, for progress and errors
	var lastReport time.Time
	for {
		st, err := r.cl.Status(ctx, m.ClientAddr)
		switch {
		case err != nil:
			last = oneLine(err.Error())
		case uint64(st.ConfigEpoch) > epoch:
			return fmt.Errorf("%s follows epoch %d, newer than epoch %d: another change was made", name, st.ConfigEpoch, epoch)
		case uint64(st.ConfigEpoch) == epoch && st.Applied >= 0 && uint64(st.Applied) >= slot:
			if !lastReport.IsZero() {
				fmt.Fprintf(r.progress, "%s caught up: epoch %d, applied %d\n", name, epoch, st.Applied)
			}
			return nil
		default:
			last = fmt.Sprintf("epoch %d, applied %d", st.ConfigEpoch, st.Applied)
		}
		now := time.Now()
		if lastReport.IsZero() {
			fmt.Fprintf(r.progress, "waiting for %s to catch up with epoch %d, slot %d: %s\n", name, epoch, slot, last)
			lastReport = now
		} else if now.Sub(lastReport) >= catchUpReport {
			fmt.Fprintf(r.progress, "still waiting for %s: %s\n", name, last)
			lastReport = now
		}
		if !sleepCtx(ctx, catchUpPoll) {
			if err := ctx.Err(); errors.Is(err, context.Canceled) {
				return fmt.Errorf("waiting for %s: %w", name, err)
			}
			return fmt.Errorf("%s did not catch up with epoch %d, slot %d within %s (last: %s)", name, epoch, slot, r.wait, last)
		}
	}
}

// sleepCtx waits for d, and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// committedConfig finds the configuration the cluster has committed: the
// highest config epoch a replica that answered reports, with its members' ids.
// A member's addresses are those it reported itself, else those the
// configuration records (status member_addresses), else those of the --current
// file (known), else those of the wanted file, else unknown.
func committedConfig(rows []replicaStatus, wanted, known []replicas.Replica) (committed, error) {
	var cur committed
	var memberIDs []int64
	var recorded []memberAddress // the addresses the configuration itself records
	up := 0
	for _, r := range rows {
		if r.Up {
			up++
			if r.ConfigEpoch > 0 && uint64(r.ConfigEpoch) > cur.epoch {
				cur.epoch, memberIDs, recorded = uint64(r.ConfigEpoch), r.Members, r.MemberAddresses
			}
		}
	}
	switch {
	case up == 0:
		return cur, errors.New("no replica answered status")
	case cur.epoch == 0:
		return cur, errors.New("no replica that answered reports a committed configuration (is a member listed in the replicas file or --current?)")
	case len(memberIDs) == 0:
		return cur, fmt.Errorf("configuration epoch %d lists no members", cur.epoch)
	}
	for _, id := range memberIDs {
		m := replicas.Replica{ID: uint64(id)}
		self := slices.IndexFunc(rows, func(r replicaStatus) bool {
			return r.Up && r.ID == m.ID && r.Member && uint64(r.ConfigEpoch) == cur.epoch
		})
		if self < 0 {
			self = slices.IndexFunc(rows, func(r replicaStatus) bool { return r.Up && r.ID == m.ID })
		}
		if self >= 0 {
			m.ClientAddr, m.PeerAddr = rows[self].ClientAddr, rows[self].PeerAddr
			if rows[self].Leader && uint64(rows[self].ConfigEpoch) == cur.epoch {
				cur.leader = m.ID
			}
			if _, keep := replicas.Find(wanted, m.ID); keep && uint64(rows[self].ConfigEpoch) < cur.epoch {
				cur.lagging = append(cur.lagging, m)
			}
		} else if i := slices.IndexFunc(recorded, func(a memberAddress) bool { return uint64(a.ID) == m.ID }); i >= 0 {
			m.ClientAddr, m.PeerAddr = recorded[i].ClientAddr, recorded[i].PeerAddr
		} else if r, ok := replicas.Find(known, m.ID); ok {
			m.ClientAddr, m.PeerAddr = r.ClientAddr, r.PeerAddr
		} else if r, ok := replicas.Find(wanted, m.ID); ok {
			m.ClientAddr, m.PeerAddr = r.ClientAddr, r.PeerAddr
		}
		cur.members = append(cur.members, m)
	}
	slices.SortFunc(cur.members, byID)
	return cur, nil
}

// queryAll asks every replica for its status at once, each within the timeout.
func queryAll(ctx context.Context, ask statusFunc, list []replicas.Replica) []replicaStatus {
	return askEach(list, func(r replicas.Replica) replicaStatus { return queryStatus(ctx, ask, r) })
}

// askEach calls ask for every replica at once and returns the answers in the
// replicas' order.
func askEach[T any](list []replicas.Replica, ask func(replicas.Replica) T) []T {
	rows := make([]T, len(list))
	var wg sync.WaitGroup
	for i, r := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = ask(r)
		}()
	}
	wg.Wait()
	return rows
}

// printPlan prints the steps a run would make, as lines or JSON.
func printPlan(c *cli.Context, cur committed, steps []step) error {
	if c.Bool("json") {
		out := make([]stepJSON, len(steps))
		for i, st := range steps {
			out[i] = stepJSON{Action: st.Action, ID: st.Replica.ID, ClientAddr: st.Replica.ClientAddr,
				PeerAddr: st.Replica.PeerAddr, Members: ids(st.Members)}
		}
		return writeJSON(c, out)
	}
	w := c.App.Writer
	for i, st := range steps {
		fmt.Fprintf(w, "step %d of %d: %s\n", i+1, len(steps), describeStep(st))
	}
	_, err := fmt.Fprintf(w, "dry run: from epoch %d, members %s; nothing was changed\n", cur.epoch, joinIDs(ids(cur.members)))
	if err != nil {
		return failure(fmt.Errorf("reconfigure: write output: %w", err))
	}
	return nil
}

// describeStep is "add 4 (127.0.0.1:7004) -> members 1,2,3,4" or
// "remove 1 -> members 2,3,4".
func describeStep(st step) string {
	if st.Action == actionAdd {
		return fmt.Sprintf("add %d (%s) -> members %s", st.Replica.ID, st.Replica.ClientAddr, joinIDs(ids(st.Members)))
	}
	return fmt.Sprintf("remove %d -> members %s", st.Replica.ID, joinIDs(ids(st.Members)))
}

// stepLine is the line printed once a step is made:
// "epoch 5: added 4 (127.0.0.1:7004) -> members 1,2,3,4".
func stepLine(done stepJSON, st step) string {
	if st.Action == actionAdd {
		return fmt.Sprintf("epoch %d: added %d (%s) -> members %s", done.Epoch, done.ID, done.ClientAddr, joinIDs(done.Members))
	}
	return fmt.Sprintf("epoch %d: removed %d -> members %s", done.Epoch, done.ID, joinIDs(done.Members))
}

func writeJSON(c *cli.Context, v any) error {
	if err := printJSON(c, v); err != nil {
		return failure(fmt.Errorf("reconfigure: write output: %w", err))
	}
	return nil
}
