package cli

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// benchJSON is the part of `ballot bench --json` the tests read.
type benchJSON struct {
	Clients    int    `json:"clients"`
	StoppedBy  string `json:"stopped_by"`
	Operations map[string]struct {
		Ops          uint64            `json:"ops"`
		OpsPerSec    float64           `json:"ops_per_sec"`
		P50          float64           `json:"p50_ms"`
		P99          float64           `json:"p99_ms"`
		P999         float64           `json:"p999_ms"`
		Errors       uint64            `json:"errors"`
		ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	} `json:"operations"`
	Total struct {
		Ops       uint64  `json:"ops"`
		OpsPerSec float64 `json:"ops_per_sec"`
		Errors    uint64  `json:"errors"`
	} `json:"total"`
	Workload *struct {
		Operations     int `json:"operations"`
		Malformed      int `json:"malformed"`
		MalformedLines []struct {
			Line int `json:"line"`
		} `json:"malformed_lines"`
	} `json:"workload"`
}

func parseBenchJSON(t *testing.T, r result) benchJSON {
	t.Helper()
	var got benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v; %v", err, r)
	}
	return got
}

func TestBenchJSON(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--clients=4", "--ops=300", "--warmup=0",
		"--keys=20", "--mix=put=1,get=1", "--json")
	if r.code != 0 {
		t.Fatalf("bench: %v", r)
	}
	got := parseBenchJSON(t, r)
	if got.Clients != 4 || got.StoppedBy != "ops" || len(got.Operations) != 2 {
		t.Fatalf("clients %d, stopped by %q, %d kinds; want 4, ops, put and get: %s", got.Clients, got.StoppedBy, len(got.Operations), r.stdout)
	}
	if n := got.Total.Ops + got.Total.Errors; n != 300 {
		t.Errorf("ops + errors = %d, want 300", n)
	}
	if got.Operations["get"].ErrorsByKind["not_found"] != 0 {
		t.Errorf("gets found no value although the keys were preloaded: %s", r.stdout)
	}
	if got.Total.OpsPerSec <= 0 || got.Operations["put"].P99 < got.Operations["put"].P50 {
		t.Errorf("implausible figures: %s", r.stdout)
	}
	// The server saw the 20 preload puts and the 300 measured operations.
	var puts, gets int
	for _, c := range srv.Calls() {
		switch c.Method {
		case "put":
			puts++
		case "get":
			gets++
		}
	}
	if puts+gets != 320 {
		t.Errorf("server saw %d puts and %d gets, want 320 in all", puts, gets)
	}
	if v := srv.Violations(); len(v) > 0 {
		t.Errorf("session rules broken: %v", v)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q, want nothing when it is not a terminal", r.stderr)
	}
}

func TestBenchText(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--clients=2", "--ops=50", "--warmup=0", "--mix=put=1",
		"--read=stale")
	if r.code != 0 {
		t.Fatalf("bench: %v", r)
	}
	for _, want := range []string{"2 clients", "mix put=1", "gets stale", "p99.9 ms", "\nput ", "errors: none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestBenchProgressKeepsStdoutClean(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--clients=2", "--duration=600ms", "--warmup=0",
		"--mix=put=1", "--json", "--progress")
	if r.code != 0 {
		t.Fatalf("bench: %v", r)
	}
	parseBenchJSON(t, r)
	if !strings.Contains(r.stderr, "measure") || !strings.Contains(r.stderr, "ops/s") {
		t.Errorf("stderr %q, want the progress bar", r.stderr)
	}
}

func TestBenchWorkloadWithMalformedLines(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	path := filepath.Join(t.TempDir(), "w.txt")
	content := "PUT,a,1\r\nBOGUS,a\r\n# comment\r\nget a\r\nPUT,b\r\nDELETE,a\r\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--workload="+path, "--clients=1", "--json")
	if r.code != 0 {
		t.Fatalf("bench: %v", r)
	}
	got := parseBenchJSON(t, r)
	if got.Workload == nil || got.Workload.Operations != 3 || got.Workload.Malformed != 2 ||
		len(got.Workload.MalformedLines) != 2 || got.Workload.MalformedLines[0].Line != 2 || got.Workload.MalformedLines[1].Line != 5 {
		t.Fatalf("workload summary wrong: %s", r.stdout)
	}
	if got.StoppedBy != "workload" || got.Total.Ops != 3 {
		t.Errorf("stopped by %q after %d ops, want one pass of 3", got.StoppedBy, got.Total.Ops)
	}
	for _, want := range []string{path + ":2:", path + ":5:", "unknown operation", "missing fields"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %q", want, r.stderr)
		}
	}
	// One pass, one client, no warm-up: the server saw the file's operations in order.
	var seen []string
	for _, c := range srv.Calls() {
		seen = append(seen, c.Method+" "+c.Key)
	}
	if strings.Join(seen, ",") != "put a,get a,remove a" {
		t.Errorf("server saw %v, want put a, get a, remove a", seen)
	}
}

func TestBenchPlot(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	path := filepath.Join(t.TempDir(), "run.png")
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--clients=2", "--ops=100", "--warmup=0", "--plot="+path)
	if r.code != 0 || !strings.Contains(r.stdout, "plot: "+path) {
		t.Fatalf("bench: %v", r)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("%s is not a PNG: %v", path, err)
	}
}

func TestBenchAllFail(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error {
		return &kvapi.InvalidArgument{Message: "refused", Field: "value"}
	})
	r := run(t, "", "--endpoints="+srv.Addr(), "bench", "--clients=2", "--ops=20", "--warmup=0", "--mix=put=1", "--json")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "all 20 operations failed") {
		t.Fatalf("got %v, want exit 3 saying every operation failed", r)
	}
	got := parseBenchJSON(t, r)
	if got.Operations["put"].ErrorsByKind["invalid"] != 20 {
		t.Errorf("errors_by_kind %v, want 20 invalid", got.Operations["put"].ErrorsByKind)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	clearEnv(t)
	ep := "--endpoints=127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--duration=1s", "--ops=5"}, "not both"},
		{[]string{"--mix=put=1,frob=2"}, "unknown operation"},
		{[]string{"--read=eventual"}, "--read"},
		{[]string{"--clients=0"}, "--clients"},
		{[]string{"--value-size=0"}, "--value-size"},
		{[]string{"--workload=x.txt", "--mix=put=1"}, "not both"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		r := run(t, "", append([]string{ep, "bench"}, tc.args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("bench %v: %v; want exit 2 mentioning %q", tc.args, r, tc.want)
		}
	}
}
