package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/client"
)

// cell is one point of the matrix.
type cell struct {
	Replicas  int    `json:"replicas"`
	Clients   int    `json:"clients"`
	ValueSize int    `json:"value_size"`
	Op        string `json:"op"` // put, get (linearizable) or stale
}

func (c cell) String() string {
	return fmt.Sprintf("%s, %s, %d-byte values, %s", plural(c.Replicas, "replica"), opTitle(c.Op), c.ValueSize, clientsText(c.Clients))
}

// opTitle is how an operation is named in reports.
func opTitle(op string) string {
	switch op {
	case "get":
		return "linearizable get"
	case "stale":
		return "stale get"
	}
	return op
}

// cellResult is what one cell measured.
type cellResult struct {
	cell
	Error     string  `json:"error,omitempty"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	WallS     float64 `json:"wall_s"`
	// ServerCPUUsPerOp is the CPU time of all replicas together per successful
	// operation; ClientCPUUsPerOp is the load generator's.
	ServerCPUUsPerOp float64 `json:"server_cpu_us_per_op"`
	ClientCPUUsPerOp float64 `json:"client_cpu_us_per_op"`
	// ServerCores is the replicas' CPU time over the wall-clock time: cores busy.
	ServerCores float64 `json:"server_cores"`
	// OthersShare is the share of the machine's CPU capacity used by other
	// processes during the cell: high values mean a noisy run.
	OthersShare float64 `json:"others_cpu_share"`
	// FirstError is one failed operation's message, if any failed.
	FirstError string `json:"first_error,omitempty"`
}

// matrix runs every cell and writes the reports.
type matrix struct {
	s       settings
	log     io.Writer
	started time.Time
	results []cellResult
}

func (m *matrix) cells() []cell {
	var cells []cell
	for _, r := range m.s.replicas {
		for _, v := range m.s.values {
			for _, op := range m.s.ops {
				for _, c := range m.s.clients {
					cells = append(cells, cell{Replicas: r, Clients: c, ValueSize: v, Op: op})
				}
			}
		}
	}
	return cells
}

func (m *matrix) run(ctx context.Context) error {
	m.started = time.Now()
	if err := os.MkdirAll(m.s.out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ballot-bench-")
	if err != nil {
		return err
	}
	if m.s.keep {
		fmt.Fprintf(m.log, "clusters' data and logs kept in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	cells := m.cells()
	perCell := m.s.warmup + m.s.duration + 2*time.Second
	fmt.Fprintf(m.log, "benchmatrix: %d cells of %s + %s warm-up, about %s in all; a fresh cluster per cell\n",
		len(cells), m.s.duration, m.s.warmup, (time.Duration(len(cells)) * perCell).Round(time.Second))
	for i, c := range cells {
		if ctx.Err() != nil {
			fmt.Fprintln(m.log, "benchmatrix: interrupted; writing the cells measured so far")
			break
		}
		res := m.runCell(ctx, tmp, c)
		m.results = append(m.results, res)
		fmt.Fprintf(m.log, "[%d/%d] %s\n", i+1, len(cells), res.line())
	}
	base := filepath.Join(m.s.out, "bench-"+m.started.Format("20060102-150405"))
	paths, err := m.write(base)
	for _, p := range paths {
		fmt.Fprintf(m.log, "wrote %s\n", p)
	}
	return err
}

// line is a one-line summary of the cell's result.
func (r cellResult) line() string {
	if r.Error != "" {
		return fmt.Sprintf("%s: FAILED: %s", r.cell, r.Error)
	}
	return fmt.Sprintf("%s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %d errors; CPU per op: replicas %.0f µs, load generator %.0f µs; others used %.0f%% of the machine",
		r.cell, r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors, r.ServerCPUUsPerOp, r.ClientCPUUsPerOp, 100*r.OthersShare)
}

// runCell starts a fresh cluster, measures one cell and stops the cluster.
func (m *matrix) runCell(ctx context.Context, tmp string, c cell) (res cellResult) {
	res.cell = c
	cl, err := startCluster(ctx, m.s.ballotd, tmp, c.Replicas)
	if err != nil {
		res.Error = "start cluster: " + err.Error()
		return res
	}
	defer func() {
		if err := cl.stop(); err != nil && res.Error == "" {
			res.Error = "stop cluster: " + err.Error()
		}
	}()

	mix := "put=1"
	read := bench.Linearizable
	if c.Op != "put" {
		mix = "get=1"
		if c.Op == "stale" {
			read = bench.Stale
		}
	}
	parsed, err := bench.ParseMix(mix)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	pids := cl.pids()
	var before, after cpuSnapshot
	var cpuErr error
	cfg := bench.Config{
		Clients:   c.Clients,
		Duration:  m.s.duration,
		Warmup:    m.s.warmup,
		Keys:      m.s.keys,
		ValueSize: c.ValueSize,
		Mix:       parsed,
		Read:      read,
		Preload:   true,
		NewKV: func(i int) (bench.KV, error) {
			n := len(cl.endpoints)
			eps := append(append([]string{}, cl.endpoints[i%n:]...), cl.endpoints[:i%n]...)
			kc, err := client.New(client.Config{Endpoints: eps, Timeout: m.s.timeout})
			if err != nil {
				return nil, err
			}
			return closingKV{bench.ClientKV{C: kc}}, nil
		},
		OnMeasure: func(start bool) {
			snap, err := takeCPUSnapshot(pids)
			cpuErr = errors.Join(cpuErr, err)
			if start {
				before = snap
			} else {
				after = snap
			}
		},
	}
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if err := cl.exited(); err != nil {
		res.Error = err.Error()
	}
	if r.StoppedBy == bench.StoppedInterrupted {
		res.Error = "interrupted"
	}
	t := &r.Total
	res.Ops, res.Errors = t.Succeeded(), t.Failed()
	res.OpsPerSec = r.Throughput(t)
	res.P50Ms = ms(t.Hist.Quantile(0.5))
	res.P99Ms = ms(t.Hist.Quantile(0.99))
	res.P999Ms = ms(t.Hist.Quantile(0.999))
	res.MaxMs = ms(t.Hist.Max())
	res.WallS = r.Wall.Seconds()
	for _, msg := range t.FirstError {
		if msg != "" {
			res.FirstError = msg
			break
		}
	}
	if cpuErr != nil {
		if res.Error != "" {
			res.Error += "; "
		}
		res.Error += "CPU accounting: " + cpuErr.Error()
		return res
	}
	use := cpuBetween(before, after)
	if res.Ops > 0 {
		res.ServerCPUUsPerOp = float64(use.replicas.Microseconds()) / float64(res.Ops)
		res.ClientCPUUsPerOp = float64(use.self.Microseconds()) / float64(res.Ops)
	}
	if use.wall > 0 {
		res.ServerCores = use.replicas.Seconds() / use.wall.Seconds()
	}
	res.OthersShare = use.othersShare()
	return res
}

// closingKV closes each worker's client when the run ends.
type closingKV struct{ bench.ClientKV }

func (k closingKV) Close() error { return k.C.Close() }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
