package idlcompat

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// releases is where released copies of the IDL are kept, one directory per release.
const releases = "../idl/compat"

func needThrift(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("thrift"); err != nil {
		t.Skip("thrift is not on the PATH (Debian: install thrift-compiler; make test installs it)")
	}
}

func load(t *testing.T, path string) *Program {
	t.Helper()
	p, err := Load(path, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCurrentIDLKeepsEveryRelease is the rule of idl/README.md: idl/*.thrift must
// stay wire-compatible with every release kept under idl/compat/.
func TestCurrentIDLKeepsEveryRelease(t *testing.T) {
	needThrift(t)
	released, err := filepath.Glob(filepath.Join(releases, "*", "*.thrift"))
	if err != nil {
		t.Fatal(err)
	}
	if len(released) == 0 {
		t.Fatalf("no released IDL under %s", releases)
	}
	for _, old := range released {
		rel := filepath.Base(filepath.Dir(old))
		name := filepath.Base(old)
		t.Run(rel+"/"+name, func(t *testing.T) {
			cur := filepath.Join("..", "idl", name)
			if _, err := os.Stat(cur); err != nil {
				t.Fatalf("idl/%s of release %s is gone: %v", name, rel, err)
			}
			if breaks := Check(load(t, old), load(t, cur)); len(breaks) > 0 {
				t.Errorf("idl/%s breaks wire compatibility with release %s (see idl/README.md):\n  %s",
					name, rel, strings.Join(breaks, "\n  "))
			}
		})
	}
}

// TestReportsEachBreak feeds the checker variants of release v1 that each break the
// wire in one way, and wants that one break reported.
func TestReportsEachBreak(t *testing.T) {
	needThrift(t)
	want := map[string]string{
		"kv_argument_renumbered":    "KV.put argument seq (2): renumbered from 2 to 5",
		"kv_argument_retyped":       "KV.put argument value (4): type changed from binary to string",
		"kv_enum_renumbered":        "enum Consistency.STALE: renumbered from 1 to 2",
		"kv_exception_added":        "KV.put exception not_found (4): added (exception NotFound)",
		"kv_exception_removed":      "KV.get exception invalid (4): removed",
		"kv_field_renumbered":       "NotLeader leader_addr (1): renumbered from 1 to 4",
		"kv_field_retyped":          "WriteResult slot (1): type changed from i64 to i32",
		"kv_method_removed":         "KV.status: method removed",
		"kv_required_field_added":   "GetResult version (3): required field added",
		"kv_return_type_changed":    "KV.remove: return type changed from struct WriteResult to struct GetResult",
		"peer_enum_value_removed":   "enum EntryKind.NOOP: value 1 removed",
		"peer_field_made_required":  "AcceptRequest commit (4): requiredness changed from req_out to required",
		"peer_field_removed":        "Promise probe (6): removed",
		"peer_list_element_retyped": "CommandBatch commands (1): type changed from list<struct Command> to list<struct Entry>",
	}
	files, err := filepath.Glob("testdata/broken/*.thrift")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".thrift")
		seen = append(seen, name)
		t.Run(name, func(t *testing.T) {
			expected, ok := want[name]
			if !ok {
				t.Fatalf("%s has no expected break in this test", file)
			}
			base, _, _ := strings.Cut(name, "_")
			old := load(t, filepath.Join(releases, "v1", base+".thrift"))
			breaks := Check(old, load(t, file))
			if len(breaks) != 1 || !strings.HasPrefix(breaks[0], expected) {
				t.Errorf("breaks reported:\n  %s\nwant exactly one starting %q", strings.Join(breaks, "\n  "), expected)
			}
		})
	}
	for name := range want {
		if !slices.Contains(seen, name) {
			t.Errorf("testdata/broken/%s.thrift is missing", name)
		}
	}
}

// TestAllowsCompatibleChanges wants no break for additions and renames: optional
// fields, new methods, exceptions and enum values, renamed fields and arguments.
func TestAllowsCompatibleChanges(t *testing.T) {
	needThrift(t)
	files, err := filepath.Glob("testdata/compatible/*.thrift")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/compatible/*.thrift")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".thrift")
		t.Run(name, func(t *testing.T) {
			base, _, _ := strings.Cut(name, "_")
			old := load(t, filepath.Join(releases, "v1", base+".thrift"))
			cur := load(t, file)
			if breaks := Check(old, cur); len(breaks) > 0 {
				t.Errorf("compatible changes reported as breaks:\n  %s", strings.Join(breaks, "\n  "))
			}
			// The variant does differ from the release; a checker that compared
			// nothing would pass the test above.
			if slices.EqualFunc(old.Services[0].Functions, cur.Services[0].Functions,
				func(a, b Function) bool { return a.Name == b.Name }) {
				t.Errorf("%s adds no method; it should exercise additions", file)
			}
		})
	}
}

// TestTypeString covers the container and struct types the IDL does not use yet.
func TestTypeString(t *testing.T) {
	p, err := Parse([]byte(`{"structs": [{"name": "S", "fields": [
		{"key": 1, "name": "m", "typeId": "map", "type": {"typeId": "map", "keyTypeId": "string",
			"valueTypeId": "list", "valueType": {"typeId": "list", "elemTypeId": "set",
			"elemType": {"typeId": "set", "elemTypeId": "i32"}}}},
		{"key": 2, "name": "u", "typeId": "union", "type": {"typeId": "union", "class": "U"}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{p.Structs[0].Fields[0].TypeString(), p.Structs[0].Fields[1].TypeString()}
	want := []string{"map<string,list<set<i32>>>", "union U"}
	if !slices.Equal(got, want) {
		t.Errorf("TypeString: %q, want %q", got, want)
	}
}
