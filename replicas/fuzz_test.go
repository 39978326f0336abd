package replicas

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a *ParseError
// naming the file, and that every list it accepts keeps the package's promises.
// The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, input string) {
		list, err := Parse(strings.NewReader(input), "fuzz.txt")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "fuzz.txt" {
				t.Fatalf("error %q is not a *ParseError for fuzz.txt", err)
			}
			if list != nil {
				t.Fatalf("Parse returned %+v alongside error %q", list, err)
			}
			return
		}
		if len(list) == 0 {
			t.Fatal("Parse returned an empty list without error")
		}
		ids := make(map[uint64]bool)
		addrs := make(map[string]bool)
		prevLine := 0
		for _, r := range list {
			if r.ID == 0 || r.ID > MaxID {
				t.Fatalf("id %d out of range", r.ID)
			}
			if ids[r.ID] {
				t.Fatalf("duplicate id %d accepted", r.ID)
			}
			ids[r.ID] = true
			for _, a := range []string{r.ClientAddr, r.PeerAddr} {
				if err := checkAddr(a); err != nil {
					t.Fatalf("invalid address accepted: %v", err)
				}
				k := addrKey(a)
				if addrs[k] {
					t.Fatalf("duplicate address %q accepted", a)
				}
				addrs[k] = true
			}
			if r.Line <= prevLine {
				t.Fatalf("line %d after line %d: not in file order", r.Line, prevLine)
			}
			prevLine = r.Line
		}
		// Writing the list back out, one replica per line, parses to the same list.
		var b strings.Builder
		for _, r := range list {
			fmt.Fprintf(&b, "%d %s %s\n", r.ID, r.ClientAddr, r.PeerAddr)
		}
		again, err := Parse(strings.NewReader(b.String()), "again.txt")
		if err != nil {
			t.Fatalf("re-parsing accepted list: %v", err)
		}
		for i := range again {
			again[i].Line = list[i].Line
		}
		if !reflect.DeepEqual(again, list) {
			t.Fatalf("round trip changed the list:\n%+v\n%+v", list, again)
		}
	})
}
