package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/transport"
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

// One execute (or accept and commit) of an entry whose data did not decode
// stopped the replica: applying it failed, the node took that for a storage
// failure, and the log kept the entry, so the replica stopped again at every
// restart. Such a request must be refused with an error naming the entry, and
// the replica go on learning chosen slots.
func TestPeerEntryThatDoesNotDecodeRefused(t *testing.T) {
	for _, name := range []string{"execute_bad_commands", "execute_bad_config", "accept_bad_commands"} {
		t.Run(name, func(t *testing.T) {
			// A new replica: the entries are at its first slot.
			r := startFuzzReplica(t, 3)
			input := readCorpusInput(t, "FuzzPeerPort", name)
			reply, err := firstReply(r.list[0].PeerAddr, input, fuzzSlack)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(reply, []byte(errBadEntry.Error())) || !bytes.Contains(reply, []byte("slot 1")) {
				t.Errorf("reply %q does not name the entry at slot 1", reply)
			}
			if err := r.alive(); err != nil {
				t.Fatalf("%v\n%s", err, r.logs.tail())
			}
			if err := r.fullCheck(); err != nil {
				t.Fatalf("%v\n%s", err, r.logs.tail())
			}
		})
	}
}

// The same holds for replies: promises from the other members that report an
// entry whose data does not decode, or a configuration entry that is not later
// than the one in force, are dropped, or the candidate would win, propose that
// entry again, and stop (or end its configuration) when it applies it.
func TestPromiseWithEntryThatDoesNotDecodeDropped(t *testing.T) {
	ballot := &peerapi.Ballot{Round: 1, Replica: 2}
	for name, entry := range map[string]*peerapi.Entry{
		"bad_commands": {Slot: 1, Ballot: ballot, Kind: peerapi.EntryKind_COMMANDS, Data: []byte("garbage")},
		"stale_config": {Slot: 1, Ballot: ballot, Kind: peerapi.EntryKind_CONFIG, Data: configuration(t, 1)},
	} {
		t.Run(name, func(t *testing.T) { testPromiseDropped(t, entry) })
	}
}

func testPromiseDropped(t *testing.T, entry *peerapi.Entry) {
	r := startFuzzReplica(t, 3)
	var prepares atomic.Int64
	for _, rep := range r.list[1:] {
		stub := &badPromiser{id: int64(rep.ID), prepares: &prepares, entry: entry}
		srv, err := transport.Listen(rep.PeerAddr, peerapi.NewPeerProcessor(stub), transport.ServerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve()
		t.Cleanup(func() { srv.Close() })
	}
	// Replica 1 campaigns once its election timeout passes; each round asks
	// both stubs (a pre-vote, then the prepare itself).
	deadline := time.Now().Add(10 * time.Second)
	for prepares.Load() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d prepares within 10s\n%s", prepares.Load(), r.logs.tail())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if err := r.alive(); err != nil {
		t.Fatalf("%v\n%s", err, r.logs.tail())
	}
	if st, err := rawStatus(r.list[0].ClientAddr); err != nil || st.IsLeader || st.Applied != 0 {
		t.Fatalf("status %+v, %v: want a replica that neither leads nor applied anything", st, err)
	}
	if !strings.Contains(r.logs.tail(), "reply dropped") {
		t.Errorf("no reply dropped in the log:\n%s", r.logs.tail())
	}
}

// badPromiser is a member that promises every ballot and reports, each time,
// entry as accepted; it accepts whatever it is asked to.
type badPromiser struct {
	id       int64
	prepares *atomic.Int64
	entry    *peerapi.Entry
}

func (b *badPromiser) Prepare(_ context.Context, req *peerapi.PrepareRequest) (*peerapi.Promise, error) {
	b.prepares.Add(1)
	return &peerapi.Promise{Sender: b.id, Ok: true, Promised: req.Ballot, Probe: req.Probe, Epoch: 1,
		Accepted: []*peerapi.Entry{b.entry}}, nil
}

func (b *badPromiser) Accept(_ context.Context, req *peerapi.AcceptRequest) (*peerapi.Accepted, error) {
	return &peerapi.Accepted{Sender: b.id, Ok: true, Promised: req.Ballot, Chosen: req.Commit,
		RoundTrip: req.RoundTrip, Epoch: 1}, nil
}

func (b *badPromiser) Execute(_ context.Context, req *peerapi.ExecuteRequest) (*peerapi.Executed, error) {
	return &peerapi.Executed{Sender: b.id, Chosen: req.Commit, Epoch: 1}, nil
}

func (b *badPromiser) FetchSnapshot(context.Context, *peerapi.SnapshotRequest) (*peerapi.SnapshotChunk, error) {
	return nil, errors.New("no snapshot")
}

func (b *badPromiser) Inquire(context.Context, *peerapi.InquiryRequest) (*peerapi.Inquiry, error) {
	return nil, errors.New("no inquiry")
}

// An execute (or accept) of a configuration entry whose epoch is not above the
// configuration in force ended the replica's configuration with none to follow:
// it applied the entry, stopped voting and waited for ever. Such a request must
// be refused with an error naming the entry, and the replica go on learning.
func TestStaleConfigurationEntryRefused(t *testing.T) {
	ballot := &peerapi.Ballot{Round: 2, Replica: 2}
	for _, tc := range []struct {
		name  string
		epoch uint64 // of the configuration in the entry; the replica is in epoch 1
		kind  string
	}{
		{"execute_same_epoch", 1, "execute"},
		{"accept_same_epoch", 1, "accept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startFuzzReplica(t, 3)
			entries := []*peerapi.Entry{{Slot: 1, Ballot: ballot, Kind: peerapi.EntryKind_CONFIG, Data: configuration(t, tc.epoch)}}
			var input []byte
			switch tc.kind {
			case "execute":
				input = call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
					Sender: 2, Ballot: ballot, Commit: 1, Epoch: 1, Entries: entries}})
			default:
				input = call(t, "accept", 1, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
					Sender: 2, Ballot: ballot, Commit: 1, RoundTrip: 1, Epoch: 1, Entries: entries}})
			}
			reply, err := firstReply(r.list[0].PeerAddr, input, fuzzSlack)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(reply, []byte(errStaleConfig.Error())) || !bytes.Contains(reply, []byte("slot 1")) {
				t.Errorf("reply %q does not refuse the entry at slot 1 as %q", reply, errStaleConfig)
			}
			if err := r.alive(); err != nil {
				t.Fatalf("%v\n%s", err, r.logs.tail())
			}
			// Still a member of epoch 1 that learns what a leader of it decides.
			if err := r.fullCheck(); err != nil {
				t.Fatalf("%v\n%s", err, r.logs.tail())
			}
		})
	}
}
