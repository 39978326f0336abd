package chaos

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseCompaction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Compaction
		args string
		err  string
	}{
		{in: "aggressive", want: AggressiveCompaction,
			args: "--snapshot-every-slots 200 --snapshot-retain-slots 20 --rewrite-min-bytes 1000000"},
		{in: " off ", want: NoCompaction,
			args: "--snapshot-every-slots 9223372036854775807 --snapshot-every-bytes 9223372036854775807 --rewrite-min-bytes 9223372036854775807"},
		{in: "every-slots=10000", want: Compaction{EverySlots: 10000}, args: "--snapshot-every-slots 10000"},
		{in: "every-slots=500, retain-slots=5,every-bytes=65536,rewrite-min-bytes=200000",
			want: Compaction{EverySlots: 500, RetainSlots: 5, EveryBytes: 65536, RewriteMinBytes: 200000},
			args: "--snapshot-every-slots 500 --snapshot-retain-slots 5 --snapshot-every-bytes 65536 --rewrite-min-bytes 200000"},
		{in: "", err: "want aggressive, off"},
		{in: "every-slots=0", err: "sets nothing"},
		{in: "every-slots=-1", err: "every-slots"},
		{in: "retain=20", err: "unknown setting"},
		{in: "default", err: "want aggressive, off"},
	} {
		got, err := ParseCompaction(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCompaction(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCompaction(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if args := strings.Join(got.args(), " "); args != tc.args {
			t.Errorf("%q: flags %q, want %q", tc.in, args, tc.args)
		}
		// Name spells it back.
		if again, err := ParseCompaction(got.Name()); err != nil || again != got {
			t.Errorf("%q: Name %q parses to %+v, %v", tc.in, got.Name(), again, err)
		}
	}
}

// The zero value is the chaos default, not ballotd's.
func TestCompactionZeroIsAggressive(t *testing.T) {
	var zero Compaction
	if !slices.Equal(zero.args(), AggressiveCompaction.args()) || zero.Name() != "aggressive" {
		t.Fatalf("zero Compaction: flags %v, name %q; want those of aggressive", zero.args(), zero.Name())
	}
	if NoCompaction.EverySlots != math.MaxInt64 {
		t.Fatalf("off snapshots every %d slots", NoCompaction.EverySlots)
	}
}
