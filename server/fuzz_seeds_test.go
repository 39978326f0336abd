package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/replicas"
)

// writeSeedsEnv names the variable that makes TestFuzzSeeds rewrite the seed
// corpora instead of comparing them.
const writeSeedsEnv = "BALLOT_WRITE_FUZZ_SEEDS"

// TestFuzzSeeds checks that the committed seed corpora of FuzzClientPort and
// FuzzPeerPort hold the requests the generated code writes today, so a change
// to idl/ that makes them stale is noticed. With BALLOT_WRITE_FUZZ_SEEDS=1 it
// writes them instead. Files in those directories that it does not generate
// (inputs a fuzzing run found) are left alone.
func TestFuzzSeeds(t *testing.T) {
	write := os.Getenv(writeSeedsEnv) == "1"
	for target, seeds := range map[string]map[string][]byte{
		"FuzzClientPort": clientSeeds(t),
		"FuzzPeerPort":   peerSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		names := make([]string, 0, len(seeds))
		for name := range seeds {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			path := filepath.Join(dir, name)
			want := corpusFile(seeds[name])
			if write {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (%v): run %s=1 go test -run '^TestFuzzSeeds$' ./server", path, err, writeSeedsEnv)
			}
		}
	}
}

// corpusFile is data in the format of Go's fuzzing corpus files.
func corpusFile(data []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n")
}

// call is one framed, strict binary Thrift call of method with args, as a
// client generated from idl/ sends it.
func call(t *testing.T, method string, seq int32, args thrift.TStruct) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	cfg := &thrift.TConfiguration{}
	p := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(buf, cfg), cfg)
	err := p.WriteMessageBegin(ctx, method, thrift.CALL, seq)
	if err == nil {
		err = args.Write(ctx, p)
	}
	if err == nil {
		err = p.WriteMessageEnd(ctx)
	}
	if err == nil {
		err = p.Flush(ctx)
	}
	if err != nil {
		t.Fatalf("write %s call: %v", method, err)
	}
	return buf.Bytes()
}

// malformedSeeds are inputs every port must refuse without harm; valid is one
// well-formed call of the port's service, which some of them damage.
func malformedSeeds(t *testing.T, valid []byte) map[string][]byte {
	frameOf := func(body []byte) []byte {
		return binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	}
	body := valid[4:]
	// The message header: version and type (4 bytes), name length (4), name.
	withVersion := func(version uint32) []byte {
		b := append(frameOf(body), body...)
		binary.BigEndian.PutUint32(b[4:], version)
		return b
	}
	seeds := map[string][]byte{
		"empty":          {},
		"huge_length":    append(binary.BigEndian.AppendUint32(nil, 0x7fffffff), body...),
		"negative_len":   append(binary.BigEndian.AppendUint32(nil, 0x80000000), body...),
		"zero_length":    append([]byte{0, 0, 0, 0}, valid...),
		"wrong_version":  withVersion(0x80020001),
		"reply_type":     withVersion(0x80010002),
		"oneway_type":    withVersion(0x80010004),
		"unversioned":    withVersion(0x00000004),
		"truncated":      valid[:len(valid)/2],
		"header_only":    valid[:3],
		"unknown_method": call(t, "frobnicate", 1, &kvapi.KVStatusArgs{}),
		"garbage":        []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
	}
	// A frame that says it is longer than it is: the rest never comes.
	short := bytes.Clone(valid)
	binary.BigEndian.PutUint32(short, uint32(len(body)+100))
	seeds["frame_overrun"] = short
	// Arguments cut off inside the frame: the length matches what is there.
	cut := body[:len(body)-3]
	seeds["truncated_args"] = append(frameOf(cut), cut...)
	return seeds
}

func clientSeeds(t *testing.T) map[string][]byte {
	put := call(t, "put", 1, &kvapi.KVPutArgs{ClientID: 7, Seq: 1, Key: "colour", Value: []byte("blue")})
	get := call(t, "get", 2, &kvapi.KVGetArgs{Key: "colour", Consistency: kvapi.Consistency_LINEARIZABLE})
	status := call(t, "status", 3, &kvapi.KVStatusArgs{})
	seeds := map[string][]byte{
		"put":              put,
		"put_anonymous":    call(t, "put", 1, &kvapi.KVPutArgs{Key: "k", Value: nil}),
		"put_empty_key":    call(t, "put", 1, &kvapi.KVPutArgs{ClientID: 7, Seq: 2, Key: "", Value: []byte("v")}),
		"put_negative_seq": call(t, "put", 1, &kvapi.KVPutArgs{ClientID: 7, Seq: -1, Key: "k", Value: []byte("v")}),
		"get":              get,
		"get_stale":        call(t, "get", 1, &kvapi.KVGetArgs{Key: "colour", Consistency: kvapi.Consistency_STALE}),
		"get_bad_utf8":     call(t, "get", 1, &kvapi.KVGetArgs{Key: "\xff\xfe", Consistency: kvapi.Consistency_LINEARIZABLE}),
		"get_bad_consistency": call(t, "get", 1, &kvapi.KVGetArgs{Key: "colour",
			Consistency: kvapi.Consistency(7)}),
		"remove":        call(t, "remove", 1, &kvapi.KVRemoveArgs{ClientID: 7, Seq: 3, Key: "colour"}),
		"status":        status,
		"digest":        call(t, "digest", 1, &kvapi.KVDigestArgs{}),
		"backup_new":    call(t, "backup", 1, &kvapi.KVBackupArgs{Index: 0, Offset: 0, MaxBytes: 4096}),
		"backup_resume": call(t, "backup", 1, &kvapi.KVBackupArgs{Index: 3, Offset: 10, MaxBytes: 100}),
		"backup_bad":    call(t, "backup", 1, &kvapi.KVBackupArgs{Index: -1, Offset: 5, MaxBytes: 0}),
		// The replica's own members again: nothing changes. (The seeds cannot
		// know the target's ports; the addresses given are not checked.)
		"reconfigure_same": call(t, "reconfigure", 1, &kvapi.KVReconfigureArgs{Members: []*kvapi.ReplicaAddress{
			{ID: 1, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001"}}}),
		"reconfigure_invalid": call(t, "reconfigure", 1, &kvapi.KVReconfigureArgs{Members: []*kvapi.ReplicaAddress{
			{ID: 0, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:7001"}, nil}}),
		"pipelined": bytes.Join([][]byte{put, get, status}, nil),
	}
	for name, b := range malformedSeeds(t, put) {
		seeds[name] = b
	}
	return seeds
}

// configuration is a configuration entry's data: replicas 1 to 3 on loopback at
// epoch.
func configuration(t *testing.T, epoch uint64) []byte {
	var members []replicas.Replica
	for id := uint64(1); id <= 3; id++ {
		members = append(members, replicas.Replica{ID: id,
			ClientAddr: fmt.Sprintf("127.0.0.1:%d", 7000+id), PeerAddr: fmt.Sprintf("127.0.0.1:%d", 8000+id)})
	}
	b, err := encodeMembership(membership{epoch: epoch, members: members})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func peerSeeds(t *testing.T) map[string][]byte {
	batch := func(key, value string) []byte {
		b, err := command.EncodeBatch([]command.Command{{ClientID: 9, Seq: 1, Op: command.OpPut, Key: key, Value: []byte(value)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ballot := func(round, id int64) *peerapi.Ballot { return &peerapi.Ballot{Round: round, Replica: id} }
	prepare := call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{
		Sender: 2, Ballot: ballot(2, 2), FirstSlot: 1, Epoch: 1}})
	accept := call(t, "accept", 2, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
		Sender: 2, Ballot: ballot(2, 2), Commit: 2, RoundTrip: 1, Epoch: 1,
		Entries: []*peerapi.Entry{
			{Slot: 1, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_COMMANDS, Data: batch("colour", "blue")},
			{Slot: 2, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_NOOP},
		}}})
	execute := call(t, "execute", 3, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
		Sender: 3, Ballot: ballot(3, 3), Commit: 3, Epoch: 1,
		Entries: []*peerapi.Entry{{Slot: 3, Ballot: ballot(3, 3), Kind: peerapi.EntryKind_COMMANDS, Data: batch("shape", "round")}}}})
	seeds := map[string][]byte{
		"prepare": prepare,
		"prepare_probe": call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{
			Sender: 3, Ballot: ballot(4, 3), FirstSlot: 1, Probe: true, Epoch: 1}}),
		"prepare_low_ballot": call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{
			Sender: 2, Ballot: ballot(0, 2), FirstSlot: 1, Epoch: 1}}),
		"prepare_non_member": call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{
			Sender: 9, Ballot: ballot(5, 9), FirstSlot: 1, Epoch: 1}}),
		"prepare_no_ballot": call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{Sender: 2, Epoch: 1}}),
		"accept":            accept,
		"accept_heartbeat": call(t, "accept", 1, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 2, RoundTrip: 2, Epoch: 1}}),
		"accept_other_epoch": call(t, "accept", 1, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
			Sender: 2, Ballot: ballot(2, 2), Epoch: 2, SenderAddr: "127.0.0.1:9"}}),
		"execute": execute,
		"execute_snapshot": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 50, Snapshot: 40, Epoch: 1}}),
		"execute_gap": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 9, Epoch: 1,
			Entries: []*peerapi.Entry{{Slot: 9, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_NOOP}}}}),
		"fetch_snapshot": call(t, "fetch_snapshot", 1, &peerapi.PeerFetchSnapshotArgs{Req: &peerapi.SnapshotRequest{
			Sender: 2, MaxBytes: 1 << 20}}),
		"fetch_snapshot_bad": call(t, "fetch_snapshot", 1, &peerapi.PeerFetchSnapshotArgs{Req: &peerapi.SnapshotRequest{
			Sender: 2, Index: 0, Offset: 7, MaxBytes: 0}}),
		// Requests that name the replica itself (replica 1) as their sender.
		"prepare_from_self": call(t, "prepare", 1, &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{
			Sender: 1, Ballot: ballot(7, 1), FirstSlot: 1, Epoch: 1}}),
		"accept_from_self": call(t, "accept", 1, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
			Sender: 1, Ballot: ballot(7, 1), Commit: 0, RoundTrip: 1, Epoch: 1}}),
		"execute_from_self": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 1, Ballot: ballot(7, 1), Epoch: 1}}),
		// The same members at the next epoch (a member's addresses come from
		// the replica's own file): the replica moves to epoch 2.
		"execute_config": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 4, Epoch: 1,
			Entries: []*peerapi.Entry{{Slot: 4, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_CONFIG, Data: configuration(t, 2)}}}}),
		// Entries whose data does not decode, at the first slot of a new
		// replica, chosen at once.
		"execute_bad_commands": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 1, Epoch: 1,
			Entries: []*peerapi.Entry{{Slot: 1, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_COMMANDS, Data: []byte("garbage")}}}}),
		"execute_bad_config": call(t, "execute", 1, &peerapi.PeerExecuteArgs{Req: &peerapi.ExecuteRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 1, Epoch: 1,
			Entries: []*peerapi.Entry{{Slot: 1, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_CONFIG, Data: []byte("garbage")}}}}),
		"accept_bad_commands": call(t, "accept", 1, &peerapi.PeerAcceptArgs{Req: &peerapi.AcceptRequest{
			Sender: 2, Ballot: ballot(2, 2), Commit: 1, RoundTrip: 1, Epoch: 1,
			Entries: []*peerapi.Entry{{Slot: 1, Ballot: ballot(2, 2), Kind: peerapi.EntryKind_COMMANDS, Data: []byte{0x0f, 0x00}}}}}),
		"inquire":   call(t, "inquire", 1, &peerapi.PeerInquireArgs{Req: &peerapi.InquiryRequest{Sender: 3}}),
		"pipelined": bytes.Join([][]byte{prepare, accept, execute}, nil),
	}
	for name, b := range malformedSeeds(t, accept) {
		seeds[name] = b
	}
	return seeds
}
