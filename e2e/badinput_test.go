package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// runBallotd runs ballotd with args until it exits, and fails the test if it is
// still running after 15s. It returns standard error and the exit code.
func runBallotd(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ballotdBin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ballotd %s still running after 15s; stderr:\n%s", strings.Join(args, " "), errb.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return errb.String(), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("ballotd %s: %v", strings.Join(args, " "), err)
	}
	return errb.String(), 0
}

// writeFile writes content to name in a new temporary directory and returns the path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBallotdRejectsMalformedReplicasFile starts ballotd on replicas files with one
// bad line each: it must exit non-zero naming the file and the line.
func TestBallotdRejectsMalformedReplicasFile(t *testing.T) {
	client1 := freeAddr(t)
	good1 := "1 " + client1 + " " + freeAddr(t)
	good2 := "2 " + freeAddr(t) + " " + freeAddr(t)
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"two fields", "3 127.0.0.1:7003"},
		{"four fields", "3 127.0.0.1:7003 127.0.0.1:8003 extra"},
		{"id not a number", "three 127.0.0.1:7003 127.0.0.1:8003"},
		{"id zero", "0 127.0.0.1:7003 127.0.0.1:8003"},
		{"duplicate id", "2 127.0.0.1:7003 127.0.0.1:8003"},
		{"port out of range", "3 127.0.0.1:70000 127.0.0.1:8003"},
		{"no port", "3 127.0.0.1 127.0.0.1:8003"},
		{"duplicate address", "3 127.0.0.1:7003 " + client1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The bad line is line 4: a comment, two good lines, then it.
			path := writeFile(t, "replicas.txt", "# id client peer\n"+good1+"\n"+good2+"\n"+tc.bad+"\n")
			stderr, code := runBallotd(t, "--id", "1", "--replicas", path, "--data", t.TempDir())
			if code == 0 {
				t.Fatalf("ballotd exited 0 on a malformed replicas file; stderr:\n%s", stderr)
			}
			if want := path + ":4"; !strings.Contains(stderr, want) {
				t.Fatalf("ballotd's error does not name %s:\n%s", want, stderr)
			}
		})
	}
}

// TestBallotdRejectsUnknownID starts ballotd with an id the replicas file lacks.
func TestBallotdRejectsUnknownID(t *testing.T) {
	path := writeFile(t, "replicas.txt",
		"1 "+freeAddr(t)+" "+freeAddr(t)+"\n2 "+freeAddr(t)+" "+freeAddr(t)+"\n")
	stderr, code := runBallotd(t, "--id", "9", "--replicas", path, "--data", t.TempDir())
	if code == 0 {
		t.Fatalf("ballotd --id 9 exited 0 with replicas 1 and 2 only; stderr:\n%s", stderr)
	}
	if !regexp.MustCompile(`\b9\b`).MatchString(stderr) || !strings.Contains(stderr, path) {
		t.Fatalf("ballotd --id 9: error names neither id 9 nor %s:\n%s", path, stderr)
	}
}

// TestBallotdPortInUse starts ballotd on a client or peer address that another
// socket holds: it must exit non-zero naming the address.
func TestBallotdPortInUse(t *testing.T) {
	for _, which := range []string{"client", "peer"} {
		t.Run(which, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			busy := ln.Addr().String()
			clientAddr, peerAddr := freeAddr(t), freeAddr(t)
			if which == "client" {
				clientAddr = busy
			} else {
				peerAddr = busy
			}
			path := writeFile(t, "replicas.txt", fmt.Sprintf("1 %s %s\n", clientAddr, peerAddr))
			stderr, code := runBallotd(t, "--id", "1", "--replicas", path, "--data", t.TempDir())
			if code == 0 {
				t.Fatalf("ballotd exited 0 with its %s address %s in use; stderr:\n%s", which, busy, stderr)
			}
			if !strings.Contains(stderr, busy) {
				t.Fatalf("ballotd's error does not name the busy %s address %s:\n%s", which, busy, stderr)
			}
		})
	}
}

// TestBadRequests sends requests over the limits through the ballot command and
// raw Thrift, and garbage to both ports of a running replica, which must keep
// serving.
func TestBadRequests(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	longKey := strings.Repeat("k", kvapi.MAX_KEY_BYTES+1)
	bigValue := bytes.Repeat([]byte("v"), kvapi.MAX_VALUE_BYTES+1)

	t.Run("cli", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			stdin []byte
			args  []string
			limit string
		}{
			{"put empty key", nil, []string{"put", "", "v"}, "4096"},
			{"put long key", nil, []string{"put", longKey, "v"}, "4096"},
			{"get empty key", nil, []string{"get", ""}, "4096"},
			{"get long key", nil, []string{"get", longKey}, "4096"},
			{"delete long key", nil, []string{"delete", longKey}, "4096"},
			{"put big value", bigValue, []string{"put", "k", "-"}, "1048576"},
		} {
			res := c.ballotIn(tc.stdin, tc.args...)
			if res.code == 0 || res.code == 1 {
				t.Errorf("%s: exit %d, want a failure other than not found; stderr %q", tc.name, res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tc.limit) {
				t.Errorf("%s: stderr %q does not name the limit %s bytes", tc.name, res.stderr, tc.limit)
			}
		}
		// Exactly at the limits is allowed.
		atKey := strings.Repeat("K", kvapi.MAX_KEY_BYTES)
		c.mustBallot("put", atKey, "fits")
		if got := c.mustBallot("get", atKey); got != "fits\n" {
			t.Errorf("get of a %d-byte key printed %q, want %q", len(atKey), got, "fits\n")
		}
		atValue := bytes.Repeat([]byte("V"), kvapi.MAX_VALUE_BYTES)
		if res := c.ballotIn(atValue, "put", "big", "-"); res.code != 0 {
			t.Fatalf("put of a %d-byte value: exit %d, stderr %q", len(atValue), res.code, res.stderr)
		}
		if got := c.mustBallot("get", "big"); got != string(atValue)+"\n" {
			t.Errorf("get of a %d-byte value printed %d bytes", len(atValue), len(got))
		}
	})

	t.Run("thrift", func(t *testing.T) {
		kv := mustDialKV(t, c.rep(leader).clientAddr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		clientID := rand.Int64N(1<<62) + 1
		for _, tc := range []struct {
			name  string
			call  func() error
			field string
			limit int64
		}{
			{"put empty key", func() error { _, err := kv.Put(ctx, clientID, 1, "", []byte("v")); return err }, "key", 0},
			{"put long key", func() error { _, err := kv.Put(ctx, clientID, 1, longKey, []byte("v")); return err }, "key", kvapi.MAX_KEY_BYTES},
			{"put big value", func() error { _, err := kv.Put(ctx, clientID, 1, "k", bigValue); return err }, "value", kvapi.MAX_VALUE_BYTES},
			{"get empty key", func() error { _, err := kv.Get(ctx, "", kvapi.Consistency_LINEARIZABLE); return err }, "key", 0},
			{"get long key", func() error { _, err := kv.Get(ctx, longKey, kvapi.Consistency_STALE); return err }, "key", kvapi.MAX_KEY_BYTES},
			{"remove empty key", func() error { _, err := kv.Remove(ctx, clientID, 1, ""); return err }, "key", 0},
			{"remove long key", func() error { _, err := kv.Remove(ctx, clientID, 1, longKey); return err }, "key", kvapi.MAX_KEY_BYTES},
		} {
			err := tc.call()
			var invalid *kvapi.InvalidArgument
			if !errors.As(err, &invalid) {
				t.Errorf("%s: got %T %v, want *kvapi.InvalidArgument", tc.name, err, err)
				continue
			}
			if invalid.GetField() != tc.field {
				t.Errorf("%s: field %q, want %q", tc.name, invalid.GetField(), tc.field)
			}
			if tc.limit != 0 {
				if invalid.GetLimit() != tc.limit || !strings.Contains(invalid.GetMessage(), fmt.Sprint(tc.limit)) {
					t.Errorf("%s: limit %d, message %q; want limit %d named in the message",
						tc.name, invalid.GetLimit(), invalid.GetMessage(), tc.limit)
				}
			}
		}
		// None of that was applied, and the connection is still good for a valid
		// write with the same (client id, seq).
		if _, err := kv.Put(ctx, clientID, 1, "k", []byte("ok")); err != nil {
			t.Fatalf("valid put on the same connection after the rejected ones: %v", err)
		}
		if r, err := kv.Get(ctx, "k", kvapi.Consistency_LINEARIZABLE); err != nil || string(r.GetValue()) != "ok" {
			t.Fatalf("get k: %v, %v; want \"ok\"", r, err)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		for _, id := range []int{leader, others(c.ids(), leader)[0]} {
			r := c.rep(id)
			for _, addr := range []string{r.clientAddr, r.peerAddr} {
				for _, p := range garbagePayloads() {
					sendGarbage(t, addr, p.name, p.data)
				}
			}
			if !r.running() {
				t.Fatalf("replica %d exited (code %d) after garbage on its ports:\n%s", id, r.exitCode, tail(r.logPath, 30))
			}
		}
		c.mustBallot("put", "after-garbage", "still serving")
		if got := c.mustBallot("get", "after-garbage"); got != "still serving\n" {
			t.Fatalf("get after-garbage printed %q", got)
		}
		for _, r := range c.reps {
			if !r.running() {
				t.Errorf("replica %d exited (code %d):\n%s", r.id, r.exitCode, tail(r.logPath, 30))
			}
		}
		c.waitCaughtUp(15*time.Second, 1)
	})
}

type payload struct {
	name string
	data []byte
}

// garbagePayloads returns byte strings no Thrift client sends.
func garbagePayloads() []payload {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	frame := func(n uint32, body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	// A strict binary call of "put" whose key announces almost 2 GiB.
	var call []byte
	call = binary.BigEndian.AppendUint32(call, 0x80010001) // version 1, CALL
	call = binary.BigEndian.AppendUint32(call, 3)
	call = append(call, "put"...)
	call = binary.BigEndian.AppendUint32(call, 1) // seq id
	call = append(call, 11, 0, 3)                 // field 3: string
	call = binary.BigEndian.AppendUint32(call, 0x7ffffff0)
	call = append(call, "short"...)
	return []payload{
		{"random bytes", random},
		{"HTTP GET", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")},
		{"frame of 2 GiB", frame(0x80000000, []byte("xxxxxxxx"))},
		{"frame of 2 GiB - 1", frame(0x7fffffff, []byte("xxxxxxxx"))},
		{"empty frame", frame(0, nil)},
		{"truncated frame", frame(100, []byte("0123456789"))},
		{"huge string in a small frame", frame(uint32(len(call)), call)},
		{"unknown method", frame(21, append(binary.BigEndian.AppendUint32(
			binary.BigEndian.AppendUint32(nil, 0x80010001), 8), "nosuchop\x00\x00\x00\x01\x00"...))},
	}
}

// sendGarbage writes data to addr, half-closes the connection and requires the
// server to close its side within 5s.
func sendGarbage(t *testing.T, addr, name string, data []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("%s to %s: connect: %v", name, addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may close before it has read everything; that is fine.
	conn.Write(data)
	conn.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s to %s: the server kept the connection open for 5s", name, addr)
	}
}
