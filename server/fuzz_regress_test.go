package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Inputs a fuzzing run of FuzzClientPort or FuzzPeerPort found, kept as tests
// that name what was wrong. Their corpus files stay in testdata/fuzz, so the
// fuzz targets replay them too.

// readCorpusInput returns the []byte input of a corpus file of a fuzz target.
func readCorpusInput(t *testing.T, target, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", target, name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimSpace(string(b))
	const header = "go test fuzz v1\n[]byte("
	if !strings.HasPrefix(text, header) || !strings.HasSuffix(text, ")") {
		t.Fatalf("%s/%s is not a corpus file of one []byte", target, name)
	}
	in, err := strconv.Unquote(text[len(header) : len(text)-1])
	if err != nil {
		t.Fatalf("%s/%s: %v", target, name, err)
	}
	return []byte(in)
}

// A peer request that names the replica itself as its sender was never
// answered: the core ignores its own id, so the request held its connection
// until the peer timeout, and the node kept a reply channel for it forever.
// It must be refused at once, with an error that says why.
func TestPeerRequestFromSelfRefusedAtOnce(t *testing.T) {
	r := startFuzzReplica(t, 3)
	for _, name := range []string{"prepare_from_self", "accept_from_self", "execute_from_self"} {
		t.Run(name, func(t *testing.T) {
			input := readCorpusInput(t, "FuzzPeerPort", name)
			// The connection stays open for writing: a half-closed one would
			// make the server abandon the request instead of waiting.
			reply, err := firstReply(r.list[0].PeerAddr, input, fuzzPeerTimeout/2)
			if err != nil {
				t.Fatalf("no answer within half the peer timeout (%v): %v", fuzzPeerTimeout/2, err)
			}
			if !bytes.Contains(reply, []byte(errFromSelf.Error())) {
				t.Errorf("reply %q does not say %q", reply, errFromSelf)
			}
		})
	}
}

// firstReply writes input to a new connection to addr and returns the first
// frame the replica answers with, which must arrive within timeout.
func firstReply(addr string, input []byte, timeout time.Duration) ([]byte, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(input); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, fmt.Errorf("read frame size: %w", err)
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, frame); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return frame, nil
}
