package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/store"
)

// Writes with client id 0 opt out of de-duplication (idl/kv.thrift), and so have
// no (client id, seq) to match their result by; each still gets its own result,
// several at once too, including two to the same key.
func TestWritesWithoutClientID(t *testing.T) {
	policy := snapshotPolicy{everySlots: 1000, everyBytes: 1 << 30, retainSlots: 10, retainBytes: 1 << 30, rewriteBytes: 1 << 30}
	n, _, _ := startLoneNode(t, t.TempDir(), policy)
	put := func(key string) (store.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return n.propose(ctx, command.Command{Op: command.OpPut, Key: key, Value: []byte("v")})
	}
	if res, err := put("first"); err != nil || res.Key != "first" || res.Slot == 0 {
		t.Fatalf("put first: %+v, %v", res, err)
	}

	keys := []string{"a", "b", "c", "d", "same", "same"}
	results := make([]store.Result, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = put(k)
		}()
	}
	wg.Wait()
	existed := 0
	for i, k := range keys {
		if errs[i] != nil || results[i].Key != k || results[i].Slot == 0 {
			t.Errorf("put %s: %+v, %v", k, results[i], errs[i])
		}
		if k == "same" && results[i].Existed {
			existed++
		}
	}
	if existed != 1 {
		t.Errorf("of two puts to one key, %d found it existing; want 1", existed)
	}
}
