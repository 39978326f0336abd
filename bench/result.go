package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result is what a run's measured phase saw.
type Result struct {
	// The run's settings, defaults filled in.
	Clients   int
	Duration  time.Duration
	Ops       int64
	Warmup    time.Duration
	Keys      int
	ValueSize int
	Mix       Mix
	Read      ReadMode
	Seed      uint64
	Workload  *Workload
	// Endpoints may be set by the caller, for the report.
	Endpoints []string

	// Start is when the measured phase started; Wall is how long it took, until its
	// last operation finished.
	Start time.Time
	Wall  time.Duration
	// StoppedBy says why the measured phase ended: one of the Stopped constants.
	StoppedBy string
	// Kinds are the operation kinds the run issued, in report order.
	Kinds []OpKind
	// PerOp holds the figures of each kind; Total merges them.
	PerOp [numOpKinds]OpResult
	Total OpResult
	// Preload is zero when there was none.
	Preload PreloadResult
	// Timeline counts each kind's successes per Window from Start.
	Window   time.Duration
	Timeline [numOpKinds][]uint64
	// Samples are latencies sampled uniformly from the successes, by start time.
	Samples []Sample
}

// OpResult is the figures of one operation kind, or of all.
type OpResult struct {
	// Hist holds the latency of every success.
	Hist Histogram
	// Errors counts the failures by kind; FirstError keeps the first message.
	Errors     [numErrorKinds]uint64
	FirstError [numErrorKinds]string
}

// Succeeded is the number of operations that succeeded.
func (o *OpResult) Succeeded() uint64 { return o.Hist.Count() }

// Failed is the number of operations that failed, all kinds together.
func (o *OpResult) Failed() uint64 {
	var n uint64
	for _, c := range o.Errors {
		n += c
	}
	return n
}

// PreloadResult is what the preload phase did.
type PreloadResult struct {
	Keys       int
	Errors     uint64
	FirstError string
	Took       time.Duration
}

// Throughput is successes per wall-clock second of the measured phase.
func (r *Result) Throughput(o *OpResult) float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(o.Succeeded()) / r.Wall.Seconds()
}

// merge folds the workers' stats into r.
func (r *Result) merge(kinds []OpKind, stats []*workerStats, sampleCap int) {
	r.Kinds = kinds
	for _, st := range stats {
		for _, k := range OpKinds {
			o := &r.PerOp[k]
			o.Hist.Merge(&st.hist[k])
			r.Total.Hist.Merge(&st.hist[k])
			for ek, c := range st.errs[k] {
				o.Errors[ek] += c
				r.Total.Errors[ek] += c
				if msg := st.firstErr[k][ek]; msg != "" {
					if o.FirstError[ek] == "" {
						o.FirstError[ek] = msg
					}
					if r.Total.FirstError[ek] == "" {
						r.Total.FirstError[ek] = msg
					}
				}
			}
			for w, c := range st.windows[k] {
				for len(r.Timeline[k]) <= w {
					r.Timeline[k] = append(r.Timeline[k], 0)
				}
				r.Timeline[k][w] += uint64(c)
			}
		}
		r.Samples = append(r.Samples, st.samples...)
	}
	if len(r.Samples) > sampleCap {
		// Keep an even spread: every len/cap-th sample in start order.
		slices.SortFunc(r.Samples, func(a, b Sample) int { return cmp.Compare(a.At, b.At) })
		kept := make([]Sample, 0, sampleCap)
		step := float64(len(r.Samples)) / float64(sampleCap)
		for i := range sampleCap {
			kept = append(kept, r.Samples[int(float64(i)*step)])
		}
		r.Samples = kept
	}
	slices.SortFunc(r.Samples, func(a, b Sample) int { return cmp.Compare(a.At, b.At) })
}

// Summary is the JSON form of a Result (`ballot bench --json`).
type Summary struct {
	Clients     int                  `json:"clients"`
	DurationS   float64              `json:"duration_s,omitempty"`
	OpsLimit    int64                `json:"ops_limit,omitempty"`
	WarmupS     float64              `json:"warmup_s"`
	Keys        int                  `json:"keys,omitempty"`
	ValueSize   int                  `json:"value_size,omitempty"`
	Mix         string               `json:"mix,omitempty"`
	Read        string               `json:"read"`
	Seed        uint64               `json:"seed"`
	Endpoints   []string             `json:"endpoints,omitempty"`
	Start       time.Time            `json:"start"`
	WallSeconds float64              `json:"wall_seconds"`
	StoppedBy   string               `json:"stopped_by"`
	Operations  map[string]OpSummary `json:"operations"`
	Total       OpSummary            `json:"total"`
	Preload     *PreloadSummary      `json:"preload,omitempty"`
	Workload    *WorkloadSummary     `json:"workload,omitempty"`
}

// OpSummary is the figures of one operation kind, or of all. Latencies are in
// milliseconds over the successes; ops_per_sec is successes per wall-clock second.
type OpSummary struct {
	Ops          uint64            `json:"ops"`
	OpsPerSec    float64           `json:"ops_per_sec"`
	MeanMs       float64           `json:"mean_ms"`
	P50Ms        float64           `json:"p50_ms"`
	P90Ms        float64           `json:"p90_ms"`
	P99Ms        float64           `json:"p99_ms"`
	P999Ms       float64           `json:"p999_ms"`
	MaxMs        float64           `json:"max_ms"`
	Errors       uint64            `json:"errors"`
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	FirstErrors  map[string]string `json:"first_errors,omitempty"`
}

// PreloadSummary is the JSON form of PreloadResult.
type PreloadSummary struct {
	Keys       int     `json:"keys"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
}

// WorkloadSummary says what was read from a workload file.
type WorkloadSummary struct {
	File           string      `json:"file"`
	Lines          int         `json:"lines"`
	Operations     int         `json:"operations"`
	Malformed      int         `json:"malformed"`
	MalformedLines []Malformed `json:"malformed_lines,omitempty"`
}

// MarshalJSON gives Malformed lower-case keys.
func (m Malformed) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Line   int    `json:"line"`
		Reason string `json:"reason"`
		Text   string `json:"text"`
	}{m.Line, m.Reason, m.Text})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *Result) opSummary(o *OpResult) OpSummary {
	s := OpSummary{
		Ops:          o.Succeeded(),
		OpsPerSec:    r.Throughput(o),
		MeanMs:       ms(o.Hist.Mean()),
		P50Ms:        ms(o.Hist.Quantile(0.50)),
		P90Ms:        ms(o.Hist.Quantile(0.90)),
		P99Ms:        ms(o.Hist.Quantile(0.99)),
		P999Ms:       ms(o.Hist.Quantile(0.999)),
		MaxMs:        ms(o.Hist.Max()),
		Errors:       o.Failed(),
		ErrorsByKind: make(map[string]uint64, numErrorKinds),
	}
	for _, ek := range ErrorKinds {
		s.ErrorsByKind[ek.String()] = o.Errors[ek]
		if msg := o.FirstError[ek]; msg != "" {
			if s.FirstErrors == nil {
				s.FirstErrors = make(map[string]string)
			}
			s.FirstErrors[ek.String()] = msg
		}
	}
	return s
}

// Summary returns the JSON form of r.
func (r *Result) Summary() Summary {
	s := Summary{
		Clients:     r.Clients,
		DurationS:   r.Duration.Seconds(),
		OpsLimit:    r.Ops,
		WarmupS:     r.Warmup.Seconds(),
		Read:        r.Read.String(),
		Seed:        r.Seed,
		Endpoints:   r.Endpoints,
		Start:       r.Start,
		WallSeconds: r.Wall.Seconds(),
		StoppedBy:   r.StoppedBy,
		Operations:  make(map[string]OpSummary, len(r.Kinds)),
		Total:       r.opSummary(&r.Total),
	}
	for _, k := range r.Kinds {
		s.Operations[k.String()] = r.opSummary(&r.PerOp[k])
	}
	if r.Workload != nil {
		s.Workload = &WorkloadSummary{
			File:           r.Workload.Name,
			Lines:          r.Workload.Lines,
			Operations:     len(r.Workload.Ops),
			Malformed:      len(r.Workload.Malformed),
			MalformedLines: r.Workload.Malformed,
		}
	} else {
		s.Keys, s.ValueSize, s.Mix = r.Keys, r.ValueSize, r.Mix.String()
	}
	if r.Preload.Keys > 0 {
		s.Preload = &PreloadSummary{
			Keys:       r.Preload.Keys,
			Errors:     r.Preload.Errors,
			FirstError: r.Preload.FirstError,
			Seconds:    r.Preload.Took.Seconds(),
		}
	}
	return s
}

// WriteJSON writes r's Summary as one indented JSON object and a newline.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.Summary())
}

// maxReportedMalformed bounds the malformed lines listed in the text report.
const maxReportedMalformed = 20

// WriteText writes the human-readable report: the settings, a table with one row
// per operation kind and a total, the errors by kind, and any malformed lines.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ballot bench: %d clients, %s", r.Clients, r.phaseText())
	if r.Workload != nil {
		fmt.Fprintf(&b, "; workload %s; gets %s\n", r.Workload.Name, r.Read)
	} else {
		fmt.Fprintf(&b, "; %d keys, %d-byte values; mix %s; gets %s\n", r.Keys, r.ValueSize, r.Mix, r.Read)
	}
	if len(r.Endpoints) > 0 {
		fmt.Fprintf(&b, "endpoints: %s\n", strings.Join(r.Endpoints, ","))
	}
	if p := r.Preload; p.Keys > 0 {
		fmt.Fprintf(&b, "preload: %d keys in %.2f s, %d failed\n", p.Keys, p.Took.Seconds(), p.Errors)
	}
	b.WriteString("\n")

	const rowFormat = "%-7s %10s %9s %9s %9s %9s %9s %9s %7s\n"
	fmt.Fprintf(&b, rowFormat, "op", "ops/s", "ops", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors")
	row := func(name string, o *OpResult) {
		h := &o.Hist
		f := func(d time.Duration) string { return fmt.Sprintf("%.3f", ms(d)) }
		fmt.Fprintf(&b, rowFormat, name, fmt.Sprintf("%.1f", r.Throughput(o)), fmt.Sprint(o.Succeeded()),
			f(h.Quantile(0.50)), f(h.Quantile(0.90)), f(h.Quantile(0.99)), f(h.Quantile(0.999)), f(h.Max()),
			fmt.Sprint(o.Failed()))
	}
	for _, k := range r.Kinds {
		row(k.String(), &r.PerOp[k])
	}
	if len(r.Kinds) != 1 {
		row("total", &r.Total)
	}
	fmt.Fprintf(&b, "\nwall clock %.3f s (stopped by %s); ops/s = successes / wall-clock seconds\n",
		r.Wall.Seconds(), strings.ReplaceAll(r.StoppedBy, "_", " "))

	if r.Total.Failed() == 0 {
		b.WriteString("errors: none\n")
	} else {
		b.WriteString("\nerrors by kind:\n")
		fmt.Fprintf(&b, "%-7s", "op")
		for _, ek := range ErrorKinds {
			fmt.Fprintf(&b, " %12s", ek)
		}
		b.WriteString("\n")
		for _, k := range r.Kinds {
			fmt.Fprintf(&b, "%-7s", k)
			for _, ek := range ErrorKinds {
				fmt.Fprintf(&b, " %12d", r.PerOp[k].Errors[ek])
			}
			b.WriteString("\n")
		}
		for _, k := range r.Kinds {
			for _, ek := range ErrorKinds {
				if msg := r.PerOp[k].FirstError[ek]; msg != "" {
					fmt.Fprintf(&b, "  first %s %s: %s\n", k, ek, msg)
				}
			}
		}
	}
	if wl := r.Workload; wl != nil {
		fmt.Fprintf(&b, "\nworkload %s: %d lines, %d operations, %d malformed lines skipped\n",
			wl.Name, wl.Lines, len(wl.Ops), len(wl.Malformed))
		for i, m := range wl.Malformed {
			if i == maxReportedMalformed {
				fmt.Fprintf(&b, "  ... and %d more\n", len(wl.Malformed)-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// phaseText describes the measured phase, e.g. "5s after 1s warm-up".
func (r *Result) phaseText() string {
	var s string
	switch {
	case r.Duration > 0:
		s = r.Duration.String()
	case r.Ops > 0:
		s = fmt.Sprintf("%d operations", r.Ops)
	default:
		s = "one pass"
	}
	if r.Warmup > 0 {
		s += " after " + r.Warmup.String() + " warm-up"
	}
	return s
}
