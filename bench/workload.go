package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// MaxLineBytes bounds one workload line: room for the largest legal key and value
// and the separators. A longer line is reported as malformed and skipped.
const MaxLineBytes = kvapi.MAX_KEY_BYTES + kvapi.MAX_VALUE_BYTES + 64

// maxQuotedText bounds the text of a malformed line kept for its report.
const maxQuotedText = 80

// Operation is one line of a workload file.
type Operation struct {
	Kind  OpKind
	Key   string
	Value []byte // set for puts only
	Line  int    // 1-based line number in the file
}

// Malformed is a line that could not be read as an operation; it was skipped.
type Malformed struct {
	Line   int    // 1-based line number
	Reason string // what is wrong, e.g. `unknown operation "PUTT"`
	Text   string // the line, cut to 80 bytes
}

// String is "line N: reason: text".
func (m Malformed) String() string {
	return fmt.Sprintf("line %d: %s: %q", m.Line, m.Reason, m.Text)
}

// Workload is a parsed workload file.
type Workload struct {
	// Name is where the workload came from (a file name), for reports.
	Name string
	// Ops are the well-formed operations, in file order.
	Ops []Operation
	// Lines is the number of lines read, blank and comment lines included.
	Lines int
	// Malformed lists the lines that were skipped, in file order.
	Malformed []Malformed
}

// LoadWorkload reads and parses the workload file at path.
func LoadWorkload(path string) (*Workload, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	defer f.Close()
	w, err := ParseWorkload(f)
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", path, err)
	}
	w.Name = path
	return w, nil
}

// ParseWorkload reads a workload: one operation per line,
//
//	PUT,key,value
//	GET,key
//	DELETE,key
//
// Operation names are case-insensitive. Fields are separated by a comma (with
// optional spaces or tabs around it) or by spaces and tabs alone, so "PUT k v" and
// "put , k , v" mean the same. Lines may end in LF or CRLF. Blank lines and lines
// whose first non-blank character is '#' are skipped; a '#' anywhere else is part
// of a key or value. GET and DELETE lines may carry a third field, which is
// ignored: the historical files record the value last written to the key there.
//
// A line that is not an operation (unknown operation, missing or empty fields,
// extra fields, or longer than MaxLineBytes) is recorded in Workload.Malformed with
// its line number and skipped; it never stops the parse. The error is non-nil only
// when reading r fails.
func ParseWorkload(r io.Reader) (*Workload, error) {
	w := &Workload{}
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // the line being read when it spans several buffers
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Keep up to MaxLineBytes+1 bytes: enough to tell an over-long line.
			if room := MaxLineBytes + 1 - len(long); room > 0 {
				long = append(long, chunk[:min(len(chunk), room)]...)
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return w, fmt.Errorf("line %d: %w", w.Lines+1, err)
		}
		if len(chunk) == 0 && len(long) == 0 {
			return w, nil // end of input on a line boundary
		}
		line := chunk
		if len(long) > 0 {
			if room := MaxLineBytes + 1 - len(long); room > 0 {
				long = append(long, chunk[:min(len(chunk), room)]...)
			}
			line, long = long, long[:0]
		}
		w.Lines++
		w.parseLine(line, w.Lines)
		if err != nil {
			return w, nil // io.EOF after a last line without a newline
		}
	}
}

// parseLine adds the line numbered n to the workload as an operation or as a
// malformed line; blank and comment lines add nothing.
func (w *Workload) parseLine(raw []byte, n int) {
	line := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
	if len(line) > MaxLineBytes {
		w.malformed(n, fmt.Sprintf("line longer than %d bytes", MaxLineBytes), line)
		return
	}
	text := strings.Trim(string(line), " \t\r")
	if text == "" || text[0] == '#' {
		return
	}
	fields := splitFields(text)
	kind, ok := parseOpKind(fields[0])
	if !ok {
		w.malformed(n, fmt.Sprintf("unknown operation %q (want PUT, GET or DELETE)", cut(fields[0], 20)), line)
		return
	}
	want := 2 // GET key, DELETE key, and an ignored third field
	if kind == OpPut {
		want = 3
	}
	switch {
	case len(fields) < want:
		w.malformed(n, "missing fields: want "+usage(kind), line)
		return
	case len(fields) > 3:
		w.malformed(n, fmt.Sprintf("extra fields (%d): want %s", len(fields), usage(kind)), line)
		return
	}
	for i, f := range fields {
		if f == "" {
			w.malformed(n, fmt.Sprintf("empty field %d: want %s", i+1, usage(kind)), line)
			return
		}
	}
	op := Operation{Kind: kind, Key: fields[1], Line: n}
	if kind == OpPut {
		op.Value = []byte(fields[2])
	}
	w.Ops = append(w.Ops, op)
}

func (w *Workload) malformed(n int, reason string, line []byte) {
	w.Malformed = append(w.Malformed, Malformed{Line: n, Reason: reason, Text: cut(string(line), maxQuotedText)})
}

// usage says what fields an operation takes.
func usage(k OpKind) string {
	if k == OpPut {
		return "PUT,key,value"
	}
	return strings.ToUpper(k.String()) + ",key"
}

// cut shortens s to at most n bytes, marking the cut with "...".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// splitFields splits a trimmed, non-empty line at commas (spaces and tabs around
// a comma belong to the separator) and at runs of spaces and tabs. Two commas in a
// row, or a comma at the end, make an empty field.
func splitFields(s string) []string {
	var fields []string
	i := 0
	for {
		start := i
		for i < len(s) && s[i] != ',' && !isBlank(s[i]) {
			i++
		}
		fields = append(fields, s[start:i])
		for i < len(s) && isBlank(s[i]) {
			i++
		}
		if i == len(s) {
			return fields
		}
		if s[i] == ',' {
			i++
			for i < len(s) && isBlank(s[i]) {
				i++
			}
			if i == len(s) {
				return append(fields, "") // a trailing comma: the last field is empty
			}
		}
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
