package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// clearEnv unsets the BALLOT_* variables for the test, so the caller's
// environment cannot change what a test runs against.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"BALLOT_REPLICAS", "BALLOT_ENDPOINTS", "BALLOT_TIMEOUT", "BALLOT_CACERT", "BALLOT_CERT", "BALLOT_KEY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs `ballot args...` with stdin and returns its exit code and output.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	app := NewApp(strings.NewReader(stdin), &out, &errOut)
	err := app.RunContext(context.Background(), append([]string{"ballot"}, args...))
	return result{code: ExitCode(err), stdout: out.String(), stderr: errOut.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// deadAddr returns a 127.0.0.1 address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// writeReplicas writes a replicas.txt listing addrs as replicas 1, 2, ...
func writeReplicas(t *testing.T, addrs ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# id client peer\n")
	for i, a := range addrs {
		fmt.Fprintf(&b, "%d %s 127.0.0.1:%d\n", i+1, a, 9001+i)
	}
	path := filepath.Join(t.TempDir(), "replicas.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPutGetDelete(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	ep := "--endpoints=" + srv.Addr()

	if r := run(t, "", ep, "put", "colour", "blue"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("put: %v; want exit 0 and no output", r)
	}
	if v, ok := srv.Value("colour"); !ok || string(v) != "blue" {
		t.Fatalf("server holds %q, %v; want blue", v, ok)
	}
	if r := run(t, "", ep, "get", "colour"); r.code != 0 || r.stdout != "blue\n" || r.stderr != "" {
		t.Errorf("get: %v; want blue and a newline", r)
	}
	if r := run(t, "", ep, "delete", "colour"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("delete: %v; want exit 0 and no output", r)
	}
	if _, ok := srv.Value("colour"); ok {
		t.Errorf("server still holds colour after delete")
	}
	if r := run(t, "", ep, "delete", "colour"); r.code != 0 {
		t.Errorf("delete of a missing key: %v; want exit 0", r)
	}
}

func TestGetMissingKey(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	r := run(t, "", "--endpoints", srv.Addr(), "get", "nothing")
	if r.code != 1 || r.stdout != "" || r.stderr != "not found\n" {
		t.Errorf("get of a missing key: %v; want exit 1 and stderr \"not found\"", r)
	}
}

func TestPutValueFromStdin(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	const value = "line one\nline two\n\x00binary"
	if r := run(t, value, "--endpoints", srv.Addr(), "put", "doc", "-"); r.code != 0 {
		t.Fatalf("put -: %v", r)
	}
	if v, _ := srv.Value("doc"); string(v) != value {
		t.Errorf("server holds %q, want stdin %q", v, value)
	}
}

func TestGetStale(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	ep := "--endpoints=" + srv.Addr()
	if r := run(t, "", ep, "put", "k", "v"); r.code != 0 {
		t.Fatalf("put: %v", r)
	}
	for _, args := range [][]string{{"get", "--stale", "k"}, {"get", "k", "--stale"}, {"get", "k"}} {
		if r := run(t, "", append([]string{ep}, args...)...); r.code != 0 || r.stdout != "v\n" {
			t.Errorf("%v: %v", args, r)
		}
	}
	var got []kvapi.Consistency
	for _, c := range srv.Calls() {
		if c.Method == "get" {
			got = append(got, c.Consistency)
		}
	}
	want := []kvapi.Consistency{kvapi.Consistency_STALE, kvapi.Consistency_STALE, kvapi.Consistency_LINEARIZABLE}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("consistency sent: %v, want %v", got, want)
	}
}

func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	ep := "--endpoints=" + srv.Addr()
	cases := [][]string{
		{},
		{"frob"},
		{"--bogus", "get", "k"},
		{ep, "get"},
		{ep, "get", "a", "b"},
		{ep, "get", "--bogus", "k"},
		{ep, "put", "k"},
		{ep, "put", "k", "v", "extra"},
		{ep, "delete"},
		{ep, "status", "extra"},
		{ep, "digest", "extra"},
		{ep, "snapshot"},
		{ep, "snapshot", "frob"},
		{ep, "snapshot", "save"},
		{ep, "snapshot", "save", "a", "b"},
		{"--timeout", "soon", ep, "get", "k"},
		{"--timeout", "0s", ep, "get", "k"},
	}
	for _, args := range cases {
		r := run(t, "", args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("ballot %v: %v; want exit 2 with a usage hint on stderr", args, r)
		}
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
}

func TestHelp(t *testing.T) {
	clearEnv(t)
	r := run(t, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "put") || !strings.Contains(r.stdout, "--endpoints") {
		t.Errorf("--help: %v", r)
	}
}

func TestFailureIsOneLine(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "no quorum"} })
	start := time.Now()
	// Long enough that a loaded machine still gets the fake's answer in time.
	r := run(t, "", "--endpoints", srv.Addr(), "--timeout", "1s", "put", "colour", "blue")
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("put took %s with --timeout 1s", elapsed)
	}
	if r.code != 3 || r.stdout != "" {
		t.Fatalf("put: %v; want exit 3", r)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") {
		t.Errorf("stderr has more than one line: %q", r.stderr)
	}
	for _, want := range []string{"ballot: put", "colour", srv.Addr(), "Unavailable: no quorum", "1s"} {
		if !strings.Contains(line, want) {
			t.Errorf("stderr %q does not contain %q", line, want)
		}
	}
}

func TestInvalidArgumentKeepsMessage(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	const msg = "value is 9 bytes, over the limit of 4 bytes"
	srv.SetHook(func(context.Context, kvtest.Call) error {
		return &kvapi.InvalidArgument{Message: msg + "\nsecond line", Field: "value", Limit: 4}
	})
	r := run(t, "", "--endpoints", srv.Addr(), "put", "k", "123456789")
	if r.code != 3 || !strings.Contains(r.stderr, msg) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("put: %v; want exit 3 and one line with the server's message", r)
	}
}

func TestReplicasFile(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	path := writeReplicas(t, srv.Addr())
	if r := run(t, "", "--replicas", path, "put", "k", "v"); r.code != 0 {
		t.Fatalf("put with --replicas: %v", r)
	}
	if r := run(t, "", "--replicas", path, "get", "k"); r.stdout != "v\n" {
		t.Errorf("get with --replicas: %v", r)
	}

	// --endpoints overrides the file, even one that does not exist.
	missing := filepath.Join(t.TempDir(), "missing.txt")
	if r := run(t, "", "--replicas", missing, "--endpoints", srv.Addr(), "get", "k"); r.stdout != "v\n" {
		t.Errorf("get with --endpoints and a missing --replicas: %v", r)
	}

	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("1 127.0.0.1:7001 127.0.0.1:8001\n2 nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{missing: missing, bad: bad + ":2:"} {
		r := run(t, "", "--replicas", file, "get", "k")
		if r.code != 3 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("--replicas %s: %v; want exit 3 and one line naming %q", file, r, want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "no quorum"} })
	t.Setenv("BALLOT_REPLICAS", filepath.Join(t.TempDir(), "missing.txt"))
	t.Setenv("BALLOT_ENDPOINTS", srv.Addr())
	t.Setenv("BALLOT_TIMEOUT", "150ms")
	r := run(t, "", "get", "k")
	if r.code != 3 || !strings.Contains(r.stderr, srv.Addr()) || !strings.Contains(r.stderr, "150ms") {
		t.Errorf("get with BALLOT_* set: %v; want a failure at %s within 150ms", r, srv.Addr())
	}
}

// statusCluster starts two fake replicas (the second leads) and lists them with a
// third address on which nothing answers.
func statusCluster(t *testing.T) (path string, dead string) {
	t.Helper()
	a, b := kvtest.Start(t), kvtest.Start(t)
	dead = deadAddr(t)
	a.SetStatus(&kvapi.ReplicaStatus{ID: 1, PeerAddr: "127.0.0.1:9001", LeaderID: 2, Ballot: "3.2",
		Applied: 40, Chosen: 41, LogEntries: 7, Members: []int64{1, 2, 3}, DiskBytes: 512})
	b.SetStatus(&kvapi.ReplicaStatus{ID: 2, PeerAddr: "127.0.0.1:9002", IsLeader: true, LeaderID: 2, Ballot: "3.2",
		Applied: 41, Chosen: 41, LogEntries: 8, Members: []int64{1, 2, 3},
		SnapshotIndex: 30, Compacted: 25, DiskBytes: 3<<20 + 1<<19})
	return writeReplicas(t, a.Addr(), b.Addr(), dead), dead
}

func TestStatusTable(t *testing.T) {
	clearEnv(t)
	path, dead := statusCluster(t)
	r := run(t, "", "--replicas", path, "--timeout", "500ms", "status")
	if r.code != 0 {
		t.Fatalf("status: %v; want exit 0 with one replica down", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("status printed %d lines, want a header and 3 rows:\n%s", len(lines), r.stdout)
	}
	want := [][]string{
		{"ID", "CLIENT", "PEER", "UP", "LEADER", "EPOCH", "BALLOT", "APPLIED", "CHOSEN", "KEYS", "SNAPSHOT", "COMPACTED", "LOG", "DISK"},
		{"1", "", "127.0.0.1:9001", "up", "no", "-", "3.2", "40", "41", "0", "-", "0", "7", "512B"},
		{"2", "", "127.0.0.1:9002", "up", "yes", "-", "3.2", "41", "41", "0", "30", "25", "8", "3.5MiB"},
		{"3", dead, "127.0.0.1:9003", "down", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"},
	}
	for i, line := range lines {
		got := strings.Fields(line)
		if len(got) != len(want[i]) {
			t.Errorf("line %d %q: %d columns, want %d", i, line, len(got), len(want[i]))
			continue
		}
		for j := range got {
			if want[i][j] != "" && got[j] != want[i][j] {
				t.Errorf("line %d column %s = %q, want %q", i, want[0][j], got[j], want[i][j])
			}
		}
	}
	if !strings.Contains(r.stderr, dead) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q: want one line about %s", r.stderr, dead)
	}
}

// A replica that answers status while it is starting is shown as starting, not
// up, and what it waits for goes to standard error.
func TestStatusStartingReplica(t *testing.T) {
	clearEnv(t)
	a := kvtest.Start(t)
	a.SetStatus(&kvapi.ReplicaStatus{ID: 1, PeerAddr: "127.0.0.1:9001", Starting: "waiting for the others"})
	r := run(t, "", "--endpoints", a.Addr(), "--timeout", "500ms", "status")
	if r.code != 3 {
		t.Fatalf("status: %v; want exit 3, no replica up", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 || strings.Fields(lines[1])[3] != "starting" {
		t.Fatalf("status printed:\n%s\nwant one row with UP starting", r.stdout)
	}
	if !strings.Contains(r.stderr, a.Addr()+": replica 1 is starting: waiting for the others") {
		t.Errorf("stderr %q: want what replica 1 waits for", r.stderr)
	}
	r = run(t, "", "--endpoints", a.Addr(), "--timeout", "500ms", "status", "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if rows[0]["up"] != false || rows[0]["starting"] != "waiting for the others" {
		t.Errorf("status --json row %v: want up false and what it waits for", rows[0])
	}
}

func TestStatusJSON(t *testing.T) {
	clearEnv(t)
	path, dead := statusCluster(t)
	r := run(t, "", "--replicas", path, "--timeout", "500ms", "status", "--json")
	if r.code != 0 {
		t.Fatalf("status --json: %v", r)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json printed invalid JSON: %v\n%s", err, r.stdout)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for i, row := range rows {
		for _, k := range []string{"id", "client_addr", "peer_addr", "up", "leader", "leader_id",
			"ballot", "applied", "chosen", "log_entries", "keys", "snapshot_index", "compacted", "disk_bytes"} {
			if _, ok := row[k]; !ok {
				t.Errorf("row %d has no %q: %v", i, k, row)
			}
		}
	}
	if rows[1]["leader"] != true || rows[0]["leader"] != false || rows[0]["leader_id"] != 2.0 {
		t.Errorf("leader fields wrong: %v / %v", rows[0], rows[1])
	}
	if rows[0]["up"] != true || rows[0]["applied"] != 40.0 || rows[0]["log_entries"] != 7.0 {
		t.Errorf("row 0 = %v", rows[0])
	}
	if rows[1]["snapshot_index"] != 30.0 || rows[1]["compacted"] != 25.0 || rows[1]["disk_bytes"] != float64(3<<20+1<<19) {
		t.Errorf("row 1 snapshot fields = %v", rows[1])
	}
	if _, ok := rows[0]["error"]; ok {
		t.Errorf("a replica that answered has an error: %v", rows[0])
	}
	down := rows[2]
	if down["up"] != false || down["id"] != 3.0 || down["client_addr"] != dead {
		t.Errorf("down row = %v", down)
	}
	if e, _ := down["error"].(string); !strings.Contains(e, dead) {
		t.Errorf("down row error %q does not name %s", e, dead)
	}
}

func TestStatusNoneAnswered(t *testing.T) {
	clearEnv(t)
	path := writeReplicas(t, deadAddr(t), deadAddr(t))
	r := run(t, "", "--replicas", path, "--timeout", "200ms", "status")
	if r.code != 3 || strings.Count(r.stdout, "down") != 2 || !strings.Contains(r.stderr, "no replica answered") {
		t.Errorf("status with every replica down: %v; want exit 3 and both rows down", r)
	}
}

func TestStatusAsksConcurrently(t *testing.T) {
	clearEnv(t)
	var addrs []string
	for range 3 {
		s := kvtest.Start(t)
		s.SetHook(func(ctx context.Context, _ kvtest.Call) error { <-ctx.Done(); return ctx.Err() })
		addrs = append(addrs, s.Addr())
	}
	start := time.Now()
	r := run(t, "", "--endpoints", strings.Join(addrs, ","), "--timeout", "500ms", "status")
	elapsed := time.Since(start)
	if r.code != 3 || strings.Count(r.stdout, "down") != 3 {
		t.Errorf("status with every replica hanging: %v", r)
	}
	// One after another would take 1.5s.
	if elapsed > 1200*time.Millisecond {
		t.Errorf("status took %s for three replicas with --timeout 500ms", elapsed)
	}
}
