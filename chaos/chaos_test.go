package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The ballotd builds, made once by TestMain: the release build, and one with the
// ballotfaults tag whose deliberate bugs and failing disks BALLOT_FAULTS turns
// on.
var (
	ballotd       string
	ballotdFaults string
)

// binaryFor returns the build a fault mix needs: the ballotfaults build if it
// has the disk fault (with only disk faults in BALLOT_FAULTS it behaves as
// the release build until a disk fails), the release build otherwise.
func binaryFor(faults []FaultKind) string {
	if slices.Contains(faults, FaultDisk) {
		return ballotdFaults
	}
	return ballotd
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ballot-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ballotd = filepath.Join(dir, "ballotd")
	ballotdFaults = filepath.Join(dir, "ballotd-faults")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ out, tags string }{{ballotd, ""}, {ballotdFaults, "ballotfaults"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = build(b.out, b.tags)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	return m.Run()
}

// build builds ballotd into out from the module root, with -race if CHAOS_RACE=1.
func build(out, tags string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if os.Getenv("CHAOS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./server/cmd/ballotd")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// settings are the knobs of a campaign, from the environment.
type settings struct {
	seed     uint64
	duration time.Duration // whole campaign (long runs)
	history  time.Duration // one history
	replicas int
	// spares is RunConfig.Spares: 0 for its default.
	spares  int
	clients int
	faults  []FaultKind
	// compaction is the replicas' snapshot and compaction flags.
	compaction Compaction
	out        string
}

func loadSettings(t *testing.T, defaultDuration time.Duration) settings {
	t.Helper()
	s := settings{
		seed:     uint64(time.Now().UnixNano() % 1_000_000_000),
		duration: defaultDuration,
		history:  60 * time.Second,
		replicas: 5,
		clients:  8,
		faults:   AllFaults,
		// Aggressive, so that every history snapshots, compacts and
		// transfers snapshots many times.
		compaction: AggressiveCompaction,
		out:        filepath.Join(os.TempDir(), "ballot-chaos"),
	}
	env := func(name string, parse func(string) error) {
		if v := os.Getenv(name); v != "" {
			if err := parse(v); err != nil {
				t.Fatalf("%s=%q: %v", name, v, err)
			}
		}
	}
	env("CHAOS_SEED", func(v string) (err error) { s.seed, err = strconv.ParseUint(v, 10, 64); return })
	env("CHAOS_DURATION", func(v string) (err error) { s.duration, err = time.ParseDuration(v); return })
	env("CHAOS_HISTORY", func(v string) (err error) { s.history, err = time.ParseDuration(v); return })
	env("CHAOS_REPLICAS", func(v string) (err error) {
		s.replicas, err = strconv.Atoi(v)
		if err == nil && s.replicas < 3 {
			err = errors.New("need at least 3 replicas")
		}
		return
	})
	env("CHAOS_SPARES", func(v string) (err error) {
		s.spares, err = strconv.Atoi(v)
		if err == nil && s.spares < 1 {
			err = errors.New("need at least 1 spare (leave out reconfigure from the mix for none)")
		}
		return
	})
	env("CHAOS_CLIENTS", func(v string) (err error) {
		s.clients, err = strconv.Atoi(v)
		if err == nil && s.clients < 1 {
			err = errors.New("need at least 1 client")
		}
		return
	})
	env("CHAOS_FAULTS", func(v string) (err error) { s.faults, err = ParseFaults(v); return })
	env("CHAOS_COMPACTION", func(v string) (err error) { s.compaction, err = ParseCompaction(v); return })
	env("CHAOS_OUT", func(v string) error { s.out = v; return nil })
	return s
}

// TestChaosShort runs one history with every kind of fault, wipes, membership
// changes and disk failures included, and compaction as aggressive as the
// campaign's, and requires it to be linearizable, to lose no acknowledged
// write, to end with every member holding the same data, and every replica
// whose disk failed to have stopped as it must. The replicas are the
// ballotfaults build when the mix has disk faults, the release build otherwise.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the chaos campaign runs real replicas for about 40s")
	}
	s := loadSettings(t, 0)
	t.Logf("seed %d (replay with CHAOS_SEED=%d), faults %v, compaction %s", s.seed, s.seed, s.faults, s.compaction)
	res, err := RunHistory(context.Background(), RunConfig{
		Binary:     binaryFor(s.faults),
		Replicas:   s.replicas,
		Spares:     s.spares,
		Compaction: s.compaction,
		Dir:        t.TempDir(),
		OutDir:     s.out,
		Name:       fmt.Sprintf("short-seed%d", s.seed),
		Seed:       s.seed,
		Duration:   35 * time.Second,
		Workload:   WorkloadConfig{Clients: s.clients},
		// Ten kinds of fault take about 33s to come round once: the three
		// whose effects are checked below come first.
		Nemesis: NemesisConfig{Faults: s.faults, Early: []FaultKind{FaultWipe, FaultReconfigure, FaultDisk}},
		// Generous: under -race on two cores the checker is slower, and
		// Unknown would fail the test.
		CheckTimeout: 30 * time.Second,
		Logf:         t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	requireClean(t, res)
	if res.Writes < 50 || res.Reads < 50 {
		t.Errorf("only %d acknowledged writes and %d reads: the clients hardly ran, so the check proves little", res.Writes, res.Reads)
	}
	if res.Faults < 3 {
		t.Errorf("only %d faults injected", res.Faults)
	}
	// The nemesis deals wipe and reconfigure among its first faults.
	if slices.Contains(s.faults, FaultWipe) && res.Wipes == 0 {
		t.Errorf("no replica was wiped in %d faults", res.Faults)
	}
	switch {
	case res.WipedMembers > 0 && res.AfterWipe == 0:
		t.Errorf("%d wipes, yet no wiped replica answered an operation afterwards", res.Wipes)
	case res.Wipes > 0 && res.WipedMembers == 0:
		// A change removed every wiped replica once it had rebuilt.
		t.Logf("no wiped replica was still a member at the end: what they served after rebuilding went unchecked")
	}
	if slices.Contains(s.faults, FaultReconfigure) {
		if res.Replacements == 0 {
			t.Errorf("no member was replaced by a spare in %d faults (%d changes committed)", res.Faults, res.Changes)
		}
		if res.AfterJoin == 0 {
			t.Errorf("%d changes, yet no added replica answered an operation", res.Changes)
		}
	}
	// Whether each disk fault was honoured, requireClean has checked.
	if slices.Contains(s.faults, FaultDisk) && res.DiskFaults == 0 {
		t.Errorf("no replica's disk failed in %d faults", res.Faults)
	}
	if s.compaction == AggressiveCompaction && res.Compaction.Snapshots == 0 {
		t.Errorf("compaction %s, yet no replica logged a snapshot in %d acknowledged writes", s.compaction, res.Writes)
	}
}

// requireClean fails the test for anything res shows went wrong.
func requireClean(t *testing.T, res Result) {
	t.Helper()
	if res.Verdict != porcupine.Ok {
		t.Errorf("porcupine: %s (not linearizable, or undecided in time); see %s", res.Verdict, res.Artifacts)
	}
	for _, d := range res.LostDetail {
		t.Errorf("lost acknowledged writes: %s", d)
	}
	if res.Diverged != "" {
		t.Errorf("replicas disagree: %s", res.Diverged)
	}
	for _, u := range res.Unhonoured {
		t.Errorf("fault not honoured: %s", u)
	}
	for _, p := range res.Problems {
		t.Errorf("%s", p)
	}
	if res.Artifacts != "" {
		t.Logf("evidence (porcupine's history.html, schedule.txt, history.txt, replica logs): %s", res.Artifacts)
	}
}

// TestChaosLong is the long campaign behind `make chaos`: histories of
// CHAOS_HISTORY each (60s) for CHAOS_DURATION in all, each on a fresh cluster
// and checked on its own. It runs only when CHAOS_LONG=1, and ends by writing
// one summary line to CHAOS_OUT/summary.txt.
func TestChaosLong(t *testing.T) {
	if os.Getenv("CHAOS_LONG") != "1" {
		t.Skip("the long chaos campaign runs only with CHAOS_LONG=1 (make chaos)")
	}
	s := loadSettings(t, 10*time.Minute)
	t.Logf("seed %d", s.seed)
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	progress, err := os.OpenFile(filepath.Join(s.out, "progress.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer progress.Close()
	var mu sync.Mutex // guards progress writes
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(progress, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	if dl, ok := t.Deadline(); ok {
		// Each history needs its duration plus start, healing and checking.
		count := int((s.duration + s.history - 1) / s.history)
		if need := s.duration + time.Duration(count)*(s.history/2+90*time.Second); time.Until(dl) < need {
			t.Fatalf("go test -timeout leaves %s; a %s campaign may need %s (raise the timeout)", time.Until(dl).Round(time.Second), s.duration, need)
		}
	}
	logf("campaign: seed %d, %s in histories of %s, %d replicas, %d clients, faults %v, compaction %s",
		s.seed, s.duration, s.history, s.replicas, s.clients, s.faults, s.compaction)
	t.Logf("seed %d; progress in %s", s.seed, progress.Name())

	var histories, ops, faults, changes, violations, lost, unhonoured int
	// The summary is written however the campaign ends.
	defer func() {
		summary := fmt.Sprintf("chaos: histories=%d ops=%d faults=%d changes=%d violations=%d lost=%d unhonoured=%d seed=%d replicas=%d compaction=%s",
			histories, ops, faults, changes, violations, lost, unhonoured, s.seed, s.replicas, s.compaction.Name())
		logf("%s", summary)
		t.Log(summary)
		if err := os.WriteFile(filepath.Join(s.out, "summary.txt"), []byte(summary+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}()
	begin := time.Now()
	for i := 0; time.Since(begin) < s.duration; i++ {
		d := min(s.history, s.duration-time.Since(begin))
		if d < 5*time.Second {
			break
		}
		seed := s.seed + uint64(i)
		res, err := RunHistory(context.Background(), RunConfig{
			Binary:       binaryFor(s.faults),
			Replicas:     s.replicas,
			Spares:       s.spares,
			Compaction:   s.compaction,
			Dir:          t.TempDir(),
			OutDir:       s.out,
			Name:         fmt.Sprintf("long-seed%d-h%03d", s.seed, i),
			Seed:         seed,
			Duration:     d,
			Workload:     WorkloadConfig{Clients: s.clients},
			Nemesis:      NemesisConfig{Faults: s.faults},
			CheckTimeout: 2 * time.Minute,
			Logf:         logf,
		})
		if err != nil {
			t.Fatalf("history %d: %v", i, err)
		}
		histories++
		ops += res.Reads + res.Writes + res.Unknown
		faults += res.Faults
		changes += res.Changes
		lost += res.Lost
		unhonoured += len(res.Unhonoured)
		if res.Violation() {
			violations++
		}
		logf("%s", res)
		t.Log(res)
		requireClean(t, res)
	}
}

// TestCheckerCatchesLocalReads proves the checker can fail: replicas built with
// the ballotfaults tag and BALLOT_FAULTS=local-reads answer linearizable reads
// from their local copy without confirming leadership. Readers ask a random
// replica each time while writers hammer the same keys, so a follower (which
// applies a write only on the next heartbeat) or a cut-off old leader answers
// with a value older than an acknowledged write; porcupine must say Illegal.
func TestCheckerCatchesLocalReads(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := loadSettings(t, 0)
	res, err := RunHistory(context.Background(), RunConfig{
		Binary:   ballotdFaults,
		Env:      []string{"BALLOT_FAULTS=local-reads"},
		Replicas: s.replicas,
		Dir:      t.TempDir(),
		OutDir:   t.TempDir(),
		Name:     fmt.Sprintf("local-reads-seed%d", s.seed),
		Seed:     s.seed,
		Duration: 8 * time.Second,
		Workload: WorkloadConfig{Clients: 8, Keys: []string{"a", "b", "c"}, RandomReads: true, ReadRatio: 0.5, RemoveRatio: 0.1,
			// Writes with unknown outcomes make proving a violation slow.
			GiveUp: -1},
		Nemesis: NemesisConfig{Faults: []FaultKind{FaultPartition}, MinHold: time.Second, MaxHold: 2 * time.Second,
			MinQuiet: 300 * time.Millisecond, MaxQuiet: 800 * time.Millisecond, Combine: -1},
		CheckTimeout: 30 * time.Second,
		Logf:         t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Verdict != porcupine.Illegal {
		t.Fatalf("porcupine says %s for replicas that answer linearizable reads from their local copy; want %s", res.Verdict, porcupine.Illegal)
	}
	requireEvidence(t, res)
}

// TestCheckerCatchesForgottenPromises proves the checks catch an acceptor that
// forgets its promises and accepted entries on restart
// (BALLOT_FAULTS=forget-promises): majorities, the leader among them, are
// killed with SIGKILL and restarted while clients write, so entries a majority
// had accepted are forgotten and a new leader fills their slots with something
// else. The history must be found non-linearizable, or acknowledged writes lost,
// or replicas disagreeing.
func TestCheckerCatchesForgottenPromises(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := loadSettings(t, 0)
	res, err := RunHistory(context.Background(), RunConfig{
		Binary:   ballotdFaults,
		Env:      []string{"BALLOT_FAULTS=forget-promises"},
		Replicas: s.replicas,
		Dir:      t.TempDir(),
		OutDir:   t.TempDir(),
		Name:     fmt.Sprintf("forget-promises-seed%d", s.seed),
		Seed:     s.seed,
		Duration: 15 * time.Second,
		Workload: WorkloadConfig{Clients: 8, Keys: []string{"a", "b", "c"}, ReadRatio: 0.4, RemoveRatio: 0.1,
			GiveUp: -1},
		Nemesis: NemesisConfig{Faults: []FaultKind{FaultKillMajority}, MinHold: 100 * time.Millisecond, MaxHold: 600 * time.Millisecond,
			MinQuiet: 500 * time.Millisecond, MaxQuiet: 1500 * time.Millisecond, Combine: -1, IsolateBeforeKill: 1},
		CheckTimeout: 30 * time.Second,
		// Replicas that forgot what they accepted may never agree again; the
		// verdict does not need them to.
		SettleTimeout: 5 * time.Second,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if !res.Violation() && res.Lost == 0 {
		t.Fatalf("replicas that forget their promises on restart passed every check: verdict %s, lost %d, diverged %q",
			res.Verdict, res.Lost, res.Diverged)
	}
	requireEvidence(t, res)
}

// TestCheckerCatchesIgnoredDiskFaults proves that a disk fault the replicas do
// not honour is caught: the release build ignores BALLOT_FAULTS, so a replica
// whose disk was made to fail goes on running, and every such fault must be
// reported as not honoured, in the result and in the evidence.
func TestCheckerCatchesIgnoredDiskFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := loadSettings(t, 0)
	res, err := RunHistory(context.Background(), RunConfig{
		Binary:   ballotd,
		Replicas: 3,
		Dir:      t.TempDir(),
		OutDir:   t.TempDir(),
		Name:     fmt.Sprintf("ignored-disk-faults-seed%d", s.seed),
		Seed:     s.seed,
		Duration: 4 * time.Second,
		Workload: WorkloadConfig{Clients: 4},
		Nemesis: NemesisConfig{Faults: []FaultKind{FaultDisk}, MinHold: 500 * time.Millisecond, MaxHold: time.Second,
			MinQuiet: 100 * time.Millisecond, MaxQuiet: 300 * time.Millisecond, DiskStopBound: time.Second},
		CheckTimeout: 30 * time.Second,
		Logf:         t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.DiskFaults == 0 {
		t.Fatal("no disk fault injected")
	}
	if len(res.Unhonoured) == 0 {
		t.Fatalf("%d disk faults against the release build, which ignores them, and none was reported as not honoured", res.DiskFaults)
	}
	for _, u := range res.Unhonoured {
		if !strings.Contains(u, "still ran") || !strings.Contains(u, "ballotfaults") {
			t.Errorf("not honoured: %q, want it to say the replica still ran and to ask whether it is a ballotfaults build", u)
		}
	}
	requireEvidence(t, res)
	summary, err := os.ReadFile(filepath.Join(res.Artifacts, "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(summary), "FAULT NOT HONOURED") {
		t.Errorf("the evidence's summary does not report the fault not honoured:\n%s", summary)
	}
}

// requireEvidence checks that a failed history left its evidence behind.
func requireEvidence(t *testing.T, res Result) {
	t.Helper()
	if res.Artifacts == "" {
		t.Fatal("a failed history wrote no evidence")
	}
	for _, name := range []string{"history.html", "schedule.txt", "history.txt", "summary.txt"} {
		fi, err := os.Stat(filepath.Join(res.Artifacts, name))
		if err != nil {
			t.Errorf("evidence: %v", err)
		} else if fi.Size() == 0 {
			t.Errorf("evidence: %s is empty", name)
		}
	}
}
