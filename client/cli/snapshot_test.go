package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/client/internal/kvtest"
	"github.com/ballot-kv/ballot/gen/kvapi"
)

// snapshotFile returns n reproducible pseudo-random bytes.
func snapshotFile(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 11))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSnapshotSave(t *testing.T) {
	clearEnv(t)
	file := snapshotFile(2<<20 + 300)
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 12, File: file})
	path := filepath.Join(t.TempDir(), "cluster.snap")

	r := run(t, "", "--endpoints", srv.Addr(), "snapshot", "save", path)
	want := fmt.Sprintf("saved snapshot at slot 12: %d bytes, sha256 %x\n", len(file), sha256.Sum256(file))
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("snapshot save: %v; want exit 0 and %q", r, want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file) {
		t.Errorf("%s holds %d bytes that differ from the replica's %d", path, len(got), len(file))
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", path, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600 (it holds every value)", path, err, fi.Mode().Perm())
	}
}

// TestSnapshotSaveCorrupt: a chunk damaged on the way fails the save with an
// error naming the file, which is neither created nor, if it existed, changed.
func TestSnapshotSaveCorrupt(t *testing.T) {
	clearEnv(t)
	file := snapshotFile(2<<20 + 300)
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 12, File: file, Corrupt: func(offset int64, data []byte) {
		if offset == 1<<20 {
			data[0] ^= 0xff
		}
	}})
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.snap")
	older := filepath.Join(dir, "older.snap")
	if err := os.WriteFile(older, []byte("yesterday's backup"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{fresh, older} {
		r := run(t, "", "--endpoints", srv.Addr(), "snapshot", "save", path)
		if r.code != 3 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, "snapshot save "+path+":") || !strings.Contains(r.stderr, "corrupt") {
			t.Errorf("snapshot save %s of a corrupt snapshot: %v; want exit 3 and one line naming the file", path, r)
		}
		if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
			t.Errorf("%s.tmp left behind: %v", path, err)
		}
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("%s was created from a corrupt snapshot: %v", fresh, err)
	}
	if got, _ := os.ReadFile(older); string(got) != "yesterday's backup" {
		t.Errorf("%s was changed to %d bytes", older, len(got))
	}
}

func TestSnapshotSaveErrorsNameTheFile(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	srv.SetBackup(&kvtest.Backup{Index: 1, File: []byte("data")})
	noDir := filepath.Join(t.TempDir(), "missing", "x.snap")
	r := run(t, "", "--endpoints", srv.Addr(), "snapshot", "save", noDir)
	if r.code != 3 || !strings.Contains(r.stderr, noDir) {
		t.Errorf("snapshot save into a missing directory: %v; want exit 3 naming %s", r, noDir)
	}

	srv.SetBackup(nil) // the replica cannot take a snapshot
	path := filepath.Join(t.TempDir(), "x.snap")
	r = run(t, "", "--endpoints", srv.Addr(), "--timeout", "500ms", "snapshot", "save", path)
	if r.code != 3 || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "unavailable") {
		t.Errorf("snapshot save with no snapshot to give: %v; want exit 3 naming %s", r, path)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("files left behind: %v", entries)
	}
}

// digestCluster starts three fake replicas; the first two hold the same data at
// slot 2, the third the same keys at slot 1. mutate may change the second's data
// (keeping its slot) before the digests are asked for.
func digestCluster(t *testing.T, second [2]string) []*kvtest.Server {
	t.Helper()
	var srvs []*kvtest.Server
	for i, data := range [][][2]string{{{"a", "1"}, {"b", "2"}}, {{"a", "1"}, second}, {{"a", "1"}}} {
		s := kvtest.Start(t)
		for _, kv := range data {
			if r := run(t, "", "--endpoints", s.Addr(), "put", kv[0], kv[1]); r.code != 0 {
				t.Fatalf("replica %d: put: %v", i+1, r)
			}
		}
		srvs = append(srvs, s)
	}
	return srvs
}

func TestDigest(t *testing.T) {
	clearEnv(t)
	srvs := digestCluster(t, [2]string{"b", "2"})
	dead := deadAddr(t)
	path := writeReplicas(t, srvs[0].Addr(), srvs[1].Addr(), srvs[2].Addr(), dead)

	r := run(t, "", "--replicas", path, "--timeout", "500ms", "digest")
	if r.code != 0 {
		t.Fatalf("digest: %v; want exit 0 with one replica down", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("digest printed %d lines, want a header and 4 rows:\n%s", len(lines), r.stdout)
	}
	var rows [][]string
	for _, l := range lines {
		rows = append(rows, strings.Fields(l))
	}
	if got := strings.Join(rows[0], " "); got != "ID CLIENT UP APPLIED KEYS SHA256" {
		t.Errorf("header %q", got)
	}
	for i, want := range [][]string{{"1", "up", "2", "2"}, {"2", "up", "2", "2"}, {"3", "up", "1", "1"}, {"4", "down", "-", "-"}} {
		row := rows[i+1]
		if len(row) != 6 || row[0] != want[0] || row[2] != want[1] || row[3] != want[2] || row[4] != want[3] {
			t.Errorf("row %d = %q, want id, up, applied and keys %q", i+1, row, want)
		}
	}
	if rows[1][5] != rows[2][5] || rows[1][5] == rows[3][5] || len(rows[1][5]) != 64 {
		t.Errorf("digests %q, %q, %q: want the first two equal, the third different, 64 hex digits",
			rows[1][5], rows[2][5], rows[3][5])
	}
	if !strings.Contains(r.stderr, dead) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q: want one line about %s", r.stderr, dead)
	}

	r = run(t, "", "--replicas", path, "--timeout", "500ms", "digest", "--json")
	var js []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &js); r.code != 0 || err != nil || len(js) != 4 {
		t.Fatalf("digest --json: %v, %v", r, err)
	}
	if js[0]["digest"] != rows[1][5] || js[0]["applied"] != 2.0 || js[0]["keys"] != 2.0 || js[0]["up"] != true {
		t.Errorf("row 0 = %v", js[0])
	}
	if js[3]["up"] != false || js[3]["digest"] != "" || !strings.Contains(fmt.Sprint(js[3]["error"]), dead) {
		t.Errorf("down row = %v", js[3])
	}
}

// TestDigestDiverged: replicas that applied the same slot but hold different
// data fail the command, naming both.
func TestDigestDiverged(t *testing.T) {
	clearEnv(t)
	srvs := digestCluster(t, [2]string{"b", "X"})
	path := writeReplicas(t, srvs[0].Addr(), srvs[1].Addr(), srvs[2].Addr())
	r := run(t, "", "--replicas", path, "digest")
	if r.code != 3 || strings.Count(r.stdout, "\n") != 4 ||
		!strings.Contains(r.stderr, "replica 1 ("+srvs[0].Addr()+") and replica 2 ("+srvs[1].Addr()+") differ at applied slot 2") {
		t.Errorf("digest of diverged replicas: %v; want the table, exit 3 and a line naming replicas 1 and 2", r)
	}
}

func TestDigestNoneAnswered(t *testing.T) {
	clearEnv(t)
	srv := kvtest.Start(t)
	srv.SetHook(func(context.Context, kvtest.Call) error { return &kvapi.Unavailable{Message: "starting"} })
	r := run(t, "", "--endpoints", srv.Addr()+","+deadAddr(t), "--timeout", "300ms", "digest")
	if r.code != 3 || strings.Count(r.stdout, "down") != 2 || !strings.Contains(r.stderr, "no replica answered") ||
		!strings.Contains(r.stderr, "starting") {
		t.Errorf("digest with no replica able: %v; want exit 3, both rows down", r)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1.0KiB", 1536: "1.5KiB", 10239: "10KiB", 1<<20 - 1: "1.0MiB",
		12 << 20: "12MiB", 5 << 30: "5.0GiB", 1 << 62: "4.0EiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
