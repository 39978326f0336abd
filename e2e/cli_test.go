package e2e

import (
	"strings"
	"testing"
)

// TestCLIPutGetDelete drives a five-replica cluster through the ballot command:
// put, get, delete, a get of the deleted key, and a put whose value comes from
// standard input.
func TestCLIPutGetDelete(t *testing.T) {
	c := newCluster(t, 5)
	c.waitLeader()

	c.mustBallot("put", "colour", "blue")
	if got := c.mustBallot("get", "colour"); got != "blue\n" {
		t.Fatalf("get colour printed %q, want %q", got, "blue\n")
	}

	c.mustBallot("put", "colour", "green")
	if got := c.mustBallot("get", "colour"); got != "green\n" {
		t.Fatalf("get colour after overwrite printed %q, want %q", got, "green\n")
	}

	c.mustBallot("delete", "colour")
	res := c.ballot("get", "colour")
	if res.code != 1 {
		t.Fatalf("get of a deleted key: exit %d (stdout %q, stderr %q), want 1", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "not found") {
		t.Fatalf("get of a deleted key: stderr %q does not say %q", res.stderr, "not found")
	}
	if res.stdout != "" {
		t.Fatalf("get of a deleted key printed %q on stdout", res.stdout)
	}

	// Deleting a missing key succeeds.
	c.mustBallot("delete", "colour")

	// put KEY - reads the value from standard input, byte for byte.
	value := "line one\nline two\x00\xff binary bytes"
	if res := c.ballotIn([]byte(value), "put", "k", "-"); res.code != 0 {
		t.Fatalf("put k - : exit %d, stderr %q", res.code, res.stderr)
	}
	if got := c.mustBallot("get", "k"); got != value+"\n" {
		t.Fatalf("get k printed %q, want %q", got, value+"\n")
	}

	// Every replica applied the same writes.
	c.waitCaughtUp(cliTimeout*5, 1)
}
