package main

import "testing"

func TestRunExitCodes(t *testing.T) {
	t.Setenv("BALLOT_ENDPOINTS", "")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"ballot", "--help"}, 0},
		{[]string{"ballot", "frob"}, 2},
		{[]string{"ballot", "get"}, 2},
		{[]string{"ballot", "--replicas", t.TempDir() + "/missing.txt", "get", "k"}, 3},
	} {
		if got := run(tc.args); got != tc.want {
			t.Errorf("run(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
