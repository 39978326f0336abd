package chaos

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWithFaults checks that the disk fault's items join a BALLOT_FAULTS
// already given (the checker-proving faults) rather than replace it, and that
// the caller's environment is left as it was.
func TestWithFaults(t *testing.T) {
	for _, tc := range []struct {
		env, want []string
	}{
		{nil, []string{"BALLOT_FAULTS=disk"}},
		{[]string{"A=1"}, []string{"A=1", "BALLOT_FAULTS=disk"}},
		{[]string{"BALLOT_FAULTS=local-reads", "A=1"}, []string{"A=1", "BALLOT_FAULTS=local-reads,disk"}},
		{[]string{"BALLOT_FAULTS="}, []string{"BALLOT_FAULTS=disk"}},
	} {
		before := slices.Clone(tc.env)
		if got := withFaults(tc.env, "disk"); !slices.Equal(got, tc.want) {
			t.Errorf("withFaults(%q) = %q, want %q", tc.env, got, tc.want)
		}
		if !slices.Equal(tc.env, before) {
			t.Errorf("withFaults changed its argument to %q", tc.env)
		}
	}
}

// TestDrawDiskFault checks that each start's disk failure is a write or an
// fsync failure after 0 to 3 more, and that both kinds come.
func TestDrawDiskFault(t *testing.T) {
	c := &Cluster{}
	c.cfg.Seed = 5
	c.diskRNG = newDiskRNG(c.cfg.Seed)
	valid := regexp.MustCompile(`^(write|fsync)-error-after=[0-3]$`)
	seen := make(map[string]bool)
	for range 200 {
		f := c.drawDiskFault()
		if !valid.MatchString(f) {
			t.Fatalf("drew %q", f)
		}
		seen[f] = true
	}
	if len(seen) != 8 {
		t.Errorf("200 draws gave only %v", seen)
	}
}

// TestJudgeDiskStop checks what counts as a replica honouring its failing
// disk: exit status 1 and a log naming the store file and EIO; and that a
// replica still running is excused only when the history ended first.
func TestJudgeDiskStop(t *testing.T) {
	f := &DiskFailure{ID: 2, Fault: "fsync-error-after=1", StoreFile: "/d/data-2/ballot.db"}
	ok := diskStop{exited: true, status: 1, after: 4 * time.Millisecond, namesFile: true, faultBuild: true}
	for _, tc := range []struct {
		name    string
		change  func(*diskStop)
		failure string // "" if honoured
		outcome string
	}{
		{"fail-stop", func(*diskStop) {}, "", "replica 2 exited with status 1 4ms later"},
		{"status 0", func(s *diskStop) { s.status = 0 }, "exited with status 0", ""},
		{"killed by a signal", func(s *diskStop) { s.status = -1 }, "exited with status -1", ""},
		{"status 2", func(s *diskStop) { s.status = 2 }, "want 1", ""},
		{"log silent", func(s *diskStop) { s.namesFile = false }, "does not name /d/data-2/ballot.db", ""},
		{"still running", func(s *diskStop) { s.exited, s.after = false, 10*time.Second }, "still ran 10s", ""},
		{"release build", func(s *diskStop) { s.exited, s.faultBuild = false, false }, "ballotfaults", ""},
		{"history over", func(s *diskStop) { s.exited, s.historyOver = false, true }, "", "the history ended before"},
		{"history over, exit 0", func(s *diskStop) { s.status, s.historyOver = 0, true }, "exited with status 0", ""},
	} {
		s := ok
		tc.change(&s)
		outcome, err := judgeDiskStop(f, s)
		switch {
		case tc.failure == "" && err != nil:
			t.Errorf("%s: not honoured: %v", tc.name, err)
		case tc.failure != "" && (err == nil || !strings.Contains(err.Error(), tc.failure)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.failure)
		case tc.failure == "" && !strings.Contains(outcome, tc.outcome):
			t.Errorf("%s: outcome %q, want it to say %q", tc.name, outcome, tc.outcome)
		}
	}
}

// TestOverlapKeepsDiskVictimRunning checks which kinds may overlap: a disk
// failure never with a fault that kills, stops or wipes replicas (its victim
// must be running to meet it, and stop by itself), two link faults never, and
// the relation is symmetric.
func TestOverlapKeepsDiskVictimRunning(t *testing.T) {
	for _, a := range AllFaults {
		for _, b := range AllFaults {
			if overlap(a, b) != overlap(b, a) {
				t.Errorf("overlap(%s, %s) != overlap(%s, %s)", a, b, b, a)
			}
		}
	}
	for _, k := range []FaultKind{FaultDisk, FaultKill, FaultKillMajority, FaultPause, FaultWipe} {
		if overlap(FaultDisk, k) {
			t.Errorf("disk may overlap %s", k)
		}
	}
	for _, k := range []FaultKind{FaultPartition, FaultOneWay, FaultDelay, FaultDrop, FaultReconfigure} {
		if !overlap(FaultDisk, k) {
			t.Errorf("disk may not overlap %s", k)
		}
	}
	if overlap(FaultPartition, FaultDelay) || overlap(FaultKill, FaultKillMajority) {
		t.Error("two link faults, or kill and kill-majority, may overlap")
	}
	if !overlap(FaultKill, FaultPartition) || !overlap(FaultWipe, FaultPause) {
		t.Error("kill and partition, or wipe and pause, may not overlap")
	}
}
