package chaos

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds one operation for hand-written histories.
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func put(k, v string) Input { return Input{Kind: OpPut, Key: k, Value: v} }
func del(k string) Input    { return Input{Kind: OpRemove, Key: k} }
func get(k string) Input    { return Input{Kind: OpGet, Key: k} }
func found(v string) Output { return Output{Found: true, Value: v} }
func existed(e bool) Output { return Output{Existed: e} }
func unknown() Output       { return Output{Unknown: true} }
func notFound() Output      { return Output{} }

// TestModel checks the key-value model on histories whose verdict is known, so
// a model that accepts everything (or nothing) fails here.
func TestModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"empty key reads not found", []porcupine.Operation{
			op(0, 0, 1, get("a"), notFound()),
		}, porcupine.Ok},
		{"read of a never-written value", []porcupine.Operation{
			op(0, 0, 1, get("a"), found("x")),
		}, porcupine.Illegal},
		{"sequential put then get", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, get("a"), found("x")),
		}, porcupine.Ok},
		{"stale read after an acknowledged put", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, put("a", "y"), existed(true)),
			op(1, 4, 5, get("a"), found("x")),
		}, porcupine.Illegal},
		{"concurrent read may see either value", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 6, put("a", "y"), existed(true)),
			op(1, 3, 4, get("a"), found("x")),
			op(2, 5, 7, get("a"), found("y")),
		}, porcupine.Ok},
		{"reads go back in time", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 10, put("a", "y"), existed(true)),
			op(1, 3, 4, get("a"), found("y")),
			op(2, 5, 6, get("a"), found("x")),
		}, porcupine.Illegal},
		{"wrong existed flag on put", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(true)),
		}, porcupine.Illegal},
		{"delete removes", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, del("a"), existed(true)),
			op(0, 4, 5, get("a"), notFound()),
			op(0, 6, 7, del("a"), existed(false)),
		}, porcupine.Ok},
		{"read after delete sees the old value", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, del("a"), existed(true)),
			op(1, 4, 5, get("a"), found("x")),
		}, porcupine.Illegal},
		{"unknown put may land late", []porcupine.Operation{
			op(0, 0, never, put("a", "x"), unknown()),
			op(1, 5, 6, get("a"), notFound()),
			op(1, 7, 8, get("a"), found("x")),
		}, porcupine.Ok},
		{"unknown put cannot land before its call", []porcupine.Operation{
			op(1, 0, 1, get("a"), found("x")),
			op(0, 2, never, put("a", "x"), unknown()),
		}, porcupine.Illegal},
		{"unknown put lands once", []porcupine.Operation{
			op(0, 0, never, put("a", "x"), unknown()),
			op(1, 1, 2, get("a"), found("x")),
			op(1, 3, 4, put("a", "y"), existed(true)),
			op(1, 5, 6, get("a"), found("x")),
		}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(1, 0, 1, put("b", "y"), existed(false)),
			op(0, 2, 3, get("b"), found("y")),
			op(1, 2, 3, get("a"), found("x")),
		}, porcupine.Ok},
		{"one bad key fails the history", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(1, 0, 1, put("b", "y"), existed(false)),
			op(0, 2, 3, get("b"), notFound()),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := porcupine.CheckOperationsVerbose(KVModel, tt.ops, 10*time.Second)
			if got != tt.want {
				t.Errorf("verdict %s, want %s", got, tt.want)
			}
		})
	}
}

// TestModelEvents checks the event form and its partition function: the same
// stale read as above, expressed as call and return events.
func TestModelEvents(t *testing.T) {
	events := []porcupine.Event{
		{ClientId: 0, Kind: porcupine.CallEvent, Value: put("a", "x"), Id: 0},
		{ClientId: 1, Kind: porcupine.CallEvent, Value: put("b", "z"), Id: 1},
		{ClientId: 0, Kind: porcupine.ReturnEvent, Value: existed(false), Id: 0},
		{ClientId: 1, Kind: porcupine.ReturnEvent, Value: existed(false), Id: 1},
		{ClientId: 0, Kind: porcupine.CallEvent, Value: put("a", "y"), Id: 2},
		{ClientId: 0, Kind: porcupine.ReturnEvent, Value: existed(true), Id: 2},
		{ClientId: 1, Kind: porcupine.CallEvent, Value: get("b"), Id: 3},
		{ClientId: 1, Kind: porcupine.ReturnEvent, Value: found("z"), Id: 3},
	}
	if !porcupine.CheckEvents(KVModel, events) {
		t.Fatal("a linearizable event history was rejected")
	}
	if parts := partitionEvents(events); len(parts) != 2 {
		t.Errorf("partitioned into %d parts, want one per key (2)", len(parts))
	}
	stale := append(events,
		porcupine.Event{ClientId: 1, Kind: porcupine.CallEvent, Value: get("a"), Id: 4},
		porcupine.Event{ClientId: 1, Kind: porcupine.ReturnEvent, Value: found("x"), Id: 4})
	if porcupine.CheckEvents(KVModel, stale) {
		t.Fatal("a stale read in an event history was accepted")
	}
}

// TestLostWrites checks the count of acknowledged writes whose effect is gone.
func TestLostWrites(t *testing.T) {
	tests := []struct {
		name  string
		ops   []porcupine.Operation
		final map[string]Output
		want  int
	}{
		{"last acknowledged put is read", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, put("a", "y"), existed(true)),
		}, map[string]Output{"a": found("y")}, 0},
		{"older put is read: the newer one is lost", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, put("a", "y"), existed(true)),
		}, map[string]Output{"a": found("x")}, 1},
		{"either of two concurrent puts may be last", []porcupine.Operation{
			op(0, 0, 3, put("a", "x"), existed(false)),
			op(1, 1, 2, put("a", "y"), existed(false)),
		}, map[string]Output{"a": found("x")}, 0},
		{"both concurrent puts lost", []porcupine.Operation{
			op(0, 0, 3, put("a", "x"), existed(false)),
			op(1, 1, 2, put("a", "y"), existed(false)),
		}, map[string]Output{"a": notFound()}, 2},
		{"an unknown put may be last", []porcupine.Operation{
			op(0, 0, never, put("a", "u"), unknown()),
			op(1, 5, 6, put("a", "y"), existed(false)),
		}, map[string]Output{"a": found("u")}, 0},
		{"an acknowledged delete explains absence", []porcupine.Operation{
			op(0, 0, 1, put("a", "x"), existed(false)),
			op(0, 2, 3, del("a"), existed(true)),
		}, map[string]Output{"a": notFound()}, 0},
		{"a key never written is absent", nil, map[string]Output{"a": notFound()}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, detail := lostWrites(tt.ops, tt.final); got != tt.want {
				t.Errorf("lost %d, want %d (%v)", got, tt.want, detail)
			}
		})
	}
}

func TestParseFaults(t *testing.T) {
	got, err := ParseFaults("partition, kill,partition")
	if err != nil || len(got) != 2 || got[0] != FaultPartition || got[1] != FaultKill {
		t.Errorf("ParseFaults(partition, kill,partition) = %v, %v", got, err)
	}
	if got, err := ParseFaults("all"); err != nil || len(got) != len(AllFaults) {
		t.Errorf("ParseFaults(all) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "partition,flood"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) succeeded", bad)
		}
	}
}
