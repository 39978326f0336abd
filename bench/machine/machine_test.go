package machine

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	dir := t.TempDir()
	l, err := Measure(dir, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Probe{"fsync": l.Fsync, "loopback": l.Loopback} {
		if p.Ops == 0 || p.PerSecond <= 0 {
			t.Errorf("%s: %+v: no operations counted", name, p)
		}
		if p.P50 <= 0 || p.P99 < p.P50 {
			t.Errorf("%s: p50 %v, p99 %v: want 0 < p50 <= p99", name, p.P50, p.P99)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the fsync probe left %d files in its directory", len(left))
	}
	s := l.String()
	for _, want := range []string{"fsync", "loopback", "p50", "p99"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q does not mention %s", s, want)
		}
	}
}

func TestFsyncNamesTheDirectoryItCannotWrite(t *testing.T) {
	missing := t.TempDir() + "/missing"
	_, err := Fsync(missing, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("probe in a missing directory: %v, want an error naming it", err)
	}
}

// run stops at the first failure and reports it, and stops by count as well as by
// time.
func TestRunStopsOnErrorAndAtItsBound(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	_, err := run(time.Minute, func() error {
		calls++
		if calls == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 3 {
		t.Fatalf("run: %v after %d calls, want boom after 3", err, calls)
	}
	start := time.Now()
	p, err := run(time.Hour, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if p.Ops != maxOps {
		t.Errorf("%d operations, want the bound %d", p.Ops, maxOps)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("a count-bounded run took %v", time.Since(start))
	}
}
