package matrix

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ballot-kv/ballot/bench/machine"
)

// referenceSource is where the etcd figures below were measured and written down.
const referenceSource = "shared/reference/performance.md"

// etcdFigure is one etcd measurement on this kind of machine (3 members unless
// the note says otherwise), from referenceSource.
type etcdFigure struct {
	version string
	op      string // put, get or stale, as in cell.Op
	clients int
	opsPerS float64
	note    string
}

// etcdReference are the etcd figures of referenceSource, 16-byte keys and 100-byte
// values, members and load generator on one 2-core host.
var etcdReference = []etcdFigure{
	{"3.4.23", "put", 1, 1100, "p50 0.86 ms, p99 1.7 ms"},
	{"3.4.23", "put", 16, 3900, ""},
	{"3.4.23", "put", 64, 7000, "p50 8 ms, p99 26–30 ms; ≈ 210 µs of CPU per put over the 3 members"},
	{"3.4.23", "put", 256, 8900, "p99 122 ms"},
	{"3.4.23", "get", 1, 2000, ""},
	{"3.4.23", "get", 16, 5900, ""},
	{"3.4.23", "get", 64, 9400, "p99 22 ms"},
	{"3.4.23", "get", 256, 14700, ""},
	{"3.4.23", "stale", 1, 3050, "serializable get"},
	{"3.4.23", "stale", 16, 9600, "serializable get"},
	{"3.4.23", "stale", 64, 17000, "serializable get"},
	{"3.4.23", "stale", 256, 18000, "serializable get"},
	{"3.6.16", "put", 1, 908, "p50 1.02 ms, p99 3.1 ms"},
	{"3.6.16", "put", 64, 6000, "p50 9 ms, p99 37 ms; runs ranged 5,300–7,200"},
	{"3.6.16", "get", 64, 12500, "p99 17 ms"},
}

// etcdOtherSizes are the figures for other cluster sizes, put at 64 clients.
var etcdOtherSizes = []struct {
	members int
	opsPerS float64
	note    string
}{
	{1, 17900, "etcd 3.4.23"},
	{5, 5300, "etcd 3.4.23, p99 ≈ 30 ms"},
}

// write writes base.md, base.json, base.png and base-cpu.png and returns their paths.
func (m *Matrix) write(base string) ([]string, error) {
	var paths []string
	var errs []error
	save := func(path string, data []byte, err error) {
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			return
		}
		paths = append(paths, path)
	}
	chart, err := m.throughputChart()
	save(base+".png", chart, err)
	cpuChart, err := m.cpuChart()
	save(base+"-cpu.png", cpuChart, err)
	var limits *machine.Limits
	if m.probeErr == nil {
		limits = &m.limits
	}
	js, err := json.MarshalIndent(struct {
		Started  time.Time       `json:"started"`
		Duration float64         `json:"duration_s"`
		Warmup   float64         `json:"warmup_s"`
		Keys     int             `json:"keys"`
		Machine  *machine.Limits `json:"machine,omitempty"`
		Cells    []Result        `json:"cells"`
	}{m.started, m.S.Duration.Seconds(), m.S.Warmup.Seconds(), m.S.Keys, limits, m.results}, "", "  ")
	save(base+".json", append(js, '\n'), err)
	save(base+".md", []byte(m.markdown(base)), nil)
	return paths, errors.Join(errs...)
}

// environment describes the machine and the code measured.
func environment() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit := "unknown commit"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			commit += " with uncommitted changes"
		}
	}
	return fmt.Sprintf("%d CPUs, Linux %s, %s, %s", runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version(), commit)
}

func (m *Matrix) markdown(base string) string {
	var b strings.Builder
	s := m.S
	sys := &m.Sys
	fmt.Fprintf(&b, "# %s benchmark matrix, %s\n\n", sys.Name, m.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %s.\n", environment())
	if m.probeErr == nil {
		fmt.Fprintf(&b, "- The machine's speed before the first cell (package `bench/machine`, %s each): %s. "+
			"The reference machine of `shared/reference/performance.md` did 5,200 fsyncs/s (p50 0.19 ms) and a "+
			"loopback round trip between two processes in 61 µs (p50).\n", probeTime, m.limits)
	} else {
		fmt.Fprintf(&b, "- The machine probe failed: %v.\n", m.probeErr)
	}
	fmt.Fprintf(&b, "- Each cell: a fresh cluster of %s on 127.0.0.1 (new data directories, free ports), "+
		"%s measured after %s of warm-up, %d keys of 16 bytes (gets read keys put before the warm-up), "+
		"%s, operation deadline %s. "+
		"The load generator runs on the same machine, in this program.\n", sys.Server, s.Duration, s.Warmup, s.Keys, sys.Clients, s.Timeout)
	fmt.Fprintf(&b, "- Run took %s. Charts: `%s.png` (throughput), `%s-cpu.png` (CPU per operation); raw figures: `%s.json`.\n",
		time.Since(m.started).Round(time.Second), baseName(base), baseName(base), baseName(base))
	fmt.Fprintf(&b, "- The machine is shared: compare figures taken in the same run, and read a slow cell together with "+
		"its CPU per operation and the share of the CPU other processes took (column *others*).\n\n")

	b.WriteString("## Throughput by cell\n\nops/s (p99 ms) per number of clients.\n\n")
	b.WriteString("| " + sys.Node + "s | operation | value | " + strings.Join(mapInts(s.Clients, clientsText), " | ") + " |\n")
	b.WriteString("|---|---|---|" + strings.Repeat("---:|", len(s.Clients)) + "\n")
	for _, r := range s.Replicas {
		for _, v := range s.Values {
			for _, op := range s.Ops {
				fmt.Fprintf(&b, "| %d | %s | %s |", r, opTitle(op), sizeText(v))
				for _, c := range s.Clients {
					res, ok := m.find(Cell{Replicas: r, Clients: c, ValueSize: v, Op: op})
					switch {
					case !ok:
						b.WriteString(" — |")
					case res.Error != "":
						b.WriteString(" failed |")
					default:
						fmt.Fprintf(&b, " %s (%.1f) |", thousands(res.OpsPerSec), res.P99Ms)
					}
				}
				b.WriteString("\n")
			}
		}
	}

	b.WriteString("\n## All figures\n\n")
	fmt.Fprintf(&b, "| %[1]ss | operation | value | clients | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | %[1]s CPU µs/op | client CPU µs/op | %[1]s cores | others |\n", sys.Node)
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var failures []Result
	for _, r := range m.results {
		if r.Error != "" {
			failures = append(failures, r)
			fmt.Fprintf(&b, "| %d | %s | %s | %d | failed | | | | | | | | | |\n", r.Replicas, opTitle(r.Op), sizeText(r.ValueSize), r.Clients)
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %s | %.2f | %.2f | %.2f | %.2f | %d | %.0f | %.0f | %.2f | %.0f%% |\n",
			r.Replicas, opTitle(r.Op), sizeText(r.ValueSize), r.Clients, thousands(r.OpsPerSec), r.P50Ms, r.P99Ms,
			r.P999Ms, r.MaxMs, r.Errors, r.ServerCPUUsPerOp, r.ClientCPUUsPerOp, r.ServerCores, 100*r.OthersShare)
	}
	if len(failures) > 0 {
		b.WriteString("\nFailed cells:\n\n")
		for _, r := range failures {
			fmt.Fprintf(&b, "- %s: %s\n", m.describe(r.Cell), oneLine(r.Error))
		}
	}
	var withErrors []Result
	for _, r := range m.results {
		if r.Error == "" && r.Errors > 0 {
			withErrors = append(withErrors, r)
		}
	}
	if len(withErrors) > 0 {
		b.WriteString("\nCells with failed operations (first message):\n\n")
		for _, r := range withErrors {
			fmt.Fprintf(&b, "- %s: %d failed; %s\n", m.describe(r.Cell), r.Errors, oneLine(r.FirstError))
		}
	}

	m.etcdSection(&b)

	b.WriteString(strings.NewReplacer("{node}", sys.Node, "{process}", sys.Process).Replace(`
## What the columns mean

- **ops/s**: operations that succeeded in the measured phase divided by its wall-clock length
  (from its start until its last operation finished). Never a sum of latencies.
- **p50 / p99 / p99.9 / max ms**: latency of successful operations as the client saw it, from
  just before the call to just after the answer, retries included; from a log-bucket histogram
  accurate to 1/64 of the value.
- **errors**: operations that failed (not found, unavailable, invalid or other); they are not
  in ops/s or the latencies. Gets read keys that were all put before the warm-up, so a not-found
  is an error of the system.
- **{node} CPU µs/op**: user plus system CPU time of every {process} process of the cluster,
  summed, over the measured phase, divided by the successful operations. Read from fields 14
  and 15 (utime, stime) of ` + "`/proc/PID/stat`" + ` of each {node} just before and just after the
  measured phase, in clock ticks of 1/CLK_TCK s (10 ms here), so a 5 s cell is exact to about
  ±({node}s × 10 ms) / ops. This does not depend on how busy the machine was: a slow cell
  with the usual CPU per operation was starved by other load; a slow cell with more CPU per
  operation is the design's cost.
- **client CPU µs/op**: the same for the load generator (this program).
- **{node} cores**: {node} CPU time over wall-clock time, i.e. cores kept busy by the cluster.
- **others**: the machine's busy CPU time (from ` + "`/proc/stat`" + `) not used by the {node}s or
  the load generator, as a share of all CPUs over the cell. Above a few per cent, other
  processes competed with the run and its throughput understates the design.
`))
	return b.String()
}

func (m *Matrix) etcdSection(b *strings.Builder) {
	fmt.Fprintf(b, "\n## etcd on the same kind of machine, for comparison\n\n")
	fmt.Fprintf(b, "From `%[1]s` (medians of 3 runs of 10 s; 3 members, 16-byte keys, 100-byte values; "+
		"members and load generator on one 2-core host). %[2]s's figure is from this run: "+
		"3 %[3]ss, 100-byte values, the same number of clients.\n\n", referenceSource, m.Sys.Name, m.Sys.Node)
	fmt.Fprintf(b, "| operation | clients | etcd | etcd ops/s | notes | %[1]s ops/s (p99 ms) | %[1]s %[2]s CPU µs/op |\n", m.Sys.Name, m.Sys.Node)
	b.WriteString("|---|---:|---|---:|---|---:|---:|\n")
	for _, f := range etcdReference {
		ours := "not measured"
		cpu := ""
		if r, ok := m.find(Cell{Replicas: 3, Clients: f.clients, ValueSize: 100, Op: f.op}); ok && r.Error == "" {
			ours = fmt.Sprintf("%s (%.1f)", thousands(r.OpsPerSec), r.P99Ms)
			cpu = fmt.Sprintf("%.0f", r.ServerCPUUsPerOp)
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s |\n", opTitle(f.op), f.clients, f.version, thousands(f.opsPerS), f.note, ours, cpu)
	}
	for _, f := range etcdOtherSizes {
		ours := "not measured"
		if r, ok := m.find(Cell{Replicas: f.members, Clients: 64, ValueSize: 100, Op: "put"}); ok && r.Error == "" {
			ours = fmt.Sprintf("%s (%.1f)", thousands(r.OpsPerSec), r.P99Ms)
		}
		fmt.Fprintf(b, "| put, %s | 64 | %s | %s | | %s | |\n", plural(f.members, "member"), f.note, thousands(f.opsPerS), ours)
	}
	b.WriteString("\netcd 3.6.16 measured again on 2026-11-23 (a slower day): put at 64 clients 4,896/s, p50 11.9 ms, " +
		"p99 39 ms, 280 µs of etcd CPU per put. Absolute figures drift by up to ~30 % between runs minutes apart; " +
		"CPU per operation drifts far less.\n")
}

func (m *Matrix) find(c Cell) (Result, bool) {
	i := slices.IndexFunc(m.results, func(r Result) bool { return r.Cell == c })
	if i < 0 {
		return Result{}, false
	}
	return m.results[i], true
}

func baseName(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

func mapInts(xs []int, f func(int) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// clientsText is "1 client" or "N clients".
func clientsText(n int) string { return plural(n, "client") }

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sizeText is "100 B" or "4 KiB".
func sizeText(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// thousands formats a rate with thousands separators and no decimals.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
