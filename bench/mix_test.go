package bench

import (
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form, or "error: substring"
	}{
		{"put=50,get=50,delete=0", "put=50,get=50"},
		{"PUT=1", "put=1"},
		{" get = 3 , delete=1 ", "get=3,delete=1"},
		{"put=100,", "put=100"},
		{"put=0,get=0", "error: no operation has a positive weight"},
		{"", "error: no operation has a positive weight"},
		{"put", "error: not name=weight"},
		{"upsert=5", `error: unknown operation "upsert"`},
		{"put=1,put=2", "error: put given twice"},
		{"put=-1", "error: whole number"},
		{"put=1.5", "error: whole number"},
		{"put=99999999", "error: whole number"},
	}
	for _, tc := range tests {
		m, err := ParseMix(tc.in)
		if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ParseMix(%q) = %v, %v; want an error containing %q", tc.in, m, err, want)
			}
			continue
		}
		if err != nil || m.String() != tc.want {
			t.Errorf("ParseMix(%q) = %q, %v; want %q", tc.in, m, err, tc.want)
		}
	}
}

func TestMixPick(t *testing.T) {
	m, err := ParseMix("put=2,get=0,delete=3")
	if err != nil {
		t.Fatal(err)
	}
	var got []OpKind
	for r := range m.total() {
		got = append(got, m.pick(r))
	}
	want := []OpKind{OpPut, OpPut, OpDelete, OpDelete, OpDelete}
	if len(got) != len(want) {
		t.Fatalf("pick over the range: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pick over the range: %v, want %v", got, want)
		}
	}
}

func TestParseReadMode(t *testing.T) {
	for in, want := range map[string]ReadMode{"stale": Stale, "Linearizable": Linearizable, "lin": Linearizable} {
		if got, err := ParseReadMode(in); err != nil || got != want {
			t.Errorf("ParseReadMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseReadMode("eventual"); err == nil {
		t.Error("ParseReadMode(eventual) succeeded")
	}
}
