package server

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ballot-kv/ballot/replicas"
)

func TestMembershipRoundTrip(t *testing.T) {
	m := membership{epoch: 3, members: []replicas.Replica{
		{ID: 1, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001"},
		{ID: 4, ClientAddr: "127.0.0.1:7004", PeerAddr: "127.0.0.1:8004"},
	}}
	b, err := encodeMembership(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMembership(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), b[:len(b)/2]} {
		if _, err := decodeMembership(bad); err == nil {
			t.Errorf("decoding %q succeeded", bad)
		}
	}
}

// Every way a replicas file can differ from the committed configuration is named,
// and a file that lists the same members (in any order, with its own line
// numbers) differs in nothing.
func TestMembershipDiff(t *testing.T) {
	committed := membership{epoch: 1, members: []replicas.Replica{
		{ID: 1, ClientAddr: "a:1", PeerAddr: "a:2"},
		{ID: 2, ClientAddr: "b:1", PeerAddr: "b:2"},
		{ID: 3, ClientAddr: "c:1", PeerAddr: "c:2"},
	}}
	same := []replicas.Replica{
		{ID: 3, ClientAddr: "c:1", PeerAddr: "c:2", Line: 9},
		{ID: 1, ClientAddr: "a:1", PeerAddr: "a:2", Line: 4},
		{ID: 2, ClientAddr: "b:1", PeerAddr: "b:2", Line: 5},
	}
	if d := membershipDiff(committed, same); len(d) != 0 {
		t.Fatalf("the same members differ: %q", d)
	}
	edited := []replicas.Replica{
		{ID: 1, ClientAddr: "a:1", PeerAddr: "a:2"},
		{ID: 2, ClientAddr: "b:9", PeerAddr: "b:2"},
		{ID: 6, ClientAddr: "f:1", PeerAddr: "f:2"},
	}
	d := strings.Join(membershipDiff(committed, edited), "\n")
	for _, want := range []string{"replica 2 is at b:9", "replica 6 (f:1, f:2) is in the file but not a member",
		"member 3 (c:1, c:2) is missing from the file"} {
		if !strings.Contains(d, want) {
			t.Errorf("differences %q lack %q", d, want)
		}
	}
}

// The configuration says who the members are; the replica's own file says where
// to reach each one it lists.
func TestWithFileAddresses(t *testing.T) {
	committed := membership{epoch: 2, members: []replicas.Replica{
		{ID: 1, ClientAddr: "a:1", PeerAddr: "a:2"},
		{ID: 2, ClientAddr: "b:1", PeerAddr: "b:2"},
	}}
	file := []replicas.Replica{{ID: 2, ClientAddr: "proxy:1", PeerAddr: "proxy:2"}, {ID: 9, ClientAddr: "z:1", PeerAddr: "z:2"}}
	got := withFileAddresses(committed, file)
	want := membership{epoch: 2, members: []replicas.Replica{
		{ID: 1, ClientAddr: "a:1", PeerAddr: "a:2"},
		{ID: 2, ClientAddr: "proxy:1", PeerAddr: "proxy:2"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if committed.members[1].ClientAddr != "b:1" {
		t.Fatal("withFileAddresses changed its argument")
	}
}
