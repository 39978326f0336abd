package main

import (
	"bytes"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses; fields count from the last ')'.
	line := "4242 (ballotd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 325 * clockTick; got != want {
		t.Errorf("utime+stime = %v, want %v (325 ticks)", got, want)
	}
	for _, bad := range []string{"", "4242 ballotd S 1", "1 (a) S 1 2 3", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 75 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

func TestProcessCPUOfThisProcess(t *testing.T) {
	before, err := processCPU(os.Getpid())
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
		if now, err := processCPU(os.Getpid()); err == nil && now > before {
			return
		}
	}
	t.Fatalf("CPU time did not grow after 5s of work (%d)", x)
}

func TestParseMachineStat(t *testing.T) {
	data := "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\ncpu1 50 3 25 500 10 2 1 1 0 0\nintr 1 2 3\n"
	busy, cpus, err := parseMachineStat([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal; idle and iowait are not busy.
	if want := 161 * clockTick; busy != want || cpus != 2 {
		t.Errorf("busy %v on %d CPUs, want %v on 2", busy, cpus, want)
	}
	if _, _, err := parseMachineStat([]byte("intr 1\n")); err == nil {
		t.Error("no cpu line accepted")
	}
}

func TestCPUBetween(t *testing.T) {
	t0 := time.Now()
	a := cpuSnapshot{at: t0, replicas: []time.Duration{time.Second, 2 * time.Second}, self: time.Second, machine: 10 * time.Second, cpus: 2}
	b := cpuSnapshot{at: t0.Add(2 * time.Second), replicas: []time.Duration{2 * time.Second, 3 * time.Second},
		self: 1500 * time.Millisecond, machine: 13500 * time.Millisecond, cpus: 2}
	u := cpuBetween(a, b)
	if u.replicas != 2*time.Second || u.self != 500*time.Millisecond || u.others != time.Second {
		t.Errorf("replicas %v, self %v, others %v; want 2s, 500ms, 1s", u.replicas, u.self, u.others)
	}
	if got := u.othersShare(); got != 0.25 {
		t.Errorf("others' share %v, want 0.25 (1s of 2 CPUs × 2s)", got)
	}
}

func TestParseSettings(t *testing.T) {
	env := map[string]string{"BENCH_REPLICAS": "3", "BENCH_CLIENTS": "16, 64", "BENCH_VALUES": "100", "BENCH_OPS": "PUT,stale",
		"BENCH_DURATION": "2s"}
	s, err := parseSettings(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.replicas) != 1 || s.replicas[0] != 3 || len(s.clients) != 2 || s.clients[1] != 64 ||
		strings.Join(s.ops, ",") != "put,stale" || s.duration != 2*time.Second || s.warmup != time.Second {
		t.Errorf("settings %+v", s)
	}
	// A flag overrides the environment.
	s, err = parseSettings([]string{"-replicas", "1,5"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || len(s.replicas) != 2 || s.replicas[1] != 5 {
		t.Errorf("flag override: %+v, %v", s.replicas, err)
	}
	for _, bad := range []map[string]string{
		{"BENCH_REPLICAS": "0"}, {"BENCH_CLIENTS": "x"}, {"BENCH_OPS": "scan"}, {"BENCH_DURATION": "-1s"}, {"BENCH_VALUES": ","},
	} {
		if _, err := parseSettings(nil, func(k string) string { return bad[k] }, io.Discard); err == nil {
			t.Errorf("settings from %v accepted", bad)
		}
	}
	// The defaults are the full matrix.
	s, err = parseSettings(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := &matrix{s: s}
	if n := len(m.cells()); n != 3*4*2*3 {
		t.Errorf("default matrix has %d cells, want 72", n)
	}
}

func TestReports(t *testing.T) {
	s, err := parseSettings([]string{"-replicas", "1 3", "-clients", "1 64", "-values", "100", "-ops", "put get"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := &matrix{s: s, started: time.Now()}
	for i, c := range m.cells() {
		r := cellResult{cell: c, OpsPerSec: float64(1000 * (i + 1)), Ops: 5000, P50Ms: 1, P99Ms: 9.5, ServerCPUUsPerOp: 150}
		if i == 1 {
			r = cellResult{cell: c, Error: "start cluster: no leader"}
		}
		m.results = append(m.results, r)
	}
	base := filepath.Join(t.TempDir(), "bench-test")
	paths, err := m.write(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("wrote %v, want md, json and two PNGs", paths)
	}
	md, err := os.ReadFile(base + ".md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 3 | put | 100 B | 64 | 6,000 |",         // a cell's row, with thousands separators
		"| 1 | put | 100 B |",                      // the summary table
		"failed",                                   // the failed cell
		"start cluster: no leader",                 // and why
		referenceSource,                            // the etcd figures' source
		"| put | 64 | 3.4.23 | 7,000 |",            // an etcd figure
		"replica CPU µs/op",                        // the CPU column
		"/proc/PID/stat",                           // how it is measured
		"| linearizable get | 64 | 3.4.23 | 9,400", // reference for gets
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, p := range []string{base + ".png", base + "-cpu.png"} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 25344.4: "25,344", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}
