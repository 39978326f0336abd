package replicas

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a *ParseError
// naming the file and the first line at fault, and that every list it accepts
// keeps the package's promises and writes back out to the same list. The seed
// corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	// Too long to keep as a file: a line one byte over the limit, after a good one.
	f.Add("1 a:1 b:1\n2 " + strings.Repeat("x", MaxLineBytes) + ":1 c:1\n")
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
			checkErrorLine(t, input, pe)
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

// lineErrors are the errors about one line on its own; the others (duplicates)
// need the lines before it, and ErrEmpty concerns the whole file.
var lineErrors = []error{ErrFields, ErrID, ErrAddr, ErrLineTooLong}

// checkErrorLine checks that pe wraps one of the package's errors and, when it
// names a line, that the message starts with file:line, that every line before
// it parses, and that a fault of the line itself is found in the line alone.
func checkErrorLine(t *testing.T, input string, pe *ParseError) {
	t.Helper()
	kinds := append([]error{ErrDuplicateID, ErrDuplicateAddr, ErrEmpty}, lineErrors...)
	var kind error
	for _, k := range kinds {
		if errors.Is(pe, k) {
			kind = k
		}
	}
	if kind == nil {
		t.Fatalf("error %q wraps none of the package's errors", pe)
	}
	if pe.Line == 0 {
		if kind != ErrEmpty {
			t.Fatalf("error %q names no line", pe)
		}
		return
	}
	if want := fmt.Sprintf("fuzz.txt:%d: ", pe.Line); !strings.HasPrefix(pe.Error(), want) {
		t.Fatalf("error %q does not start with %q", pe, want)
	}
	// Lines as bufio.Scanner splits them; a final line without a newline counts.
	lines := strings.SplitAfter(input, "\n")
	if pe.Line > len(lines) {
		t.Fatalf("error %q names line %d of %d", pe, pe.Line, len(lines))
	}
	before := strings.Join(lines[:pe.Line-1], "")
	if _, err := Parse(strings.NewReader(before), "before.txt"); err != nil && !errors.Is(err, ErrEmpty) {
		t.Fatalf("error %q names line %d, but the lines before it fail already: %v", pe, pe.Line, err)
	}
	for _, k := range lineErrors {
		if k != kind {
			continue
		}
		_, err := Parse(strings.NewReader(lines[pe.Line-1]), "alone.txt")
		var alone *ParseError
		if !errors.As(err, &alone) || !errors.Is(err, kind) || alone.Line != 1 {
			t.Fatalf("error %q: line %d alone gives %v", pe, pe.Line, err)
		}
	}
}
