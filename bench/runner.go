package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Defaults for the zero values of Config.
const (
	DefaultKeys      = 1000
	DefaultValueSize = 100
	// DefaultTimeLimit bounds a measured phase counted in operations.
	DefaultTimeLimit = 10 * time.Minute
	// DefaultSampleCap is the number of (time, latency) samples kept for plots.
	DefaultSampleCap = 200_000
	// MaxClients bounds Config.Clients.
	MaxClients = 10_000
	// Window is the width of the throughput timeline's windows.
	Window = 100 * time.Millisecond
)

// KeyBytes is the length of every generated key: "bench/" and 10 digits.
const KeyBytes = 16

// Config describes one run. Zero values mean the defaults, except NewKV, which
// is required, and the phase length: set Duration or Ops, or Workload alone for
// one pass through it.
type Config struct {
	// Clients is the number of concurrent workers (default 1), each with its own KV.
	Clients int
	// Duration is the length of the measured phase.
	Duration time.Duration
	// Ops is the number of operations the measured phase issues.
	Ops int64
	// TimeLimit stops the measured phase even if Ops have not all been issued
	// (default DefaultTimeLimit, or Duration + 1 minute).
	TimeLimit time.Duration
	// Warmup runs the load this long before the measured phase, unrecorded.
	Warmup time.Duration
	// Keys is the size of the key space of generated loads (default DefaultKeys).
	Keys int
	// ValueSize is the length of generated values in bytes (default DefaultValueSize).
	ValueSize int
	// Mix weighs the generated operations; ignored when Workload is set.
	Mix Mix
	// Read says how gets read.
	Read ReadMode
	// Workload replays these operations instead of generating a load: workers take
	// them in turn, from the first again after the last.
	Workload *Workload
	// Preload puts every key of the key space once before warm-up, unrecorded, so
	// that gets find values. It applies to generated loads with gets or deletes.
	Preload bool
	// Seed makes the generated keys and operations repeatable; 0 picks one.
	Seed uint64
	// SampleCap bounds the latency samples kept for plots (default DefaultSampleCap).
	SampleCap int
	// NewKV returns the KV of worker i (0 <= i < Clients). A KV that is an io.Closer
	// is closed when the run ends.
	NewKV func(worker int) (KV, error)
	// Progress, if set, is updated as operations complete.
	Progress *Progress
	// OnMeasure, if set, is called with true just before the measured phase starts
	// and with false just after its last operation finished, so a caller can
	// sample resource use over exactly that phase.
	OnMeasure func(start bool)
}

// Validate reports the first problem with the configuration.
func (cfg Config) Validate() error {
	switch {
	case cfg.NewKV == nil:
		return errors.New("bench: no NewKV")
	case cfg.Clients < 0 || cfg.Clients > MaxClients:
		return fmt.Errorf("bench: clients %d: want 1 to %d", cfg.Clients, MaxClients)
	case cfg.Duration < 0:
		return fmt.Errorf("bench: negative duration %s", cfg.Duration)
	case cfg.Ops < 0:
		return fmt.Errorf("bench: negative operation count %d", cfg.Ops)
	case cfg.Duration > 0 && cfg.Ops > 0:
		return errors.New("bench: set a duration or an operation count, not both")
	case cfg.Duration == 0 && cfg.Ops == 0 && cfg.Workload == nil:
		return errors.New("bench: set a duration or an operation count")
	case cfg.TimeLimit < 0 || cfg.Warmup < 0:
		return errors.New("bench: negative time limit or warm-up")
	case cfg.Keys < 0:
		return fmt.Errorf("bench: negative key count %d", cfg.Keys)
	case cfg.ValueSize < 0 || cfg.ValueSize > kvapi.MAX_VALUE_BYTES:
		return fmt.Errorf("bench: value size %d: want 1 to %d bytes", cfg.ValueSize, kvapi.MAX_VALUE_BYTES)
	case cfg.SampleCap < 0:
		return errors.New("bench: negative sample cap")
	case cfg.Workload != nil && len(cfg.Workload.Ops) == 0:
		return fmt.Errorf("bench: workload %s holds no well-formed operation", cfg.Workload.Name)
	case cfg.Workload == nil && cfg.Mix.total() == 0:
		return errors.New("bench: the mix has no operation with a positive weight")
	}
	return nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Clients == 0 {
		cfg.Clients = 1
	}
	if cfg.Keys == 0 {
		cfg.Keys = DefaultKeys
	}
	if cfg.ValueSize == 0 {
		cfg.ValueSize = DefaultValueSize
	}
	if cfg.TimeLimit == 0 {
		cfg.TimeLimit = DefaultTimeLimit
		if cfg.Duration > 0 {
			cfg.TimeLimit = cfg.Duration + time.Minute
		}
	}
	if cfg.Duration > 0 {
		cfg.TimeLimit = min(cfg.TimeLimit, cfg.Duration)
	}
	if cfg.SampleCap == 0 {
		cfg.SampleCap = DefaultSampleCap
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() | 1
	}
	if cfg.Progress == nil {
		cfg.Progress = &Progress{}
	}
	return cfg
}

// kinds returns the operation kinds the run issues.
func (cfg Config) kinds() []OpKind {
	var used [numOpKinds]bool
	if cfg.Workload != nil {
		for _, op := range cfg.Workload.Ops {
			used[op.Kind] = true
		}
	} else {
		for _, k := range OpKinds {
			used[k] = cfg.Mix.Has(k)
		}
	}
	var kinds []OpKind
	for _, k := range OpKinds {
		if used[k] {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// KeyName returns generated key i: "bench/" and i in 10 digits, KeyBytes long.
func KeyName(i int) string {
	var b [KeyBytes]byte
	copy(b[:], "bench/0000000000")
	s := strconv.AppendUint(b[:0:0], uint64(i)%1e10, 10)
	copy(b[KeyBytes-len(s):], s)
	return string(b[:])
}

// Run drives the cluster as cfg says and returns what the measured phase saw. It
// returns an error when the configuration is invalid, a KV cannot be made, or no
// preload put succeeded; failed operations are counted in the Result, not
// returned. Cancelling ctx stops the run early: the Result covers what completed
// and says StoppedBy "interrupted".
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	kvs := make([]KV, cfg.Clients)
	defer func() {
		for _, kv := range kvs {
			if c, ok := kv.(io.Closer); ok {
				c.Close()
			}
		}
	}()
	for i := range kvs {
		kv, err := cfg.NewKV(i)
		if err != nil {
			return nil, fmt.Errorf("bench: client %d: %w", i, err)
		}
		kvs[i] = kv
	}
	r := &runner{cfg: cfg, kvs: kvs}
	r.makeValues()
	res := &Result{
		Clients:   cfg.Clients,
		Duration:  cfg.Duration,
		Ops:       cfg.Ops,
		Warmup:    cfg.Warmup,
		Keys:      cfg.Keys,
		ValueSize: cfg.ValueSize,
		Mix:       cfg.Mix,
		Read:      cfg.Read,
		Seed:      cfg.Seed,
		Workload:  cfg.Workload,
		Window:    Window,
	}

	if cfg.Preload && cfg.Workload == nil && (cfg.Mix.Has(OpGet) || cfg.Mix.Has(OpDelete)) {
		// Bounded by the key count, and in time by the longer of the limits: a
		// short measured phase must not cut the preload short.
		ph := r.newPhase(PhasePreload, int64(cfg.Keys), max(cfg.TimeLimit, DefaultTimeLimit))
		stats := r.runPhase(ctx, ph, false)
		res.Preload = PreloadResult{Keys: cfg.Keys, Took: ph.took}
		var done uint64
		for _, s := range stats {
			done += s.preloadDone
			res.Preload.Errors += s.preloadErrs
			if res.Preload.FirstError == "" {
				res.Preload.FirstError = s.preloadFirst
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: preload interrupted: %w", err)
		}
		if done < uint64(cfg.Keys) {
			return nil, fmt.Errorf("bench: preload: only %d of %d puts done within %s", done, cfg.Keys, ph.length)
		}
		if res.Preload.Errors >= uint64(cfg.Keys) {
			return nil, fmt.Errorf("bench: preload: all %d puts failed; first: %s", cfg.Keys, res.Preload.FirstError)
		}
	}
	if cfg.Warmup > 0 {
		r.runPhase(ctx, r.newPhase(PhaseWarmup, math.MaxInt64, cfg.Warmup), false)
	}
	if err := ctx.Err(); err != nil {
		res.StoppedBy = StoppedInterrupted
		return res, nil
	}

	limit := int64(math.MaxInt64)
	switch {
	case cfg.Ops > 0:
		limit = cfg.Ops
	case cfg.Duration == 0: // one pass through the workload
		limit = int64(len(cfg.Workload.Ops))
	}
	ph := r.newPhase(PhaseMeasure, limit, cfg.TimeLimit)
	if cfg.OnMeasure != nil {
		cfg.OnMeasure(true)
	}
	stats := r.runPhase(ctx, ph, true)
	if cfg.OnMeasure != nil {
		cfg.OnMeasure(false)
	}
	cfg.Progress.setPhase(PhaseDone)

	res.Start = ph.start
	res.Wall = ph.took
	switch {
	case ctx.Err() != nil:
		res.StoppedBy = StoppedInterrupted
	case ph.issued.Load() > limit && cfg.Ops > 0:
		res.StoppedBy = StoppedOps
	case ph.issued.Load() > limit:
		res.StoppedBy = StoppedWorkload
	case cfg.Duration > 0:
		res.StoppedBy = StoppedDuration
	default:
		res.StoppedBy = StoppedTimeLimit
	}
	res.merge(cfg.kinds(), stats, cfg.SampleCap)
	return res, nil
}

// Phase is the part of a run in progress.
type Phase int32

// The phases of a run, in order; PhaseStarting before Run has begun any.
const (
	PhaseStarting Phase = iota
	PhasePreload
	PhaseWarmup
	PhaseMeasure
	PhaseDone
)

// String names the phase.
func (p Phase) String() string {
	switch p {
	case PhasePreload:
		return "preload"
	case PhaseWarmup:
		return "warm-up"
	case PhaseMeasure:
		return "measure"
	case PhaseDone:
		return "done"
	}
	return "starting"
}

// Progress is what a run has done so far, for a progress display. Its methods
// are safe for concurrent use.
type Progress struct {
	phase atomic.Int32
	start atomic.Int64 // unix ns when the phase started
	ok    atomic.Int64 // operations that succeeded in the phase
	fail  atomic.Int64 // operations that failed in the phase
}

func (p *Progress) setPhase(ph Phase) {
	p.ok.Store(0)
	p.fail.Store(0)
	p.start.Store(time.Now().UnixNano())
	p.phase.Store(int32(ph))
}

// Snapshot returns the current phase, how long it has run, and how many of its
// operations succeeded and failed.
func (p *Progress) Snapshot() (ph Phase, elapsed time.Duration, ok, failed int64) {
	ph = Phase(p.phase.Load())
	if start := p.start.Load(); start != 0 {
		elapsed = time.Duration(time.Now().UnixNano() - start)
	}
	return ph, elapsed, p.ok.Load(), p.fail.Load()
}

// Why a measured phase stopped.
const (
	StoppedDuration    = "duration"
	StoppedOps         = "ops"
	StoppedWorkload    = "workload"
	StoppedTimeLimit   = "time_limit"
	StoppedInterrupted = "interrupted"
)

type runner struct {
	cfg Config
	kvs []KV
	// vals holds each worker's value for generated puts, made once.
	vals [][]byte
}

// makeValues makes each worker's value, printable random bytes of ValueSize,
// before any worker starts.
func (r *runner) makeValues() {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x76616c))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r.vals = make([][]byte, len(r.kvs))
	for i := range r.vals {
		v := make([]byte, r.cfg.ValueSize)
		for j := range v {
			v[j] = alphabet[rng.IntN(len(alphabet))]
		}
		r.vals[i] = v
	}
}

// phase is one phase's shared state: the count of operations issued, its limits,
// and when it started and ended.
type phase struct {
	kind   Phase
	limit  int64         // operations to issue at most
	length time.Duration // time to issue operations for at most
	issued atomic.Int64  // operations issued (claimed) so far; may overshoot limit
	start  time.Time
	took   time.Duration // from start until the last operation finished
}

func (r *runner) newPhase(kind Phase, limit int64, length time.Duration) *phase {
	return &phase{kind: kind, limit: limit, length: length}
}

// workerStats is what one worker saw in a phase; only that worker writes it.
type workerStats struct {
	hist     [numOpKinds]Histogram
	errs     [numOpKinds][numErrorKinds]uint64
	firstErr [numOpKinds][numErrorKinds]string
	// windows counts successes per Window since the phase start.
	windows [numOpKinds][]uint32
	samples []Sample
	seen    uint64 // successes offered to the sample reservoir
	last    time.Time

	preloadDone  uint64 // preload puts completed, failed or not
	preloadErrs  uint64
	preloadFirst string
}

// Sample is one operation's latency and when it started, for plots.
type Sample struct {
	At      time.Duration // since the measured phase started
	Latency time.Duration
	Kind    OpKind
}

// runPhase runs every worker through ph and returns their stats.
func (r *runner) runPhase(ctx context.Context, ph *phase, record bool) []*workerStats {
	r.cfg.Progress.setPhase(ph.kind)
	stats := make([]*workerStats, len(r.kvs))
	sampleCap := max(r.cfg.SampleCap/len(r.kvs), 64)
	var wg sync.WaitGroup
	ph.start = time.Now()
	deadline := ph.start.Add(ph.length)
	for i := range r.kvs {
		st := &workerStats{}
		if record {
			st.samples = make([]Sample, 0, min(sampleCap, 4096))
		}
		stats[i] = st
		wg.Go(func() {
			r.work(ctx, ph, i, st, deadline, record, sampleCap)
		})
	}
	wg.Wait()
	end := ph.start
	for _, st := range stats {
		if st.last.After(end) {
			end = st.last
		}
	}
	if end.Equal(ph.start) {
		end = time.Now()
	}
	ph.took = end.Sub(ph.start)
	return stats
}

// work is one worker's loop: claim an operation, issue it, record it, until the
// phase's count or time runs out or ctx ends.
func (r *runner) work(ctx context.Context, ph *phase, worker int, st *workerStats,
	deadline time.Time, record bool, sampleCap int) {
	kv := r.kvs[worker]
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(worker)+uint64(ph.kind)<<32))
	value := r.vals[worker]
	total := r.cfg.Mix.total()
	prog := r.cfg.Progress
	for ctx.Err() == nil {
		n := ph.issued.Add(1) - 1
		if n >= ph.limit {
			return
		}
		begin := time.Now()
		if !begin.Before(deadline) {
			return
		}
		// Choose the operation.
		var kind OpKind
		var key string
		var val []byte
		switch {
		case ph.kind == PhasePreload:
			kind, key, val = OpPut, KeyName(int(n)), value
		case r.cfg.Workload != nil:
			op := &r.cfg.Workload.Ops[n%int64(len(r.cfg.Workload.Ops))]
			kind, key, val = op.Kind, op.Key, op.Value
		default:
			kind = r.cfg.Mix.pick(rng.IntN(total))
			key, val = KeyName(rng.IntN(r.cfg.Keys)), value
		}

		var err error
		switch kind {
		case OpPut:
			err = kv.Put(ctx, key, val)
		case OpGet:
			if r.cfg.Read == Stale {
				err = kv.GetStale(ctx, key)
			} else {
				err = kv.Get(ctx, key)
			}
		case OpDelete:
			err = kv.Delete(ctx, key)
		}
		end := time.Now()
		if err != nil && ctx.Err() != nil {
			return // cut short by the caller: neither a success nor a failure
		}
		st.last = end
		if err != nil {
			prog.fail.Add(1)
		} else {
			prog.ok.Add(1)
		}
		if !record {
			if ph.kind == PhasePreload {
				st.preloadDone++
			}
			if err != nil && ph.kind == PhasePreload {
				st.preloadErrs++
				if st.preloadFirst == "" {
					st.preloadFirst = err.Error()
				}
			}
			continue
		}
		if err != nil {
			ek := Classify(err)
			st.errs[kind][ek]++
			if st.firstErr[kind][ek] == "" {
				st.firstErr[kind][ek] = err.Error()
			}
			continue
		}
		lat := end.Sub(begin)
		st.hist[kind].Record(lat)
		at := begin.Sub(ph.start)
		w := int(end.Sub(ph.start) / Window)
		for len(st.windows[kind]) <= w {
			st.windows[kind] = append(st.windows[kind], 0)
		}
		st.windows[kind][w]++
		// Reservoir sampling (Algorithm R): every success is kept with the same
		// probability, however long the run.
		st.seen++
		s := Sample{At: at, Latency: lat, Kind: kind}
		if len(st.samples) < sampleCap {
			st.samples = append(st.samples, s)
		} else if j := rng.Uint64N(st.seen); j < uint64(sampleCap) {
			st.samples[j] = s
		}
	}
}
