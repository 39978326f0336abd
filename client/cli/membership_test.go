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
