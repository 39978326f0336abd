package transport

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// testEntries covers both kinds, binary data with NUL bytes, empty data and the
// largest representable numbers.
func testEntries() []peer.Entry {
	return []peer.Entry{
		{Slot: 7, Ballot: peer.Ballot{Round: 3, ID: 1}, Kind: peer.KindCommands, Data: []byte("put\x00k\x00\xff\x00v")},
		{Slot: 8, Ballot: peer.Ballot{Round: 3, ID: 1}, Kind: peer.KindNoop},
		{Slot: math.MaxInt64, Ballot: peer.Ballot{Round: math.MaxInt64, ID: math.MaxInt64}, Kind: peer.KindCommands, Data: []byte{0, 0, 0}},
	}
}

// roundTrip converts m to its Thrift struct and back.
func roundTrip(m peer.Message) (peer.Message, error) {
	switch m.Type {
	case peer.MsgPrepare:
		r, err := PrepareToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return PrepareFromThrift(r)
	case peer.MsgPromise:
		r, err := PromiseToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return PromiseFromThrift(r)
	case peer.MsgAccept:
		r, err := AcceptToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return AcceptFromThrift(r)
	case peer.MsgAccepted:
		r, err := AcceptedToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return AcceptedFromThrift(r)
	case peer.MsgExecute:
		r, err := ExecuteToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return ExecuteFromThrift(r)
	case peer.MsgExecuted:
		r, err := ExecutedToThrift(m)
		if err != nil {
			return peer.Message{}, err
		}
		return ExecutedFromThrift(r)
	}
	return peer.Message{}, ErrUnsupported
}

// TestConvertRoundTrip checks that every field the IDL carries survives the trip
// to Thrift and back, for every message type.
func TestConvertRoundTrip(t *testing.T) {
	b := peer.Ballot{Round: 5, ID: 3}
	tests := []struct {
		name string
		m    peer.Message
	}{
		{"prepare", peer.Message{Type: peer.MsgPrepare, From: 3, Ballot: b, Slot: 42}},
		{"prepare zero", peer.Message{Type: peer.MsgPrepare}},
		{"pre-vote prepare", peer.Message{Type: peer.MsgPrepare, From: 3, Ballot: b, Slot: 42, Probe: true}},
		{"pre-vote promise", peer.Message{Type: peer.MsgPromise, From: 2, OK: true, Ballot: b, Commit: 6, Probe: true}},
		{"promise ok", peer.Message{Type: peer.MsgPromise, From: 2, OK: true, Ballot: b, Entries: testEntries(), Commit: 6}},
		{"promise refused", peer.Message{Type: peer.MsgPromise, From: 2, Ballot: peer.Ballot{Round: 9, ID: 1}}},
		{"accept", peer.Message{Type: peer.MsgAccept, From: 3, Ballot: b, Entries: testEntries(), Commit: 6, RoundTrip: 11}},
		{"heartbeat", peer.Message{Type: peer.MsgAccept, From: 3, Ballot: b, Commit: 6, RoundTrip: math.MaxInt64}},
		{"accepted", peer.Message{Type: peer.MsgAccepted, From: 1, OK: true, Ballot: b, Commit: 8, RoundTrip: 11}},
		{"execute", peer.Message{Type: peer.MsgExecute, From: 3, Ballot: b, Entries: testEntries(), Commit: math.MaxInt64}},
		{"snapshot hint", peer.Message{Type: peer.MsgExecute, From: 3, Ballot: b, Commit: 900, Snapshot: 800}},
		{"accept in epoch 4", peer.Message{Type: peer.MsgAccept, From: 3, Ballot: b, Commit: 6, RoundTrip: 2, Epoch: 4,
			Entries: []peer.Entry{{Slot: 7, Ballot: b, Kind: peer.KindConfig, Data: []byte("members")}}}},
		{"promise in epoch 4", peer.Message{Type: peer.MsgPromise, From: 2, OK: true, Ballot: b, Commit: 6, Epoch: 4}},
		{"executed in epoch 2", peer.Message{Type: peer.MsgExecuted, From: 1, Commit: 8, Epoch: 2}},
		{"promise refused, compacted", peer.Message{Type: peer.MsgPromise, From: 2, Ballot: b, Commit: 900, Snapshot: 800}},
		{"executed", peer.Message{Type: peer.MsgExecuted, From: 1, Commit: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := roundTrip(tt.m)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
}

func TestConvertFieldMapping(t *testing.T) {
	m := peer.Message{Type: peer.MsgAccept, From: 3, Ballot: peer.Ballot{Round: 5, ID: 3}, Entries: testEntries()[:1], Commit: 6, RoundTrip: 11}
	r, err := AcceptToThrift(m)
	if err != nil {
		t.Fatal(err)
	}
	want := &peerapi.AcceptRequest{
		Sender:    3,
		Ballot:    &peerapi.Ballot{Round: 5, Replica: 3},
		Entries:   []*peerapi.Entry{{Slot: 7, Ballot: &peerapi.Ballot{Round: 3, Replica: 1}, Kind: peerapi.EntryKind_COMMANDS, Data: m.Entries[0].Data}},
		Commit:    6,
		RoundTrip: 11,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	e, err := EntryToThrift(peer.Entry{Slot: 1, Kind: peer.KindNoop})
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != peerapi.EntryKind_NOOP {
		t.Fatalf("noop entry has kind %v", e.Kind)
	}
	back, err := EntryFromThrift(e)
	if err != nil || back.Kind != peer.KindNoop || back.Slot != 1 {
		t.Fatalf("entry back: %+v, %v", back, err)
	}
	bb, err := BallotToThrift(peer.Ballot{Round: 4, ID: 2})
	if err != nil || bb.Round != 4 || bb.Replica != 2 {
		t.Fatalf("ballot: %+v, %v", bb, err)
	}
	if got, err := BallotFromThrift(bb); err != nil || got != (peer.Ballot{Round: 4, ID: 2}) {
		t.Fatalf("ballot back: %+v, %v", got, err)
	}
}

// TestConvertRejectsNegative checks that a negative i64 from the wire is an error,
// never a huge uint64.
func TestConvertRejectsNegative(t *testing.T) {
	ok := func() *peerapi.Ballot { return &peerapi.Ballot{Round: 1, Replica: 1} }
	entry := func(slot, round int64) []*peerapi.Entry {
		return []*peerapi.Entry{{Slot: slot, Ballot: &peerapi.Ballot{Round: round, Replica: 1}}}
	}
	tests := []struct {
		name string
		conv func() (peer.Message, error)
	}{
		{"prepare sender", func() (peer.Message, error) {
			return PrepareFromThrift(&peerapi.PrepareRequest{Sender: -1, Ballot: ok()})
		}},
		{"prepare first slot", func() (peer.Message, error) {
			return PrepareFromThrift(&peerapi.PrepareRequest{Ballot: ok(), FirstSlot: math.MinInt64})
		}},
		{"prepare ballot round", func() (peer.Message, error) {
			return PrepareFromThrift(&peerapi.PrepareRequest{Ballot: &peerapi.Ballot{Round: -1}})
		}},
		{"prepare ballot replica", func() (peer.Message, error) {
			return PrepareFromThrift(&peerapi.PrepareRequest{Ballot: &peerapi.Ballot{Replica: -2}})
		}},
		{"promise chosen", func() (peer.Message, error) {
			return PromiseFromThrift(&peerapi.Promise{Promised: ok(), Chosen: -1})
		}},
		{"promise entry slot", func() (peer.Message, error) {
			return PromiseFromThrift(&peerapi.Promise{Promised: ok(), Accepted: entry(-1, 1)})
		}},
		{"accept entry ballot", func() (peer.Message, error) {
			return AcceptFromThrift(&peerapi.AcceptRequest{Ballot: ok(), Entries: entry(1, -1)})
		}},
		{"accept commit", func() (peer.Message, error) {
			return AcceptFromThrift(&peerapi.AcceptRequest{Ballot: ok(), Commit: -1})
		}},
		{"accept round trip", func() (peer.Message, error) {
			return AcceptFromThrift(&peerapi.AcceptRequest{Ballot: ok(), RoundTrip: -1})
		}},
		{"accepted round trip", func() (peer.Message, error) {
			return AcceptedFromThrift(&peerapi.Accepted{Promised: ok(), RoundTrip: -1})
		}},
		{"accepted sender", func() (peer.Message, error) {
			return AcceptedFromThrift(&peerapi.Accepted{Sender: -1, Promised: ok()})
		}},
		{"execute commit", func() (peer.Message, error) {
			return ExecuteFromThrift(&peerapi.ExecuteRequest{Ballot: ok(), Commit: -5})
		}},
		{"executed chosen", func() (peer.Message, error) {
			return ExecutedFromThrift(&peerapi.Executed{Chosen: -1})
		}},
		{"executed sender", func() (peer.Message, error) {
			return ExecutedFromThrift(&peerapi.Executed{Sender: -1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.conv()
			if !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("got %+v, %v; want ErrOutOfRange", m, err)
			}
		})
	}
	if _, err := BallotFromThrift(&peerapi.Ballot{Round: -1}); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ballot: %v, want ErrOutOfRange", err)
	}
	if _, err := EntryFromThrift(entry(-3, 1)[0]); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("entry: %v, want ErrOutOfRange", err)
	}
}

// TestConvertRejectsTooLarge checks that a uint64 above math.MaxInt64 is an error
// instead of a negative number on the wire.
func TestConvertRejectsTooLarge(t *testing.T) {
	const big = math.MaxInt64 + 1
	tests := []struct {
		name string
		m    peer.Message
	}{
		{"prepare sender", peer.Message{Type: peer.MsgPrepare, From: big}},
		{"prepare slot", peer.Message{Type: peer.MsgPrepare, Slot: math.MaxUint64}},
		{"prepare ballot", peer.Message{Type: peer.MsgPrepare, Ballot: peer.Ballot{Round: big}}},
		{"promise entry", peer.Message{Type: peer.MsgPromise, Entries: []peer.Entry{{Slot: big}}}},
		{"promise entry ballot", peer.Message{Type: peer.MsgPromise, Entries: []peer.Entry{{Ballot: peer.Ballot{ID: big}}}}},
		{"accept commit", peer.Message{Type: peer.MsgAccept, Commit: big}},
		{"accept round trip", peer.Message{Type: peer.MsgAccept, RoundTrip: big}},
		{"accepted ballot", peer.Message{Type: peer.MsgAccepted, Ballot: peer.Ballot{ID: big}}},
		{"execute commit", peer.Message{Type: peer.MsgExecute, Commit: big}},
		{"executed commit", peer.Message{Type: peer.MsgExecuted, Commit: big}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := roundTrip(tt.m); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("got %v, want ErrOutOfRange", err)
			}
		})
	}
}

func TestConvertRejectsMissing(t *testing.T) {
	tests := []struct {
		name string
		conv func() (peer.Message, error)
	}{
		{"nil prepare", func() (peer.Message, error) { return PrepareFromThrift(nil) }},
		{"nil promise", func() (peer.Message, error) { return PromiseFromThrift(nil) }},
		{"nil accept", func() (peer.Message, error) { return AcceptFromThrift(nil) }},
		{"nil accepted", func() (peer.Message, error) { return AcceptedFromThrift(nil) }},
		{"nil execute", func() (peer.Message, error) { return ExecuteFromThrift(nil) }},
		{"nil executed", func() (peer.Message, error) { return ExecutedFromThrift(nil) }},
		{"prepare without ballot", func() (peer.Message, error) { return PrepareFromThrift(&peerapi.PrepareRequest{}) }},
		{"promise without ballot", func() (peer.Message, error) { return PromiseFromThrift(&peerapi.Promise{}) }},
		{"accepted without ballot", func() (peer.Message, error) { return AcceptedFromThrift(&peerapi.Accepted{}) }},
		{"entry without ballot", func() (peer.Message, error) {
			return AcceptFromThrift(&peerapi.AcceptRequest{Ballot: &peerapi.Ballot{}, Entries: []*peerapi.Entry{{Slot: 1}}})
		}},
		{"nil entry", func() (peer.Message, error) {
			return ExecuteFromThrift(&peerapi.ExecuteRequest{Ballot: &peerapi.Ballot{}, Entries: []*peerapi.Entry{nil}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.conv(); !errors.Is(err, ErrMissingField) {
				t.Fatalf("got %v, want ErrMissingField", err)
			}
		})
	}
	if _, err := BallotFromThrift(nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("nil ballot: %v", err)
	}
	if _, err := EntryFromThrift(nil); !errors.Is(err, ErrMissingField) {
		t.Fatalf("nil entry: %v", err)
	}
}

func TestConvertRejectsUnsupported(t *testing.T) {
	if _, err := PrepareToThrift(peer.Message{Type: peer.MsgAccept}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("accept as prepare: %v", err)
	}
	if _, err := ExecutedToThrift(peer.Message{Type: peer.MsgPromise}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("promise as executed: %v", err)
	}
	if _, err := EntryToThrift(peer.Entry{Kind: 9}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("entry kind 9: %v", err)
	}
	bad := &peerapi.AcceptRequest{Ballot: &peerapi.Ballot{}, Entries: []*peerapi.Entry{{Ballot: &peerapi.Ballot{}, Kind: 7}}}
	if _, err := AcceptFromThrift(bad); !errors.Is(err, ErrUnsupported) {
		t.Errorf("wire entry kind 7: %v", err)
	}
}

// benchAccept is an accept of 64 entries of 100 bytes.
func benchAccept() peer.Message {
	es := make([]peer.Entry, 64)
	for i := range es {
		es[i] = peer.Entry{Slot: uint64(100 + i), Ballot: peer.Ballot{Round: 7, ID: 1}, Data: make([]byte, 100)}
	}
	return peer.Message{Type: peer.MsgAccept, From: 1, Ballot: peer.Ballot{Round: 7, ID: 1}, Entries: es, Commit: 99, RoundTrip: 5}
}

func BenchmarkAcceptToThrift(b *testing.B) {
	m := benchAccept()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AcceptToThrift(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcceptFromThrift(b *testing.B) {
	r, err := AcceptToThrift(benchAccept())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AcceptFromThrift(r); err != nil {
			b.Fatal(err)
		}
	}
}
