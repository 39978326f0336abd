package proc

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses; fields count from the last ')'.
	line := "4242 (ballotd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0\n"
	got, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 325 * clockTick(); got != want {
		t.Errorf("utime+stime = %v, want %v (325 ticks)", got, want)
	}
	for _, bad := range []string{"", "4242 ballotd S 1", "1 (a) S 1 2 3", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 75 0"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
}

func TestProcessCPUOfThisProcess(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the counter moves (bounded, in case it never does).
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if now, err := ProcessCPU(os.Getpid()); err == nil && now > before {
			return
		}
	}
	t.Fatalf("CPU time did not grow after 5s of work (%d)", x)
}

func TestParseMachineStat(t *testing.T) {
	data := "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\ncpu1 50 3 25 500 10 2 1 1 0 0\nintr 1 2 3\n"
	busy, cpus, err := ParseMachineStat([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal; idle and iowait are not busy.
	if want := 161 * clockTick(); busy != want || cpus != 2 {
		t.Errorf("busy %v on %d CPUs, want %v on 2", busy, cpus, want)
	}
	if _, _, err := ParseMachineStat([]byte("intr 1\n")); err == nil {
		t.Error("no cpu line accepted")
	}
}

func TestBetween(t *testing.T) {
	t0 := time.Now()
	a := Snapshot{At: t0, Procs: []time.Duration{time.Second, 2 * time.Second}, Self: time.Second, Machine: 10 * time.Second, CPUs: 2}
	b := Snapshot{At: t0.Add(2 * time.Second), Procs: []time.Duration{2 * time.Second, 3 * time.Second},
		Self: 1500 * time.Millisecond, Machine: 13500 * time.Millisecond, CPUs: 2}
	u := Between(a, b)
	if u.Procs != 2*time.Second || u.Self != 500*time.Millisecond || u.Others != time.Second {
		t.Errorf("procs %v, self %v, others %v; want 2s, 500ms, 1s", u.Procs, u.Self, u.Others)
	}
	if got := u.OthersShare(); got != 0.25 {
		t.Errorf("others' share %v, want 0.25 (1s of 2 CPUs × 2s)", got)
	}
}

func TestTakeSnapshotOfThisProcess(t *testing.T) {
	s, err := TakeSnapshot([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Procs) != 1 || s.CPUs < 1 || s.Machine <= 0 {
		t.Errorf("snapshot %+v: want one process, at least one CPU and a busy machine", s)
	}
	if _, err := TakeSnapshot([]int{-1}); err == nil {
		t.Error("snapshot of pid -1 succeeded")
	}
}
