package matrix

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcessStopAndExit(t *testing.T) {
	dir := t.TempDir()
	running, err := StartProcess("server 1", filepath.Join(dir, "1.log"), "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	quitting, err := StartProcess("server 2", filepath.Join(dir, "2.log"), "true")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-quitting.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("true did not exit within 10s")
	}
	if err := quitting.Exited(); err == nil || !strings.Contains(err.Error(), "server 2") {
		t.Errorf("a process that quit: Exited() = %v, want an error naming it", err)
	}
	if err := running.Exited(); err != nil {
		t.Errorf("a running process: %v", err)
	}
	start := time.Now()
	if err := StopProcesses([]*Process{running, quitting}); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := running.Exited(); err == nil {
		t.Error("still running after StopProcesses")
	}
	if took := time.Since(start); took > StopGrace/2 {
		t.Errorf("SIGTERM took %s to stop sleep", took)
	}
	if _, err := StartProcess("server 3", filepath.Join(dir, "3.log"), filepath.Join(dir, "no-such-program")); err == nil {
		t.Error("started a program that does not exist")
	}
}

func TestFreeAddrs(t *testing.T) {
	addrs, err := FreeAddrs(4)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] || !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("addresses %v: want 4 distinct ones on 127.0.0.1", addrs)
		}
		seen[a] = true
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s is not free: %v", a, err)
			continue
		}
		ln.Close()
	}
}
