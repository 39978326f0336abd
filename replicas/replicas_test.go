package replicas

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Replica
	}{
		{
			name:  "single replica",
			input: "1 127.0.0.1:7001 127.0.0.1:8001\n",
			want:  []Replica{{ID: 1, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001", Line: 1}},
		},
		{
			name: "comments blank lines and file order",
			input: "# id client peer\n" +
				"\n" +
				"3\t127.0.0.1:7003   127.0.0.1:8003   # third, listed first\n" +
				"   \t  \n" +
				"  1 127.0.0.1:7001 127.0.0.1:8001\n" +
				"#2 127.0.0.1:7002 127.0.0.1:8002\n" +
				"2 127.0.0.1:7002 127.0.0.1:8002#no space before comment\n",
			want: []Replica{
				{ID: 3, ClientAddr: "127.0.0.1:7003", PeerAddr: "127.0.0.1:8003", Line: 3},
				{ID: 1, ClientAddr: "127.0.0.1:7001", PeerAddr: "127.0.0.1:8001", Line: 5},
				{ID: 2, ClientAddr: "127.0.0.1:7002", PeerAddr: "127.0.0.1:8002", Line: 7},
			},
		},
		{
			name:  "no trailing newline and CRLF line endings",
			input: "1 a.example:1 a.example:2\r\n2 b.example:1 b.example:2",
			want: []Replica{
				{ID: 1, ClientAddr: "a.example:1", PeerAddr: "a.example:2", Line: 1},
				{ID: 2, ClientAddr: "b.example:1", PeerAddr: "b.example:2", Line: 2},
			},
		},
		{
			name:  "IPv6 host names and extreme ports",
			input: "9223372036854775807 [::1]:65535 node-1.internal:1\n",
			want:  []Replica{{ID: 9223372036854775807, ClientAddr: "[::1]:65535", PeerAddr: "node-1.internal:1", Line: 1}},
		},
		{
			name:  "same port on different hosts",
			input: "1 10.0.0.1:7000 10.0.0.1:8000\n2 10.0.0.2:7000 10.0.0.2:8000\n",
			want: []Replica{
				{ID: 1, ClientAddr: "10.0.0.1:7000", PeerAddr: "10.0.0.1:8000", Line: 1},
				{ID: 2, ClientAddr: "10.0.0.2:7000", PeerAddr: "10.0.0.2:8000", Line: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input), "replicas.txt")
			if err != nil {
				t.Fatalf("Parse: unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const ok1 = "1 127.0.0.1:7001 127.0.0.1:8001\n"
	tests := []struct {
		name  string
		input string
		is    error
		// prefix is the start of the message: the file, the line and the problem.
		prefix string
		// contains is a further detail the message must carry.
		contains string
	}{
		{"empty file", "", ErrEmpty, "replicas.txt: no replicas", ""},
		{"only comments and blanks", "# nothing here\n\n   \n# 1 127.0.0.1:7001 127.0.0.1:8001\n", ErrEmpty, "replicas.txt: no replicas", ""},
		{"too few fields", "# header\n1 127.0.0.1:7001\n", ErrFields, "replicas.txt:2: wrong number of fields", "got 2, want 3"},
		{"too many fields", ok1 + "2 127.0.0.1:7002 127.0.0.1:8002 extra\n", ErrFields, "replicas.txt:2: wrong number of fields", "got 4, want 3"},
		{"id only", "\n\n7\n", ErrFields, "replicas.txt:3: wrong number of fields", "got 1"},
		{"id zero", "0 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id "0"`, "from 1 to"},
		{"id negative", "-1 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id "-1"`, ""},
		{"id with plus sign", "+1 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id "+1"`, ""},
		{"id not a number", ok1 + "two 127.0.0.1:7002 127.0.0.1:8002\n", ErrID, `replicas.txt:2: invalid id "two"`, ""},
		{"id fractional", "1.5 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id "1.5"`, ""},
		{"id above int64", "9223372036854775808 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id "9223372036854775808"`, "9223372036854775807"},
		{"id above uint64", "99999999999999999999 127.0.0.1:7001 127.0.0.1:8001\n", ErrID, `replicas.txt:1: invalid id`, ""},
		{"duplicate id", ok1 + "\n1 127.0.0.1:7002 127.0.0.1:8002\n", ErrDuplicateID, "replicas.txt:3: duplicate id 1", "already on line 1"},
		{"duplicate id written differently", ok1 + "01 127.0.0.1:7002 127.0.0.1:8002\n", ErrDuplicateID, "replicas.txt:2: duplicate id 1", "line 1"},
		{"client address reused as client", ok1 + "2 127.0.0.1:7001 127.0.0.1:8002\n", ErrDuplicateAddr, "replicas.txt:2: duplicate address 127.0.0.1:7001", "already used as client address on line 1"},
		{"peer address reused as peer", ok1 + "2 127.0.0.1:7002 127.0.0.1:8001\n", ErrDuplicateAddr, "replicas.txt:2: duplicate address 127.0.0.1:8001", "already used as peer address on line 1"},
		{"peer address reused as client", ok1 + "2 127.0.0.1:8001 127.0.0.1:8002\n", ErrDuplicateAddr, "replicas.txt:2: duplicate address 127.0.0.1:8001 (client address)", "peer address on line 1"},
		{"client and peer address equal on one line", "1 127.0.0.1:7001 127.0.0.1:7001\n", ErrDuplicateAddr, "replicas.txt:1: duplicate address 127.0.0.1:7001 (peer address)", "client address on line 1"},
		{"duplicate address with leading zero port", ok1 + "2 127.0.0.1:07001 127.0.0.1:8002\n", ErrDuplicateAddr, "replicas.txt:2: duplicate address 127.0.0.1:07001", "line 1"},
		{"duplicate address differing in case", "1 Node-A:7001 node-a:8001\n2 NODE-A:7001 node-a:8002\n", ErrDuplicateAddr, "replicas.txt:2: duplicate address NODE-A:7001", "line 1"},
		{"client address without port", "1 127.0.0.1 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address "127.0.0.1"`, "host:port"},
		{"peer address without port", "1 127.0.0.1:7001 localhost\n", ErrAddr, `replicas.txt:1: peer address: invalid address "localhost"`, "host:port"},
		{"address without host", "1 :7001 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address ":7001"`, "missing host"},
		{"port zero", "1 127.0.0.1:0 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address "127.0.0.1:0"`, "1 to 65535"},
		{"port too large", "1 127.0.0.1:7001 127.0.0.1:65536\n", ErrAddr, `replicas.txt:1: peer address: invalid address "127.0.0.1:65536"`, "1 to 65535"},
		{"port not numeric", "1 127.0.0.1:http 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address "127.0.0.1:http"`, `port "http"`},
		{"port empty", "1 127.0.0.1: 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address "127.0.0.1:"`, ""},
		{"port negative", "1 127.0.0.1:-1 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address`, ""},
		{"unbracketed IPv6", "1 ::1:7001 127.0.0.1:8001\n", ErrAddr, `replicas.txt:1: client address: invalid address "::1:7001"`, ""},
		{"line too long", ok1 + "# " + strings.Repeat("x", MaxLineBytes) + "\n", ErrLineTooLong, "replicas.txt:2: line too long", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input), "replicas.txt")
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error %q", got, tt.prefix)
			}
			if got != nil {
				t.Errorf("Parse returned %+v alongside error", got)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "replicas.txt" {
				t.Errorf("error %q is not a *ParseError for replicas.txt", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.prefix) {
				t.Errorf("error = %q, want prefix %q", msg, tt.prefix)
			}
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.contains)
			}
		})
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := Parse(&failingReader{data: "1 127.0.0.1:7001 127.0.0.1:8001\n", err: boom}, "r.txt")
	if !errors.Is(err, boom) {
		t.Fatalf("Parse error = %v, want it to wrap %v", err, boom)
	}
	if !strings.HasPrefix(err.Error(), "r.txt: read: ") {
		t.Errorf("error = %q, want prefix %q", err, "r.txt: read: ")
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replicas.txt")
	content := "# test cluster\n1 127.0.0.1:7001 127.0.0.1:8001\n2 127.0.0.1:7002 127.0.0.1:8002\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 || got[1].Line != 3 {
		t.Errorf("Load = %+v, want ids 1, 2 from lines 2, 3", got)
	}

	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("1 127.0.0.1:7001 127.0.0.1:8001\n1 127.0.0.1:7002 127.0.0.1:8002\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: duplicate id 1") {
		t.Errorf("Load(bad) error = %v, want it to name %s:2 and the duplicate id", err, bad)
	}

	missing := filepath.Join(dir, "missing.txt")
	_, err = Load(missing)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) error = %q, want it to name %s", err, missing)
	}
}

func TestFind(t *testing.T) {
	list := []Replica{
		{ID: 4, ClientAddr: "h:1", PeerAddr: "h:2", Line: 1},
		{ID: 2, ClientAddr: "h:3", PeerAddr: "h:4", Line: 2},
	}
	if r, ok := Find(list, 2); !ok || r != list[1] {
		t.Errorf("Find(2) = %+v, %v; want %+v, true", r, ok, list[1])
	}
	if r, ok := Find(list, 3); ok || r != (Replica{}) {
		t.Errorf("Find(3) = %+v, %v; want zero, false", r, ok)
	}
	if _, ok := Find(nil, 1); ok {
		t.Error("Find(nil, 1) found a replica")
	}
}

func TestClientAddrs(t *testing.T) {
	list := []Replica{
		{ID: 3, ClientAddr: "c:3", PeerAddr: "p:3"},
		{ID: 1, ClientAddr: "c:1", PeerAddr: "p:1"},
	}
	if got, want := ClientAddrs(list), []string{"c:3", "c:1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ClientAddrs = %q, want %q", got, want)
	}
	if got := ClientAddrs(nil); got == nil || len(got) != 0 {
		t.Errorf("ClientAddrs(nil) = %#v, want empty non-nil slice", got)
	}
}

// TestRepositoryReplicasFile checks the replicas.txt shipped at the root of the
// repository, which `make run` starts.
func TestRepositoryReplicasFile(t *testing.T) {
	list, err := Load(filepath.Join("..", "replicas.txt"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(list) != 5 {
		t.Fatalf("got %d replicas, want 5", len(list))
	}
	for i, r := range list {
		id := uint64(i + 1)
		wantClient := "127.0.0.1:700" + string(rune('1'+i))
		wantPeer := "127.0.0.1:800" + string(rune('1'+i))
		if r.ID != id || r.ClientAddr != wantClient || r.PeerAddr != wantPeer {
			t.Errorf("replica %d = %+v, want id %d at %s / %s", i, r, id, wantClient, wantPeer)
		}
	}
}
