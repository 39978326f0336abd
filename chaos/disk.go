package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ballot-kv/ballot/store"
)

// The disk fault (docs/testing.md) makes one member's store fail as a failing
// disk would, with the fault layer of a ballotfaults build (server/faults*.go):
// every replica starts with BALLOT_FAULTS=write-error-after=N or
// fsync-error-after=N (drawn at each start, N from 0 to 3) and
// disk-faults-armed-by=FILE, a file of its own; FailDisk creates the file, after
// which the store's N+1st write or fsync fails with EIO. The replica must then
// fail-stop: exit with status 1, its log naming its store file and the error.
// It is restarted on the same data directory with a working disk when the fault
// ends: an injected EIO loses nothing that was synced, so it must rejoin and
// catch up like any restarted replica.

// DefaultDiskStopBound is how long a replica may go on running after its disk
// began to fail. A member under the workload writes within milliseconds; one
// cut off from the others campaigns, and saves its promise, within a few
// hundred.
const DefaultDiskStopBound = 10 * time.Second

// diskStopGrace is how long FailDisk's victim still has to meet its failure
// once the history ends: its clients have stopped, so it may write nothing
// more, and the fault is left unproven rather than failed.
const diskStopGrace = time.Second

// failStopStatus is ballotd's exit status when its stable storage fails.
const failStopStatus = 1

// eioText is how the replica's log spells the injected error.
const eioText = "input/output error"

// faultBuildMarker is what a ballotfaults build logs at start when its disk is
// set to fail (server/server.go); the release build ignores BALLOT_FAULTS.
const faultBuildMarker = "FAULT disk"

// diskTrigger is the file whose existence makes replica id's disk fail.
func (c *Cluster) diskTrigger(id int) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("disk-%d-fails", id))
}

// newDiskRNG returns the source of a cluster's disk failures, from its seed.
func newDiskRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6469736b)) }

// drawDiskFault draws how the disk of a process about to start will fail:
// the write or the fsync of its store, after 0 to 3 more that succeed.
func (c *Cluster) drawDiskFault() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := "write"
	if c.diskRNG.IntN(2) == 0 {
		op = "fsync"
	}
	return fmt.Sprintf("%s-error-after=%d", op, c.diskRNG.IntN(4))
}

// withFaults returns env with items added to its BALLOT_FAULTS, or with a
// BALLOT_FAULTS of items if it has none. env is not modified.
func withFaults(env []string, items string) []string {
	const name = "BALLOT_FAULTS="
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name); ok && !found {
			found = true
			if v != "" {
				items = v + "," + items
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, name+items)
}

// DiskFailure is a disk failure armed in one process of a replica.
type DiskFailure struct {
	ID int
	// Fault is the BALLOT_FAULTS item the process started with:
	// fsync-error-after=2, say.
	Fault string
	// StoreFile is the file whose writes fail; the replica's log must name it.
	StoreFile string
	Armed     time.Time

	cmd     *exec.Cmd
	done    chan struct{}
	exitAt  chan time.Time // receives when the process exited
	logPath string
	logAt   int64 // the log's size when the failure was armed
}

// FailDisk makes replica id's disk fail from now on, as the process started
// with DiskFaults says. The replica must be running and not paused. Its exit
// from then on is no trouble (see Trouble); whether it is the fail-stop it must
// be is for AwaitDiskStop to say.
func (c *Cluster) FailDisk(id int) (*DiskFailure, error) {
	if !c.cfg.DiskFaults {
		return nil, fmt.Errorf("fail the disk of replica %d: the cluster was started without DiskFaults", id)
	}
	r := c.Replica(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.runningLocked():
		return nil, fmt.Errorf("fail the disk of replica %d: it is not running", id)
	case r.paused:
		return nil, fmt.Errorf("fail the disk of replica %d: it is paused", id)
	}
	f := &DiskFailure{ID: id, Fault: r.diskFault, StoreFile: filepath.Join(r.DataDir, store.FileName),
		cmd: r.cmd, done: r.done, exitAt: make(chan time.Time, 1), logPath: r.LogPath}
	if fi, err := os.Stat(r.LogPath); err == nil {
		f.logAt = fi.Size()
	}
	r.armed.Store(true)
	f.Armed = time.Now()
	if err := os.WriteFile(c.diskTrigger(id), nil, 0o644); err != nil {
		r.armed.Store(false)
		return nil, fmt.Errorf("fail the disk of replica %d: %w", id, err)
	}
	// The time of the exit, which AwaitDiskStop may learn only later. done
	// is closed however the process ends (Close kills it), so this ends.
	go func() {
		<-f.done
		f.exitAt <- time.Now()
	}()
	if lf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(lf, "=== chaos: disk of replica %d fails from %s (%s)\n", id, f.Armed.Format(time.RFC3339Nano), f.Fault)
		lf.Close()
	}
	return f, nil
}

// diskStop is how a process met the failure of its disk.
type diskStop struct {
	exited bool
	status int           // its exit status, -1 if a signal ended it
	after  time.Duration // from arming to exit, or to giving up
	// namesFile: its log, since the failure was armed, names the store file
	// and the error.
	namesFile bool
	// historyOver: the clients had stopped before it exited or the bound
	// passed, so it may have had nothing to write.
	historyOver bool
	// faultBuild: its log shows that the binary has the fault layer.
	faultBuild bool
}

// AwaitDiskStop waits for the process f struck to exit, until bound after the
// failure was armed, or for a moment once ctx (the history) ends; it kills a
// process that is still running (so that the replica can be restarted with a
// working disk). It returns what happened, and an error if the replica did not
// fail-stop as it must: exit with status 1, its log naming the store file and
// the error.
func (c *Cluster) AwaitDiskStop(ctx context.Context, f *DiskFailure, bound time.Duration) (string, error) {
	s := diskStop{}
	timer := time.NewTimer(time.Until(f.Armed.Add(bound)))
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
	case <-ctx.Done():
		grace := time.NewTimer(min(diskStopGrace, time.Until(f.Armed.Add(bound))))
		select {
		case <-f.done:
		case <-grace.C:
		}
		grace.Stop()
	}
	select {
	case <-f.done:
		// cmd.Wait has set ProcessState before done was closed; the exit
		// time is sent right after.
		at := <-f.exitAt
		s.exited, s.status, s.after = true, f.cmd.ProcessState.ExitCode(), at.Sub(f.Armed)
	default:
		s.after = time.Since(f.Armed)
	}
	s.historyOver = ctx.Err() != nil
	s.namesFile = logContainsSince(f.logPath, f.logAt, f.StoreFile) && logContainsSince(f.logPath, f.logAt, eioText)
	s.faultBuild = logContainsSince(f.logPath, 0, faultBuildMarker)
	if !s.exited {
		if err := c.Kill(f.ID); err != nil {
			return "", err
		}
	}
	return judgeDiskStop(f, s)
}

// judgeDiskStop says what s shows of the failure f, and returns an error if
// the replica did not fail-stop: it did not exit (unless the history ended
// first), exited with another status than 1, or did not name the store file
// and the error in its log.
func judgeDiskStop(f *DiskFailure, s diskStop) (string, error) {
	took := s.after.Round(time.Millisecond)
	switch {
	case !s.exited && s.historyOver:
		return fmt.Sprintf("the history ended before replica %d met its failing disk (%s after): killed", f.ID, took), nil
	case !s.exited:
		err := fmt.Errorf("replica %d still ran %s after its disk began to fail (%s): killed", f.ID, took, f.Fault)
		if !s.faultBuild {
			err = fmt.Errorf("%w; its log never says %q at start: is ballotd built with -tags ballotfaults?", err, faultBuildMarker)
		}
		return "", err
	case s.status != failStopStatus:
		return "", fmt.Errorf("replica %d exited with status %d %s after its disk began to fail (%s), want %d", f.ID, s.status, took,
			f.Fault, failStopStatus)
	case !s.namesFile:
		return "", fmt.Errorf("replica %d exited with status %d %s after its disk began to fail (%s), but its log does not name %s and %q",
			f.ID, s.status, took, f.Fault, f.StoreFile, eioText)
	}
	return fmt.Sprintf("replica %d exited with status %d %s later, its log naming %s and %q", f.ID, s.status, took, f.StoreFile, eioText), nil
}

// diskFault fails the disk of one running, unpaused member (the leader half the
// time). Its heal waits for the replica to fail-stop (see AwaitDiskStop),
// records the fault as not honoured if it does not, and restarts it on the same
// data directory with a working disk.
func (n *Nemesis) diskFault(ctx context.Context, ids []int, leader int) (string, func() error, error) {
	var candidates []int
	for _, id := range ids {
		if n.c.Running(id) && !n.c.Paused(id) {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return "", nil, fmt.Errorf("no member of %v is running to fail the disk of", ids)
	}
	victim := candidates[n.rng.IntN(len(candidates))]
	if leader != 0 && n.rng.IntN(2) == 0 && slices.Contains(candidates, leader) {
		victim = leader
	}
	role := fmt.Sprintf("follower %d (leader %d)", victim, leader)
	if victim == leader {
		role = fmt.Sprintf("leader %d", victim)
	}
	f, err := n.c.FailDisk(victim)
	if err != nil {
		return "", nil, err
	}
	heal := func() error {
		outcome, err := n.c.AwaitDiskStop(ctx, f, n.cfg.DiskStopBound)
		if err != nil {
			outcome = "FAULT NOT HONOURED: " + err.Error()
			n.mu.Lock()
			n.unhonoured = append(n.unhonoured, fmt.Sprintf("disk fault at +%s: %v",
				time.Duration(n.h.Now()).Round(time.Millisecond), err))
			n.mu.Unlock()
		}
		n.setOutcome(FaultDisk, outcome+"; restarted")
		return n.c.Start(victim)
	}
	return fmt.Sprintf("disk of %s fails: %s of %s; restart it after", role, f.Fault, f.StoreFile), heal, nil
}
