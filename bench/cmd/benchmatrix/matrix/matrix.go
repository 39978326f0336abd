package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/bench/machine"
	"github.com/ballot-kv/ballot/bench/proc"
)

// Cell is one point of the matrix.
type Cell struct {
	// Replicas is the cluster size: replicas of Ballot, members of etcd.
	Replicas  int    `json:"replicas"`
	Clients   int    `json:"clients"`
	ValueSize int    `json:"value_size"`
	Op        string `json:"op"` // put, get (linearizable) or stale
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

// Result is what one cell measured.
type Result struct {
	Cell
	Error     string  `json:"error,omitempty"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	WallS     float64 `json:"wall_s"`
	// ServerCPUUsPerOp is the CPU time of all servers together per successful
	// operation; ClientCPUUsPerOp is the load generator's.
	ServerCPUUsPerOp float64 `json:"server_cpu_us_per_op"`
	ClientCPUUsPerOp float64 `json:"client_cpu_us_per_op"`
	// ServerCores is the servers' CPU time over the wall-clock time: cores busy.
	ServerCores float64 `json:"server_cores"`
	// OthersShare is the share of the machine's CPU capacity used by other
	// processes during the cell: high values mean a noisy run.
	OthersShare float64 `json:"others_cpu_share"`
	// FirstError is one failed operation's message, if any failed.
	FirstError string `json:"first_error,omitempty"`
}

// Matrix runs every cell of Settings on System and writes the reports.
type Matrix struct {
	Sys System
	S   Settings
	// Log receives a line per cell as it finishes, and the paths written.
	Log io.Writer

	started time.Time
	results []Result
	// limits are the machine's fsync and loopback speed, probed before the first
	// cell; probeErr says why they are missing.
	limits   machine.Limits
	probeErr error
}

// probeTime is how long each machine probe runs.
const probeTime = time.Second

// Results are the cells measured so far, in the order they ran.
func (m *Matrix) Results() []Result { return m.results }

// describe is a cell in words: "3 replicas, put, 100-byte values, 64 clients".
func (m *Matrix) describe(c Cell) string {
	s := fmt.Sprintf("%s, %s, %d-byte values, %s", m.Sys.nodes(c.Replicas), opTitle(c.Op), c.ValueSize, clientsText(c.Clients))
	if m.Sys.Label != "" {
		s = m.Sys.Label + ", " + s
	}
	return s
}

// Cells are the matrix's cells in the order they run.
func (m *Matrix) Cells() []Cell {
	var cells []Cell
	for _, r := range m.S.Replicas {
		for _, v := range m.S.Values {
			for _, op := range m.S.Ops {
				for _, c := range m.S.Clients {
					cells = append(cells, Cell{Replicas: r, Clients: c, ValueSize: v, Op: op})
				}
			}
		}
	}
	return cells
}

// Run measures every cell, one after another, each on a fresh cluster, and
// writes the reports to S.Out, also when ctx ends early: they then hold the cells
// measured so far.
func (m *Matrix) Run(ctx context.Context) error {
	m.started = time.Now()
	if err := os.MkdirAll(m.S.Out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ballot-"+m.Sys.FilePrefix+"-")
	if err != nil {
		return err
	}
	if m.S.Keep {
		fmt.Fprintf(m.Log, "clusters' data and logs kept in %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	// The disk probe writes where the clusters keep their data.
	if m.limits, m.probeErr = machine.Measure(tmp, probeTime); m.probeErr != nil {
		fmt.Fprintf(m.Log, "%s: machine probe failed: %v\n", m.Sys.Program, m.probeErr)
	} else {
		fmt.Fprintf(m.Log, "%s: this machine today: %s\n", m.Sys.Program, m.limits)
	}
	cells := m.Cells()
	perCell := m.S.Warmup + m.S.Duration + 2*time.Second
	fmt.Fprintf(m.Log, "%s: %d cells of %s + %s warm-up, about %s in all; a fresh cluster per cell\n",
		m.Sys.Program, len(cells), m.S.Duration, m.S.Warmup, (time.Duration(len(cells)) * perCell).Round(time.Second))
	for i, c := range cells {
		if ctx.Err() != nil {
			fmt.Fprintf(m.Log, "%s: interrupted; writing the cells measured so far\n", m.Sys.Program)
			break
		}
		res := m.runCell(ctx, tmp, c)
		m.results = append(m.results, res)
		fmt.Fprintf(m.Log, "[%d/%d] %s\n", i+1, len(cells), m.line(res))
	}
	base := filepath.Join(m.S.Out, m.Sys.FilePrefix+"-"+m.started.Format("20060102-150405"))
	paths, err := m.write(base)
	for _, p := range paths {
		fmt.Fprintf(m.Log, "wrote %s\n", p)
	}
	return err
}

// line is a one-line summary of a cell's result.
func (m *Matrix) line(r Result) string {
	if r.Error != "" {
		return fmt.Sprintf("%s: FAILED: %s", m.describe(r.Cell), r.Error)
	}
	return fmt.Sprintf("%s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, %d errors; CPU per op: %ss %.0f µs, load generator %.0f µs; others used %.0f%% of the machine",
		m.describe(r.Cell), r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors, m.Sys.Node, r.ServerCPUUsPerOp, r.ClientCPUUsPerOp, 100*r.OthersShare)
}

// runCell starts a fresh cluster, measures one cell and stops the cluster.
func (m *Matrix) runCell(ctx context.Context, tmp string, c Cell) (res Result) {
	res.Cell = c
	cl, err := m.Sys.Start(ctx, tmp, c.Replicas)
	if err != nil {
		res.Error = "start cluster: " + err.Error()
		return res
	}
	defer func() {
		if err := cl.Stop(); err != nil && res.Error == "" {
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
	pids := cl.PIDs()
	var before, after proc.Snapshot
	var cpuErr error
	cfg := bench.Config{
		Clients:   c.Clients,
		Duration:  m.S.Duration,
		Warmup:    m.S.Warmup,
		Keys:      m.S.Keys,
		ValueSize: c.ValueSize,
		Mix:       parsed,
		Read:      read,
		Preload:   true,
		NewKV:     func(i int) (bench.KV, error) { return cl.NewKV(i, m.S.Timeout) },
		OnMeasure: func(start bool) {
			snap, err := proc.TakeSnapshot(pids)
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
	if err := cl.Exited(); err != nil {
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
	use := proc.Between(before, after)
	if res.Ops > 0 {
		res.ServerCPUUsPerOp = float64(use.Procs.Microseconds()) / float64(res.Ops)
		res.ClientCPUUsPerOp = float64(use.Self.Microseconds()) / float64(res.Ops)
	}
	if use.Wall > 0 {
		res.ServerCores = use.Procs.Seconds() / use.Wall.Seconds()
	}
	res.OthersShare = use.OthersShare()
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
