// Package etcd holds the etcd benchmark driver, cmd/etcdmatrix, in a module of
// its own so that the main module depends on neither etcd nor gRPC. This test
// builds the command and runs a tiny matrix with it, exactly as make bench-etcd
// does.
package etcd

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildCommand builds cmd/etcdmatrix into dir, or skips the test if the etcd
// modules cannot be had (no module cache and no module proxy).
func buildCommand(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "etcdmatrix")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/etcdmatrix").CombinedOutput()
	if err != nil {
		text := string(out)
		for _, offline := range []string{"dial tcp", "no such host", "module lookup disabled", "GOPROXY", "connection refused", "i/o timeout"} {
			if strings.Contains(text, offline) {
				t.Skipf("the etcd modules cannot be downloaded here, so etcdmatrix cannot be built:\n%s", text)
			}
		}
		t.Fatalf("go build ./cmd/etcdmatrix: %v\n%s", err, text)
	}
	return bin
}

// One cell on a 1-member cluster that the command starts as its own child:
// the report must hold operations, no failed ones, and the member's CPU time.
// Once with a client per worker, once with all workers sharing one.
func TestTinyMatrixOnOneMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	bin := buildCommand(t, t.TempDir())
	t.Run("client per worker", func(t *testing.T) { tinyMatrix(t, bin, "put") })
	t.Run("shared client", func(t *testing.T) { tinyMatrix(t, bin, "get", "-shared-client") })
}

func tinyMatrix(t *testing.T, bin, op string, flags ...string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	cmd := exec.Command(bin, append([]string{"-replicas", "1", "-clients", "2", "-values", "100", "-ops", op,
		"-duration", "500ms", "-warmup", "100ms", "-out", out}, flags...)...)
	// The settings come from the flags alone, whatever the caller's environment.
	cmd.Env = append(os.Environ(), "BENCH_REPLICAS=", "BENCH_CLIENTS=", "BENCH_VALUES=", "BENCH_OPS=", "BENCH_DURATION=",
		"BENCH_WARMUP=", "BENCH_OUT=", "BENCH_ETCD_SHARED=")
	cmd.Dir = dir
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdmatrix: %v\n%s", err, log)
	}
	opText := map[string]string{"put": "put", "get": "linearizable get"}[op]
	if !strings.Contains(string(log), "etcd 3.6.16, 1 member, "+opText+", 100-byte values, 2 clients: ") {
		t.Errorf("no line for the cell in\n%s", log)
	}
	reports, err := filepath.Glob(filepath.Join(out, "etcd-*.json"))
	if err != nil || len(reports) != 1 {
		t.Fatalf("reports %v (%v), want one etcd-*.json; output:\n%s", reports, err, log)
	}
	for _, ext := range []string{".md", ".png", "-cpu.png"} {
		if _, err := os.Stat(strings.TrimSuffix(reports[0], ".json") + ext); err != nil {
			t.Errorf("report %s: %v", ext, err)
		}
	}
	data, err := os.ReadFile(reports[0])
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Cells []struct {
			Replicas         int     `json:"replicas"`
			Clients          int     `json:"clients"`
			Op               string  `json:"op"`
			Error            string  `json:"error"`
			Ops              uint64  `json:"ops"`
			Errors           uint64  `json:"errors"`
			OpsPerSec        float64 `json:"ops_per_sec"`
			P99Ms            float64 `json:"p99_ms"`
			ServerCPUUsPerOp float64 `json:"server_cpu_us_per_op"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(data, &report); err != nil {
		t.Fatalf("%s: %v", reports[0], err)
	}
	if len(report.Cells) != 1 {
		t.Fatalf("%d cells, want 1:\n%s", len(report.Cells), data)
	}
	c := report.Cells[0]
	if c.Replicas != 1 || c.Clients != 2 || c.Op != op || c.Error != "" {
		t.Errorf("cell %+v: want 1 member, 2 clients, %s, no error", c, op)
	}
	if c.Ops == 0 || c.OpsPerSec <= 0 || c.P99Ms <= 0 || c.Errors != 0 {
		t.Errorf("cell %+v: want operations, a latency and no failed operation", c)
	}
	// Hundreds of operations cost the member well over one clock tick in all;
	// 0 would mean its CPU time was not read.
	if c.ServerCPUUsPerOp <= 0 {
		t.Errorf("member CPU per %s %v µs, want > 0", op, c.ServerCPUUsPerOp)
	}
	md, err := os.ReadFile(strings.TrimSuffix(reports[0], ".json") + ".md")
	if err != nil {
		t.Fatal(err)
	}
	want := "every client with its own clientv3.Client"
	if len(flags) > 0 {
		want = "all clients sharing one clientv3.Client"
	}
	if !strings.Contains(string(md), want) {
		t.Errorf("the markdown report does not say %q", want)
	}
}
