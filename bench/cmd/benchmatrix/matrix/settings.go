package matrix

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Settings is what the matrix covers and how long each cell runs.
type Settings struct {
	Replicas []int // cluster sizes
	Clients  []int
	Values   []int // value sizes in bytes
	Ops      []string
	Duration time.Duration
	Warmup   time.Duration
	Keys     int
	Timeout  time.Duration // deadline of each operation, retries included
	Out      string
	Keep     bool
}

// ParseSettings reads the settings from args, each flag's default coming from an
// environment variable read with getenv (BENCH_REPLICAS, BENCH_CLIENTS, ...). The
// flag set is named name and prints its errors to stderr; extra, if set, adds a
// command's own flags to it before parsing.
func ParseSettings(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Settings, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicas := fs.String("replicas", env("BENCH_REPLICAS", "1 3 5"), "replica counts (env BENCH_REPLICAS)")
	clients := fs.String("clients", env("BENCH_CLIENTS", "1 16 64 256"), "client counts (env BENCH_CLIENTS)")
	values := fs.String("values", env("BENCH_VALUES", "100 4096"), "value sizes in bytes (env BENCH_VALUES)")
	ops := fs.String("ops", env("BENCH_OPS", "put get stale"), "operations: put, get, stale (env BENCH_OPS)")
	duration := fs.String("duration", env("BENCH_DURATION", "5s"), "measured time per cell (env BENCH_DURATION)")
	warmup := fs.String("warmup", env("BENCH_WARMUP", "1s"), "warm-up per cell (env BENCH_WARMUP)")
	keys := fs.Int("keys", 1000, "key space of every cell")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each operation, retries included")
	out := fs.String("out", env("BENCH_OUT", "bench/results"), "directory for the results (env BENCH_OUT)")
	keep := fs.Bool("keep", false, "keep the clusters' data directories and logs")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Settings{}, err
	}
	if fs.NArg() > 0 {
		return Settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s := Settings{Keys: *keys, Timeout: *timeout, Out: *out, Keep: *keep}
	var err error
	if s.Replicas, err = parseInts("replicas", *replicas, 1, 9); err != nil {
		return s, err
	}
	if s.Clients, err = parseInts("clients", *clients, 1, 4096); err != nil {
		return s, err
	}
	if s.Values, err = parseInts("values", *values, 1, 1<<20); err != nil {
		return s, err
	}
	for _, op := range splitList(*ops) {
		op = strings.ToLower(op)
		switch op {
		case "put", "get", "stale":
			s.Ops = append(s.Ops, op)
		case "linearizable":
			s.Ops = append(s.Ops, "get")
		default:
			return s, fmt.Errorf("ops: unknown operation %q (want put, get or stale)", op)
		}
	}
	if len(s.Ops) == 0 {
		return s, fmt.Errorf("ops: none given")
	}
	if s.Duration, err = time.ParseDuration(*duration); err != nil || s.Duration <= 0 {
		return s, fmt.Errorf("duration %q: want a positive duration such as 5s", *duration)
	}
	if s.Warmup, err = time.ParseDuration(*warmup); err != nil || s.Warmup < 0 {
		return s, fmt.Errorf("warmup %q: want a duration such as 1s", *warmup)
	}
	if s.Keys < 1 || s.Timeout <= 0 {
		return s, fmt.Errorf("keys and timeout must be positive")
	}
	return s, nil
}

// splitList splits at commas and whitespace, dropping empty items.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func parseInts(name, s string, lo, hi int) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%s: %q is not a whole number from %d to %d", name, f, lo, hi)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: none given", name)
	}
	return out, nil
}
