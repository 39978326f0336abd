package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client"
)

// memKV is an in-memory cluster shared by every worker of a test. It records each
// call and can fail keys on demand.
type memKV struct {
	mu sync.Mutex // guards every field below
	// data is the store.
	data map[string][]byte
	// calls counts calls by "op key".
	calls map[string]int
	total int
	// fail returns the error for a call, or nil to serve it.
	fail func(kind OpKind, key string) error
	// after is called after every served call with the running total.
	after func(total int)
	// delay, when set, is how long every call takes.
	delay time.Duration
}

func newMemKV() *memKV {
	return &memKV{data: make(map[string][]byte), calls: make(map[string]int)}
}

// worker returns the KV of one worker.
func (m *memKV) worker() KV { return memWorker{m} }

func (m *memKV) do(ctx context.Context, kind OpKind, key string, apply func() error) error {
	if m.delay > 0 {
		t := time.NewTimer(m.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	m.mu.Lock()
	m.calls[kind.String()+" "+key]++
	m.total++
	total := m.total
	var err error
	if m.fail != nil {
		err = m.fail(kind, key)
	}
	if err == nil {
		err = apply()
	}
	after := m.after
	m.mu.Unlock()
	if after != nil {
		after(total)
	}
	return err
}

func (m *memKV) count(kind OpKind, key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[kind.String()+" "+key]
}

func (m *memKV) totalCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

type memWorker struct{ m *memKV }

func (w memWorker) Put(ctx context.Context, key string, value []byte) error {
	return w.m.do(ctx, OpPut, key, func() error { w.m.data[key] = value; return nil })
}

func (w memWorker) get(ctx context.Context, key string) error {
	return w.m.do(ctx, OpGet, key, func() error {
		if _, ok := w.m.data[key]; !ok {
			return fmt.Errorf("get %q: %w", key, client.ErrNotFound)
		}
		return nil
	})
}

func (w memWorker) Get(ctx context.Context, key string) error      { return w.get(ctx, key) }
func (w memWorker) GetStale(ctx context.Context, key string) error { return w.get(ctx, key) }

func (w memWorker) Delete(ctx context.Context, key string) error {
	return w.m.do(ctx, OpDelete, key, func() error { delete(w.m.data, key); return nil })
}

func mustMix(t *testing.T, s string) Mix {
	t.Helper()
	m, err := ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRunOpsCountsEveryOperation(t *testing.T) {
	kv := newMemKV()
	res, err := Run(context.Background(), Config{
		Clients: 8, Ops: 1000, Keys: 50, Mix: mustMix(t, "put=1,get=1,delete=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := kv.totalCalls(); got != 1000 {
		t.Errorf("the cluster saw %d calls, want exactly 1000", got)
	}
	if n := res.Total.Succeeded() + res.Total.Failed(); n != 1000 {
		t.Errorf("the result counts %d operations, want 1000", n)
	}
	if res.StoppedBy != StoppedOps {
		t.Errorf("StoppedBy = %q, want %q", res.StoppedBy, StoppedOps)
	}
	var sum uint64
	for _, k := range OpKinds {
		sum += res.PerOp[k].Succeeded() + res.PerOp[k].Failed()
		if res.PerOp[k].Succeeded() == 0 {
			t.Errorf("no successful %s in a mix of all three", k)
		}
	}
	if sum != 1000 {
		t.Errorf("per-kind counts add up to %d, want 1000", sum)
	}
	// Gets of keys never put, or deleted, fail as not found, and nothing else.
	if res.PerOp[OpGet].Errors[ErrNotFound] == 0 || res.Total.Failed() != res.PerOp[OpGet].Errors[ErrNotFound] {
		t.Errorf("errors %v; want only not_found on gets", res.Total.Errors)
	}
}

func TestRunClassifiesErrors(t *testing.T) {
	kv := newMemKV()
	kv.fail = func(kind OpKind, key string) error {
		switch key {
		case KeyName(0):
			return fmt.Errorf("put: %w within 5s", client.ErrUnavailable)
		case KeyName(1):
			return &client.InvalidArgumentError{Field: "key", Message: "bad"}
		case KeyName(2):
			return fmt.Errorf("connection reset")
		}
		return nil
	}
	res, err := Run(context.Background(), Config{
		Clients: 3, Ops: 600, Keys: 4, Mix: mustMix(t, "put=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	put := &res.PerOp[OpPut]
	want := map[ErrorKind]int{
		ErrUnavailable: kv.count(OpPut, KeyName(0)),
		ErrInvalid:     kv.count(OpPut, KeyName(1)),
		ErrOther:       kv.count(OpPut, KeyName(2)),
		ErrNotFound:    0,
	}
	for ek, n := range want {
		if put.Errors[ek] != uint64(n) {
			t.Errorf("%s: %d counted, want %d", ek, put.Errors[ek], n)
		}
		if n > 0 && put.FirstError[ek] == "" {
			t.Errorf("%s: no first error kept", ek)
		}
	}
	if put.Succeeded() != uint64(kv.count(OpPut, KeyName(3))) {
		t.Errorf("%d successes, want %d (the puts of the one healthy key)", put.Succeeded(), kv.count(OpPut, KeyName(3)))
	}
	if !strings.Contains(put.FirstError[ErrOther], "connection reset") {
		t.Errorf("first other error %q, want the KV's message", put.FirstError[ErrOther])
	}
}

func TestRunWorkloadSharedCursor(t *testing.T) {
	w, err := ParseWorkload(strings.NewReader("PUT,a,1\nPUT,b,2\nGET,a\nDELETE,b\nGET,c\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ops    int64
		passes int
		stop   string
	}{
		{"one pass", 0, 1, StoppedWorkload},
		{"looped by --ops", 15, 3, StoppedOps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := newMemKV()
			res, err := Run(context.Background(), Config{
				Clients: 4, Ops: tc.ops, Workload: w,
				NewKV: func(int) (KV, error) { return kv.worker(), nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			// Each line is issued by exactly one worker per pass.
			for _, c := range []struct {
				kind OpKind
				key  string
			}{{OpPut, "a"}, {OpPut, "b"}, {OpGet, "a"}, {OpDelete, "b"}, {OpGet, "c"}} {
				if n := kv.count(c.kind, c.key); n != tc.passes {
					t.Errorf("%s %s issued %d times, want %d", c.kind, c.key, n, tc.passes)
				}
			}
			if res.StoppedBy != tc.stop {
				t.Errorf("StoppedBy = %q, want %q", res.StoppedBy, tc.stop)
			}
			if got := res.PerOp[OpGet].Errors[ErrNotFound]; got < uint64(tc.passes) {
				t.Errorf("not_found on gets: %d, want at least %d (key c is never put)", got, tc.passes)
			}
		})
	}
}

func TestRunPreloadAndWarmupAreNotMeasured(t *testing.T) {
	kv := newMemKV()
	var atStart, atEnd int
	calls := 0
	res, err := Run(context.Background(), Config{
		Clients: 4, Ops: 200, Keys: 100, Warmup: 20 * time.Millisecond, Preload: true,
		Mix:   mustMix(t, "get=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
		OnMeasure: func(start bool) {
			calls++
			if start {
				atStart = kv.totalCalls()
			} else {
				atEnd = kv.totalCalls()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if n := kv.count(OpPut, KeyName(i)); n != 1 {
			t.Fatalf("preload put %s %d times, want once", KeyName(i), n)
		}
	}
	if calls != 2 || atEnd-atStart != 200 {
		t.Errorf("OnMeasure called %d times around %d calls, want 2 around 200", calls, atEnd-atStart)
	}
	if atStart <= 100 {
		t.Errorf("%d calls before the measured phase, want the 100 preload puts and some warm-up", atStart)
	}
	if res.PerOp[OpGet].Succeeded() != 200 || res.Total.Failed() != 0 {
		t.Errorf("measured %d gets and %d failures; want 200 gets that all find their key",
			res.PerOp[OpGet].Succeeded(), res.Total.Failed())
	}
	if res.Preload.Keys != 100 || res.Preload.Errors != 0 {
		t.Errorf("preload result %+v", res.Preload)
	}
}

func TestRunPreloadFailure(t *testing.T) {
	kv := newMemKV()
	kv.fail = func(OpKind, string) error { return fmt.Errorf("%w: down", client.ErrUnavailable) }
	_, err := Run(context.Background(), Config{
		Clients: 2, Ops: 10, Keys: 5, Preload: true, Mix: mustMix(t, "get=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err == nil || !strings.Contains(err.Error(), "preload") || !strings.Contains(err.Error(), "down") {
		t.Fatalf("got %v, want a preload error naming the first failure", err)
	}
}

func TestRunThroughputIsWallClock(t *testing.T) {
	kv := newMemKV()
	kv.delay = 2 * time.Millisecond
	const clients, ops = 8, 400
	res, err := Run(context.Background(), Config{
		Clients: clients, Ops: ops, Mix: mustMix(t, "put=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	tp := res.Throughput(&res.Total)
	if want := float64(ops) / res.Wall.Seconds(); tp != want {
		t.Errorf("throughput %.1f, want successes / wall seconds = %.1f", tp, want)
	}
	// Summing latencies would divide by about clients times the wall clock.
	summed := float64(ops) / (res.Total.Hist.Mean().Seconds() * ops)
	if tp < 2*summed {
		t.Errorf("throughput %.1f ops/s is not well above %.1f, the figure summed latencies give with %d clients",
			tp, summed, clients)
	}
	if res.Total.Hist.Quantile(0.5) < kv.delay {
		t.Errorf("p50 %v is below the %v every call takes", res.Total.Hist.Quantile(0.5), kv.delay)
	}
}

func TestRunDurationAndInterrupt(t *testing.T) {
	kv := newMemKV()
	begin := time.Now()
	res, err := Run(context.Background(), Config{
		Clients: 2, Duration: 30 * time.Millisecond, Mix: mustMix(t, "put=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	took := time.Since(begin)
	if err != nil {
		t.Fatal(err)
	}
	// Workers issue operations until the duration has passed, not before.
	if res.StoppedBy != StoppedDuration || took < 30*time.Millisecond || res.Total.Succeeded() == 0 {
		t.Errorf("stopped by %q after %v with %d ops; want duration, at least 30ms, some ops",
			res.StoppedBy, took, res.Total.Succeeded())
	}
	if res.Wall <= 0 || res.Wall > took {
		t.Errorf("wall clock %v, want within the %v Run took", res.Wall, took)
	}

	// Cancelling stops the run; calls cut short are not counted as failures.
	kv = newMemKV()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv.after = func(total int) {
		if total == 50 {
			cancel()
		}
	}
	res, err = Run(ctx, Config{
		Clients: 4, Duration: time.Hour, Mix: mustMix(t, "put=1"),
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StoppedBy != StoppedInterrupted || res.Total.Failed() != 0 || res.Total.Succeeded() < 50 {
		t.Errorf("stopped by %q with %d ok, %d failed; want interrupted, at least 50 ok, none failed",
			res.StoppedBy, res.Total.Succeeded(), res.Total.Failed())
	}
}

type closeCounter struct {
	KV
	mu     *sync.Mutex
	closed *int
}

func (c closeCounter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.closed++
	return nil
}

func TestRunClosesEveryKV(t *testing.T) {
	kv := newMemKV()
	var mu sync.Mutex
	closed := 0
	_, err := Run(context.Background(), Config{
		Clients: 5, Ops: 10, Mix: mustMix(t, "put=1"),
		NewKV: func(int) (KV, error) { return closeCounter{kv.worker(), &mu, &closed}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if closed != 5 {
		t.Errorf("%d KVs closed, want 5", closed)
	}
}

func TestConfigValidate(t *testing.T) {
	newKV := func(int) (KV, error) { return newMemKV().worker(), nil }
	mix := mustMix(t, "put=1")
	empty := &Workload{Name: "empty.txt"}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Ops: 1, Mix: mix}, "NewKV"},
		{Config{NewKV: newKV, Mix: mix}, "duration or an operation count"},
		{Config{NewKV: newKV, Mix: mix, Ops: 1, Duration: time.Second}, "not both"},
		{Config{NewKV: newKV, Ops: 1}, "positive weight"},
		{Config{NewKV: newKV, Workload: empty}, "no well-formed operation"},
		{Config{NewKV: newKV, Mix: mix, Ops: 1, Clients: MaxClients + 1}, "clients"},
		{Config{NewKV: newKV, Mix: mix, Ops: 1, ValueSize: -1}, "value size"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestKeyName(t *testing.T) {
	seen := make(map[string]bool)
	for _, i := range []int{0, 1, 9, 10, 999, 123456789, 9999999999} {
		k := KeyName(i)
		if len(k) != KeyBytes || !strings.HasPrefix(k, "bench/") || seen[k] {
			t.Errorf("KeyName(%d) = %q: want %d bytes, prefix bench/, unique", i, k, KeyBytes)
		}
		seen[k] = true
	}
	if KeyName(42) != "bench/0000000042" {
		t.Errorf("KeyName(42) = %q", KeyName(42))
	}
}

// runForReport runs a small mixed load with some failures, for the report tests.
func runForReport(t *testing.T) *Result {
	t.Helper()
	kv := newMemKV()
	kv.fail = func(kind OpKind, key string) error {
		if kind == OpDelete && key == KeyName(0) {
			return fmt.Errorf("delete: %w", client.ErrUnavailable)
		}
		return nil
	}
	res, err := Run(context.Background(), Config{
		Clients: 4, Ops: 2000, Keys: 10, Mix: mustMix(t, "put=2,get=2,delete=1"), Preload: true,
		NewKV: func(int) (KV, error) { return kv.worker(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestResultJSON(t *testing.T) {
	res := runForReport(t)
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Clients     int     `json:"clients"`
		WallSeconds float64 `json:"wall_seconds"`
		Operations  map[string]struct {
			Ops          uint64            `json:"ops"`
			OpsPerSec    float64           `json:"ops_per_sec"`
			P50          *float64          `json:"p50_ms"`
			P99          *float64          `json:"p99_ms"`
			P999         *float64          `json:"p999_ms"`
			Errors       uint64            `json:"errors"`
			ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
		} `json:"operations"`
		Total struct {
			Ops    uint64 `json:"ops"`
			Errors uint64 `json:"errors"`
		} `json:"total"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if got.Clients != 4 || got.WallSeconds <= 0 || len(got.Operations) != 3 {
		t.Fatalf("clients %d, wall %v, %d operation kinds; want 4, > 0, 3:\n%s",
			got.Clients, got.WallSeconds, len(got.Operations), buf.String())
	}
	var ops, errs uint64
	for name, o := range got.Operations {
		if o.P50 == nil || o.P99 == nil || o.P999 == nil || *o.P50 > *o.P99 || *o.P99 > *o.P999 {
			t.Errorf("%s: percentiles missing or out of order", name)
		}
		if len(o.ErrorsByKind) != 4 {
			t.Errorf("%s: errors_by_kind %v, want all four kinds", name, o.ErrorsByKind)
		}
		if want := float64(o.Ops) / got.WallSeconds; o.OpsPerSec < want*0.999 || o.OpsPerSec > want*1.001 {
			t.Errorf("%s: ops_per_sec %.1f, want ops / wall_seconds = %.1f", name, o.OpsPerSec, want)
		}
		ops += o.Ops
		errs += o.Errors
	}
	if ops+errs != 2000 || got.Total.Ops != ops || got.Total.Errors != errs {
		t.Errorf("ops %d + errors %d, total %d + %d; want 2000 in all, totals matching", ops, errs, got.Total.Ops, got.Total.Errors)
	}
	if got.Operations["delete"].ErrorsByKind["unavailable"] == 0 {
		t.Error("the failing deletes are not counted as unavailable")
	}
}

func TestResultText(t *testing.T) {
	res := runForReport(t)
	var buf bytes.Buffer
	if err := res.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"4 clients", "p99.9 ms", "\nput ", "\nget ", "\ndelete ", "\ntotal ",
		"errors by kind", "unavailable", "first delete unavailable", "stopped by ops"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestWritePlot(t *testing.T) {
	for name, res := range map[string]*Result{"run": runForReport(t), "empty": {Kinds: []OpKind{OpPut}}} {
		var buf bytes.Buffer
		if err := res.WritePlot(&buf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 800 {
			t.Errorf("%s: image is %dx%d, want at least 800x800", name, b.Dx(), b.Dy())
		}
	}
}
