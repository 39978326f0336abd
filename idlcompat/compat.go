// Package idlcompat decides whether a change to a Thrift IDL file keeps the wire
// compatible with clients and replicas built from an earlier release of it.
//
// It reads the JSON description that the Thrift compiler writes
// (`thrift --gen json`), so it sees the IDL exactly as every language generator
// does, typedefs resolved. Check compares a released description with a newer one
// and lists every break: a field or argument renumbered, removed or given another
// type; a required field added, or a field made required or no longer required; a
// method, service, struct, exception or enum removed; a method's return type or
// oneway flag changed; an exception removed from or added to a method; an enum value
// removed or renumbered. Names of fields and enum values may change (the binary
// protocol carries ids and numbers, not names); doc comments, constants and
// namespaces are not compared.
package idlcompat

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Program is the part of the compiler's JSON description of one IDL file that
// affects the wire.
type Program struct {
	Name     string    `json:"name"`
	Enums    []Enum    `json:"enums"`
	Structs  []Struct  `json:"structs"`
	Services []Service `json:"services"`
}

// Enum is an enum and its values.
type Enum struct {
	Name    string `json:"name"`
	Members []struct {
		Name  string `json:"name"`
		Value int64  `json:"value"`
	} `json:"members"`
}

// Struct is a struct, union or exception.
type Struct struct {
	Name        string  `json:"name"`
	IsException bool    `json:"isException"`
	IsUnion     bool    `json:"isUnion"`
	Fields      []Field `json:"fields"`
}

func (s Struct) kind() string {
	switch {
	case s.IsException:
		return "exception"
	case s.IsUnion:
		return "union"
	}
	return "struct"
}

// Field is a field of a struct, an argument of a method or an exception a method
// throws.
type Field struct {
	ID     int    `json:"key"`
	Name   string `json:"name"`
	TypeID string `json:"typeId"`
	Type   *Type  `json:"type"`
	// Required is "required", "optional" or "req_out" (the default).
	Required string `json:"required"`
}

// TypeString describes the field's type, containers and struct names included.
func (f Field) TypeString() string {
	if f.Type != nil {
		return f.Type.String()
	}
	return f.TypeID
}

// Type is a type as the compiler describes it; enums appear as i32.
type Type struct {
	TypeID    string `json:"typeId"`
	Class     string `json:"class"`
	ElemType  *Type  `json:"elemType"`
	ElemID    string `json:"elemTypeId"`
	KeyType   *Type  `json:"keyType"`
	KeyID     string `json:"keyTypeId"`
	ValueType *Type  `json:"valueType"`
	ValueID   string `json:"valueTypeId"`
}

func (t *Type) String() string {
	sub := func(st *Type, id string) string {
		if st != nil {
			return st.String()
		}
		return id
	}
	switch t.TypeID {
	case "list", "set":
		return t.TypeID + "<" + sub(t.ElemType, t.ElemID) + ">"
	case "map":
		return "map<" + sub(t.KeyType, t.KeyID) + "," + sub(t.ValueType, t.ValueID) + ">"
	case "struct", "union", "exception":
		return t.TypeID + " " + t.Class
	}
	return t.TypeID
}

// Service is a service and its methods.
type Service struct {
	Name      string     `json:"name"`
	Extends   string     `json:"extends"`
	Functions []Function `json:"functions"`
}

// Function is one method of a service.
type Function struct {
	Name         string  `json:"name"`
	ReturnTypeID string  `json:"returnTypeId"`
	ReturnType   *Type   `json:"returnType"`
	Oneway       bool    `json:"oneway"`
	Arguments    []Field `json:"arguments"`
	Exceptions   []Field `json:"exceptions"`
}

func (f Function) returns() string {
	if f.ReturnType != nil {
		return f.ReturnType.String()
	}
	return f.ReturnTypeID
}

// Parse decodes the JSON the compiler writes for one IDL file.
func Parse(data []byte) (*Program, error) {
	var p Program
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("idlcompat: decode thrift JSON: %w", err)
	}
	return &p, nil
}

// Load runs `thrift --gen json` on the IDL file at path, with workDir as scratch
// space, and parses the result. The compiler must be on the PATH.
func Load(path, workDir string) (*Program, error) {
	out, err := os.MkdirTemp(workDir, "json-")
	if err != nil {
		return nil, fmt.Errorf("idlcompat: %w", err)
	}
	if msg, err := exec.Command("thrift", "--gen", "json:merge", "-out", out, path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("idlcompat: thrift --gen json %s: %v\n%s", path, err, msg)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".json"
	data, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		return nil, fmt.Errorf("idlcompat: %s: %w", path, err)
	}
	return Parse(data)
}

// Check lists every change from old (a released IDL) to cur that breaks the wire
// for programs built from old, each as "where: what", in the order of old's
// declarations followed by additions. An empty list means cur is compatible.
func Check(old, cur *Program) []string {
	var c checker
	c.enums(old.Enums, cur.Enums)
	c.structs(old.Structs, cur.Structs)
	c.services(old.Services, cur.Services)
	return c.breaks
}

type checker struct{ breaks []string }

func (c *checker) addf(where, format string, args ...any) {
	c.breaks = append(c.breaks, where+": "+fmt.Sprintf(format, args...))
}

func byName[T any](items []T, name func(T) string) map[string]T {
	m := make(map[string]T, len(items))
	for _, it := range items {
		m[name(it)] = it
	}
	return m
}

func (c *checker) enums(old, cur []Enum) {
	curByName := byName(cur, func(e Enum) string { return e.Name })
	for _, oe := range old {
		ne, ok := curByName[oe.Name]
		if !ok {
			c.addf("enum "+oe.Name, "removed")
			continue
		}
		values := make(map[int64]string)
		names := make(map[string]int64)
		for _, m := range ne.Members {
			values[m.Value] = m.Name
			names[m.Name] = m.Value
		}
		for _, m := range oe.Members {
			where := "enum " + oe.Name + "." + m.Name
			v, ok := names[m.Name]
			switch {
			case ok && v != m.Value:
				c.addf(where, "renumbered from %d to %d", m.Value, v)
			case !ok && values[m.Value] == "":
				c.addf(where, "value %d removed", m.Value)
			}
			// !ok with the value still present under another name is a rename.
		}
	}
}

func (c *checker) structs(old, cur []Struct) {
	curByName := byName(cur, func(s Struct) string { return s.Name })
	for _, ost := range old {
		nst, ok := curByName[ost.Name]
		if !ok {
			c.addf(ost.kind()+" "+ost.Name, "removed")
			continue
		}
		if ost.kind() != nst.kind() {
			c.addf(ost.kind()+" "+ost.Name, "is now a %s", nst.kind())
		}
		c.fields(ost.Name, "", ost.Fields, nst.Fields)
	}
}

// fields compares the fields (or arguments, with label "argument ") of one struct
// or method. Fields are matched by id; a name that moves to another id is a
// renumbering.
func (c *checker) fields(owner, label string, old, cur []Field) {
	curByID := make(map[int]Field, len(cur))
	curByName := byName(cur, func(f Field) string { return f.Name })
	oldByName := byName(old, func(f Field) string { return f.Name })
	oldIDs := make(map[int]bool, len(old))
	for _, f := range cur {
		curByID[f.ID] = f
	}
	for _, of := range old {
		oldIDs[of.ID] = true
		where := fmt.Sprintf("%s %s%s (%d)", owner, label, of.Name, of.ID)
		if nf, ok := curByName[of.Name]; ok && nf.ID != of.ID {
			c.addf(where, "renumbered from %d to %d", of.ID, nf.ID)
			continue
		}
		nf, ok := curByID[of.ID]
		if !ok {
			c.addf(where, "removed")
			continue
		}
		if ot, nt := of.TypeString(), nf.TypeString(); ot != nt {
			c.addf(where, "type changed from %s to %s", ot, nt)
		}
		if (of.Required == "required") != (nf.Required == "required") {
			c.addf(where, "requiredness changed from %s to %s", of.Required, nf.Required)
		}
	}
	for _, nf := range cur {
		if _, renumbered := oldByName[nf.Name]; !oldIDs[nf.ID] && !renumbered && nf.Required == "required" {
			c.addf(fmt.Sprintf("%s %s%s (%d)", owner, label, nf.Name, nf.ID), "required field added")
		}
	}
}

func (c *checker) services(old, cur []Service) {
	curByName := byName(cur, func(s Service) string { return s.Name })
	for _, osv := range old {
		nsv, ok := curByName[osv.Name]
		if !ok {
			c.addf("service "+osv.Name, "removed")
			continue
		}
		if osv.Extends != nsv.Extends {
			c.addf("service "+osv.Name, "extends %q, was %q", nsv.Extends, osv.Extends)
		}
		curFns := byName(nsv.Functions, func(f Function) string { return f.Name })
		for _, of := range osv.Functions {
			name := osv.Name + "." + of.Name
			nf, ok := curFns[of.Name]
			if !ok {
				c.addf(name, "method removed")
				continue
			}
			if or, nr := of.returns(), nf.returns(); or != nr {
				c.addf(name, "return type changed from %s to %s", or, nr)
			}
			if of.Oneway != nf.Oneway {
				c.addf(name, "oneway changed from %t to %t", of.Oneway, nf.Oneway)
			}
			c.fields(name, "argument ", of.Arguments, nf.Arguments)
			c.exceptions(name, of.Exceptions, nf.Exceptions)
		}
	}
}

// exceptions compares what a method throws. Removing one breaks programs built
// from the new IDL talking to old servers; adding one breaks programs built from
// the old IDL, which cannot decode it and report an unknown result instead.
func (c *checker) exceptions(method string, old, cur []Field) {
	c.fields(method, "exception ", old, cur)
	oldIDs := make(map[int]bool, len(old))
	oldNames := byName(old, func(f Field) string { return f.Name })
	for _, f := range old {
		oldIDs[f.ID] = true
	}
	for _, f := range cur {
		if _, renumbered := oldNames[f.Name]; !oldIDs[f.ID] && !renumbered {
			c.addf(fmt.Sprintf("%s exception %s (%d)", method, f.Name, f.ID),
				"added (%s): old clients cannot decode it; add a new method instead", f.TypeString())
		}
	}
}
