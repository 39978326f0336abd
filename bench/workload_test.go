package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// opLine is an Operation in short form for table tests: "put k v", "get k".
func opLine(op Operation) string {
	if op.Kind == OpPut {
		return fmt.Sprintf("%d:put %s %s", op.Line, op.Key, op.Value)
	}
	return fmt.Sprintf("%d:%s %s", op.Line, op.Kind, op.Key)
}

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ops   []string // opLine of each operation
		bad   []string // "line:reason substring" of each malformed line
		lines int
	}{
		{
			name:  "commas",
			input: "PUT,a,1\nGET,a\nDELETE,a\n",
			ops:   []string{"1:put a 1", "2:get a", "3:delete a"},
			lines: 3,
		},
		{
			name:  "whitespace separators and mixed case",
			input: "put a 1\nGet\ta\n  dElEtE   a  \nPUT , b , 2\nPUT,c 3\n",
			ops:   []string{"1:put a 1", "2:get a", "3:delete a", "4:put b 2", "5:put c 3"},
			lines: 5,
		},
		{
			name:  "CRLF line ends",
			input: "PUT,a,1\r\nGET,a\r\n\r\nDELETE,a\r\n",
			ops:   []string{"1:put a 1", "2:get a", "4:delete a"},
			lines: 4,
		},
		{
			name:  "blank lines and comments are skipped but counted",
			input: "# header\n\n   \n\t# indented comment\nPUT,a,1\n",
			ops:   []string{"5:put a 1"},
			lines: 5,
		},
		{
			name:  "a hash inside a field is data",
			input: "PUT,k#1,v#2\nGET,k#1\n",
			ops:   []string{"1:put k#1 v#2", "2:get k#1"},
			lines: 2,
		},
		{
			name:  "last line without a newline",
			input: "PUT,a,1\nGET,a",
			ops:   []string{"1:put a 1", "2:get a"},
			lines: 2,
		},
		{
			name:  "historical third field on GET and DELETE is ignored",
			input: "GET,mD7,booLeejae8ne0lahgoos\nDELETE,mD7,booLeejae8ne0lahgoos\n",
			ops:   []string{"1:get mD7", "2:delete mD7"},
			lines: 2,
		},
		{
			name:  "unknown operation",
			input: "PUTT,a,1\nUPSERT a 1\nPUT,a,1\n",
			ops:   []string{"3:put a 1"},
			bad:   []string{`1:unknown operation "PUTT"`, `2:unknown operation "UPSERT"`},
			lines: 3,
		},
		{
			name:  "missing fields",
			input: "PUT\nPUT,a\nGET\nDELETE\n",
			bad: []string{"1:missing fields: want PUT,key,value", "2:missing fields: want PUT,key,value",
				"3:missing fields: want GET,key", "4:missing fields: want DELETE,key"},
			lines: 4,
		},
		{
			name:  "extra fields",
			input: "PUT,a,1,2\nGET,a,b,c\nDELETE a b c d\n",
			bad:   []string{"1:extra fields (4)", "2:extra fields (4)", "3:extra fields (5)"},
			lines: 3,
		},
		{
			name:  "empty fields",
			input: "PUT,,1\nPUT,a,\nGET,,\nDELETE , ,x\n",
			bad:   []string{"1:empty field 2", "2:empty field 3", "3:empty field 2", "4:empty field 2"},
			lines: 4,
		},
		{
			name:  "a bad line between good ones keeps its line number",
			input: "PUT,a,1\r\n# c\r\nBOGUS\r\nGET,a\r\n",
			ops:   []string{"1:put a 1", "4:get a"},
			bad:   []string{`3:unknown operation "BOGUS"`},
			lines: 4,
		},
		{
			name:  "empty input",
			input: "",
			lines: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := ParseWorkload(strings.NewReader(tc.input))
			if err != nil {
				t.Fatalf("ParseWorkload: %v", err)
			}
			var got []string
			for _, op := range w.Ops {
				got = append(got, opLine(op))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.ops) {
				t.Errorf("operations:\n got %q\nwant %q", got, tc.ops)
			}
			if len(w.Malformed) != len(tc.bad) {
				t.Fatalf("malformed lines: got %v, want %d like %q", w.Malformed, len(tc.bad), tc.bad)
			}
			for i, m := range w.Malformed {
				line, reason, _ := strings.Cut(tc.bad[i], ":")
				if fmt.Sprint(m.Line) != line || !strings.Contains(m.Reason, reason) {
					t.Errorf("malformed %d: got line %d %q, want line %s containing %q", i, m.Line, m.Reason, line, reason)
				}
			}
			if w.Lines != tc.lines {
				t.Errorf("Lines = %d, want %d", w.Lines, tc.lines)
			}
		})
	}
}

func TestParseWorkloadLongLines(t *testing.T) {
	// A value longer than the reader's buffer is still one field.
	big := strings.Repeat("v", 200_000)
	tooLong := strings.Repeat("x", MaxLineBytes+10)
	input := "PUT,a," + big + "\nPUT,b," + tooLong + "\r\nGET,a\n"
	w, err := ParseWorkload(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Ops) != 2 || len(w.Ops[0].Value) != len(big) || w.Ops[1].Kind != OpGet || w.Ops[1].Line != 3 {
		t.Fatalf("ops: got %d, first value %d bytes; want the big put and the get on line 3", len(w.Ops), len(w.Ops[0].Value))
	}
	if len(w.Malformed) != 1 || w.Malformed[0].Line != 2 || !strings.Contains(w.Malformed[0].Reason, "longer than") {
		t.Fatalf("malformed: got %v, want line 2 too long", w.Malformed)
	}
	if n := len(w.Malformed[0].Text); n > maxQuotedText+3 {
		t.Errorf("malformed text kept %d bytes, want at most %d", n, maxQuotedText+3)
	}
}

type failingReader struct{ after io.Reader }

func (r failingReader) Read(p []byte) (int, error) {
	n, err := r.after.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestParseWorkloadReadError(t *testing.T) {
	_, err := ParseWorkload(failingReader{strings.NewReader("PUT,a,1\n")})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v, want the read error", err)
	}
}

func TestShippedWorkloads(t *testing.T) {
	w, err := LoadWorkload("workloads/kvp-operations.txt")
	if err != nil {
		t.Fatal(err)
	}
	var n [numOpKinds]int
	for _, op := range w.Ops {
		n[op.Kind]++
	}
	if len(w.Malformed) != 0 || n[OpPut] != 80 || n[OpGet] != 60 || n[OpDelete] != 10 {
		t.Errorf("kvp-operations.txt: %d put, %d get, %d delete, malformed %v; want 80, 60, 10 and none",
			n[OpPut], n[OpGet], n[OpDelete], w.Malformed)
	}

	w, err = LoadWorkload("workloads/mixed-with-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, m := range w.Malformed {
		lines = append(lines, m.Line)
	}
	if fmt.Sprint(lines) != "[18 19 20 21 22 23]" || len(w.Ops) != 13 {
		t.Errorf("mixed-with-errors.txt: malformed lines %v and %d operations; want [18 19 20 21 22 23] and 13", lines, len(w.Ops))
	}
}

// FuzzParseWorkload checks that any input parses without error into operations
// that are well-formed, that every non-blank, non-comment line is accounted for
// exactly once and under its own number (the line alone parses to the same
// operation or the same reason), and that writing the operations out again
// parses back to the same.
func FuzzParseWorkload(f *testing.F) {
	for _, s := range []string{
		"PUT,a,1\nGET,a\nDELETE,a\n",
		"put a 1\r\n# c\r\n\r\nget , a\n",
		"PUTT,a\nGET\nPUT,a,b,c\nDELETE,,\n",
		"GET,k,v\n\t#x\n  PUT k#1 v ,\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWorkload(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("ParseWorkload: %v", err)
		}
		wantLines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			wantLines++
		}
		if w.Lines != wantLines {
			t.Fatalf("Lines = %d, want %d", w.Lines, wantLines)
		}
		prev := 0
		seen := make(map[int]bool)
		for _, op := range w.Ops {
			if op.Key == "" || strings.ContainsAny(op.Key, ", \t\r\n") || op.Kind >= numOpKinds {
				t.Fatalf("bad operation %+v", op)
			}
			if (op.Kind == OpPut) != (len(op.Value) > 0) || bytes.ContainsAny(op.Value, ", \t\r\n") {
				t.Fatalf("bad value in %+v", op)
			}
			if op.Line <= prev || op.Line > w.Lines {
				t.Fatalf("line %d after %d of %d", op.Line, prev, w.Lines)
			}
			prev = op.Line
			seen[op.Line] = true
		}
		for _, m := range w.Malformed {
			if m.Line < 1 || m.Line > w.Lines || seen[m.Line] || m.Reason == "" {
				t.Fatalf("bad malformed entry %+v", m)
			}
			seen[m.Line] = true
		}

		// Each line is read on its own: parsed alone, the line an operation or a
		// malformed entry names gives that same operation or reason.
		lines := bytes.Split(data, []byte("\n"))
		for i, op := range w.Ops[:min(len(w.Ops), 64)] {
			alone, err := ParseWorkload(bytes.NewReader(lines[op.Line-1]))
			if err != nil || len(alone.Ops) != 1 || alone.Ops[0].Kind != op.Kind || alone.Ops[0].Key != op.Key ||
				!bytes.Equal(alone.Ops[0].Value, op.Value) {
				t.Fatalf("op %d %+v: its line %d alone parses to %+v, %v", i, op, op.Line, alone, err)
			}
		}
		for _, m := range w.Malformed[:min(len(w.Malformed), 64)] {
			alone, err := ParseWorkload(bytes.NewReader(lines[m.Line-1]))
			if err != nil || len(alone.Malformed) != 1 || alone.Malformed[0].Reason != m.Reason {
				t.Fatalf("malformed %+v: its line alone parses to %+v, %v", m, alone, err)
			}
		}

		var out bytes.Buffer
		for _, op := range w.Ops {
			switch op.Kind {
			case OpPut:
				fmt.Fprintf(&out, "PUT,%s,%s\n", op.Key, op.Value)
			case OpGet:
				fmt.Fprintf(&out, "GET,%s\n", op.Key)
			case OpDelete:
				fmt.Fprintf(&out, "DELETE,%s\n", op.Key)
			}
		}
		again, err := ParseWorkload(&out)
		if err != nil || len(again.Malformed) != 0 || len(again.Ops) != len(w.Ops) {
			t.Fatalf("round trip: %v, %d malformed, %d ops, want %d ops", err, len(again.Malformed), len(again.Ops), len(w.Ops))
		}
		for i, op := range again.Ops {
			if op.Kind != w.Ops[i].Kind || op.Key != w.Ops[i].Key || !bytes.Equal(op.Value, w.Ops[i].Value) {
				t.Fatalf("round trip: op %d is %+v, want %+v", i, op, w.Ops[i])
			}
		}
	})
}
