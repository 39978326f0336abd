package chaos

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// TestDigestOf checks the digest computed from reads against the layout the
// IDL documents (the value below is SHA-256 over it, computed independently),
// and that compareDigests finds both kinds of disagreement.
func TestDigestOf(t *testing.T) {
	view := map[string]Output{"b": {Found: true, Value: "2"}, "a": {Found: true, Value: "xyz"}, "c": {}}
	keys, sum := digestOf(view)
	if got, want := hex.EncodeToString(sum[:]), "8e645f901922ee34467aff04a7b9db47f2a372d1a2b493202f09213a27ce6bbe"; keys != 2 || got != want {
		t.Fatalf("digest %s over %d keys, want %s over 2", got, keys, want)
	}
	if keys, sum := digestOf(map[string]Output{"a": {}}); keys != 0 ||
		hex.EncodeToString(sum[:]) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty store: %d keys, %x", keys, sum)
	}

	good := &kvapi.Digest{Applied: 9, Keys: keys, Sha256: sum[:]}
	views := map[int]map[string]Output{1: view, 2: view, 3: view}
	if diffs := compareDigests([]int{1, 2, 3}, map[int]*kvapi.Digest{1: good, 2: good, 3: good}, views); len(diffs) != 0 {
		t.Fatalf("equal digests reported: %v", diffs)
	}
	bad := &kvapi.Digest{Applied: 9, Keys: 2, Sha256: make([]byte, 32)}
	diffs := compareDigests([]int{1, 2, 3}, map[int]*kvapi.Digest{1: good, 2: bad, 3: good}, views)
	if len(diffs) != 2 || !strings.Contains(diffs[0], "replica 2's digest") || !strings.Contains(diffs[1], "[2]") {
		t.Fatalf("a replica whose digest is wrong: %v", diffs)
	}
}

// TestAnsweredAfterJoin counts operations answered by a replica only while a
// change had added it and none had removed it again.
func TestAnsweredAfterJoin(t *testing.T) {
	op := func(call int64, replica int) porcupine.Operation {
		return porcupine.Operation{Input: Input{Kind: OpGet, Key: "k"}, Call: call, Return: call + 1, Output: Output{Replica: replica}}
	}
	changes := []ConfigChange{{At: 10, Added: 6}, {At: 20, Removed: 1}, {At: 30, Removed: 6}, {At: 40, Added: 1}}
	ops := []porcupine.Operation{
		op(5, 6),  // before it joined
		op(15, 6), // a member
		op(25, 6), // a member
		op(35, 6), // removed
		op(15, 1), // an initial member
		op(45, 1), // added again
		{Input: Input{Kind: OpPut, Key: "k"}, Call: 15, Return: never, Output: Output{Unknown: true}},
	}
	if got := answeredAfterJoin(ops, changes); got != 3 {
		t.Fatalf("answeredAfterJoin = %d, want 3", got)
	}
}
