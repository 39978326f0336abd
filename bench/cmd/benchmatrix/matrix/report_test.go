package matrix

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testSystem is a System whose reports can be written without starting anything.
func testSystem(name, label, node string) System {
	return System{Program: "test", Name: name, Label: label, Node: node, Process: "server", Server: "`server`",
		Clients: "every client with its own connection", FilePrefix: "test"}
}

// reportOf writes the reports of a small matrix with made-up results, the second
// cell failed, and returns the markdown and the base path.
func reportOf(t *testing.T, sys System) (string, string) {
	t.Helper()
	s, err := ParseSettings("test", []string{"-replicas", "1 3", "-clients", "1 64", "-values", "100", "-ops", "put get"},
		func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &Matrix{Sys: sys, S: s, started: time.Now()}
	for i, c := range m.Cells() {
		r := Result{Cell: c, OpsPerSec: float64(1000 * (i + 1)), Ops: 5000, P50Ms: 1, P99Ms: 9.5, ServerCPUUsPerOp: 150}
		if i == 1 {
			r = Result{Cell: c, Error: "start cluster: no leader"}
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
	return string(md), base
}

func TestReports(t *testing.T) {
	md, base := reportOf(t, testSystem("Ballot", "", "replica"))
	for _, want := range []string{
		"# Ballot benchmark matrix",
		"| 3 | put | 100 B | 64 | 6,000 |", // a cell's row, with thousands separators
		"| replicas | operation | value |", // the summary table
		"| 1 | put | 100 B |",              // and a row of it
		"failed",                           // the failed cell
		"1 replica, put, 100-byte values, 64 clients: start cluster: no leader", // and why
		referenceSource,                            // the etcd figures' source
		"| put | 64 | 3.4.23 | 7,000 |",            // an etcd figure
		"replica CPU µs/op",                        // the CPU column
		"/proc/PID/stat",                           // how it is measured
		"| linearizable get | 64 | 3.4.23 | 9,400", // reference for gets
		"Ballot ops/s (p99 ms) | Ballot replica CPU µs/op",
	} {
		if !bytes.Contains([]byte(md), []byte(want)) {
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
	data, err := os.ReadFile(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Cells []Result `json:"cells"`
	}
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Cells) != 8 || js.Cells[5].Replicas != 3 || js.Cells[5].OpsPerSec != 6000 || js.Cells[1].Error == "" {
		t.Errorf("JSON cells %+v", js.Cells)
	}
}

// A System named otherwise is named so throughout its report.
func TestReportsOfAnotherSystem(t *testing.T) {
	md, _ := reportOf(t, testSystem("etcd 3.6.16", "etcd 3.6.16", "member"))
	for _, want := range []string{
		"# etcd 3.6.16 benchmark matrix",
		"| members | operation | value |",
		"| members | operation | value | clients | ops/s |",
		"member CPU µs/op",
		"member cores",
		"etcd 3.6.16, 1 member, put, 100-byte values, 64 clients: start cluster: no leader",
		"etcd 3.6.16 ops/s (p99 ms) | etcd 3.6.16 member CPU µs/op",
		"every server process",
	} {
		if !bytes.Contains([]byte(md), []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	for _, unwanted := range []string{"replica", "Ballot", "ballotd"} {
		if bytes.Contains([]byte(md), []byte(unwanted)) {
			t.Errorf("markdown of etcd mentions %q", unwanted)
		}
	}
}

func TestLine(t *testing.T) {
	m := &Matrix{Sys: testSystem("etcd 3.6.16", "etcd 3.6.16", "member")}
	r := Result{Cell: Cell{Replicas: 3, Clients: 64, ValueSize: 100, Op: "get"}, OpsPerSec: 12345, P50Ms: 1, P99Ms: 2,
		ServerCPUUsPerOp: 100, ClientCPUUsPerOp: 50, OthersShare: 0.02}
	want := "etcd 3.6.16, 3 members, linearizable get, 100-byte values, 64 clients: 12345 ops/s, p50 1.00 ms, p99 2.00 ms, " +
		"0 errors; CPU per op: members 100 µs, load generator 50 µs; others used 2% of the machine"
	if got := m.line(r); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 25344.4: "25,344", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}
