package cli

import (
	"strings"
	"testing"
)

// status names a replica the file lists that is not a member, and a member the
// file does not list, from the configuration the replicas report.
func TestMembershipNotes(t *testing.T) {
	rows := []replicaStatus{
		{ID: 1, Up: true, ConfigEpoch: 1, Members: []int64{1, 2, 3}},
		{ID: 2, Up: false},
		{ID: 6, Up: true, ConfigEpoch: 0},
	}
	notes := strings.Join(membershipNotes(rows, "replicas.txt"), "\n")
	for _, want := range []string{
		"replica 3 is a member of the committed configuration (epoch 1) but is not in replicas.txt",
		"replica 6 is in replicas.txt but not a member of the committed configuration (epoch 1, members [1 2 3])",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	if strings.Contains(notes, "replica 1 ") || strings.Contains(notes, "replica 2 ") {
		t.Errorf("notes %q name a listed member", notes)
	}
	if n := membershipNotes(rows[1:], "replicas.txt"); n != nil {
		t.Errorf("no replica reported a configuration, yet notes %q", n)
	}
	if n := strings.Join(membershipNotes(rows, ""), "\n"); strings.Contains(n, "replica 3") || !strings.Contains(n, "--endpoints") {
		t.Errorf("with --endpoints, notes %q", n)
	}
}

// The addresses the committed configuration records (status member_addresses)
// name members that neither answered nor are in any file, so dropping several
// members needs no --current file.
func TestCommittedConfigUsesRecordedAddresses(t *testing.T) {
	rows := []replicaStatus{
		{ID: 1, Up: true, ClientAddr: "a:1", PeerAddr: "a:2", ConfigEpoch: 4, Member: true, Members: []int64{1, 7, 8},
			MemberAddresses: []memberAddress{{1, "a:1", "a:2"}, {7, "g:1", "g:2"}, {8, "h:1", "h:2"}}},
	}
	cur, err := committedConfig(rows, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cur.members {
		if m.ClientAddr == "" || m.PeerAddr == "" {
			t.Fatalf("member %d has no address: %+v", m.ID, cur.members)
		}
	}
	if cur.members[1].ClientAddr != "g:1" || cur.members[2].PeerAddr != "h:2" {
		t.Fatalf("members %+v: want the recorded addresses", cur.members)
	}
}
