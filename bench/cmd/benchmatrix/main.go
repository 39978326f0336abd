// Command benchmatrix runs Ballot's benchmark matrix (`make bench`): for every
// combination of replica count, client count, value size and operation it starts a
// fresh cluster of bin/ballotd on loopback, drives it with the bench engine, and
// measures throughput, latency and the CPU time every replica used per operation.
// It writes a markdown table, JSON and PNG charts to bench/results/.
//
// Every setting comes from a flag whose default is read from the environment:
//
//	BENCH_REPLICAS  replica counts          (default "1 3 5")
//	BENCH_CLIENTS   client counts           (default "1 16 64 256")
//	BENCH_VALUES    value sizes in bytes    (default "100 4096")
//	BENCH_OPS       operations: put, get (linearizable), stale (default "put get stale")
//	BENCH_DURATION  measured time per cell  (default 5s)
//	BENCH_WARMUP    warm-up per cell        (default 1s)
//	BENCH_KEYS      key space               (default 1000)
//	BENCH_OUT       output directory        (default bench/results)
//	BALLOTD         server binary           (default bin/ballotd)
//
// Lists take commas or spaces. Processes it starts are stopped by their pid when
// each cell ends, and die with this program if it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// settings is what the matrix covers and how long each cell runs.
type settings struct {
	replicas []int
	clients  []int
	values   []int
	ops      []string
	duration time.Duration
	warmup   time.Duration
	keys     int
	timeout  time.Duration
	out      string
	ballotd  string
	keep     bool
}

// opNames are the operations a cell can measure, in report order.
var opNames = []string{"put", "get", "stale"}

func run(args []string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v\n", err)
		return 2
	}
	if _, err := os.Stat(s.ballotd); err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v (build it with make build)\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &matrix{s: s, log: stdout}
	if err := m.run(ctx); err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v\n", err)
		return 1
	}
	return 0
}

func parseSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("benchmatrix", flag.ContinueOnError)
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
	ballotd := fs.String("ballotd", env("BALLOTD", "bin/ballotd"), "server binary (env BALLOTD)")
	keep := fs.Bool("keep", false, "keep the clusters' data directories and logs")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s := settings{keys: *keys, timeout: *timeout, out: *out, ballotd: *ballotd, keep: *keep}
	var err error
	if s.replicas, err = parseInts("replicas", *replicas, 1, 9); err != nil {
		return s, err
	}
	if s.clients, err = parseInts("clients", *clients, 1, 4096); err != nil {
		return s, err
	}
	if s.values, err = parseInts("values", *values, 1, 1<<20); err != nil {
		return s, err
	}
	for _, op := range splitList(*ops) {
		op = strings.ToLower(op)
		switch op {
		case "put", "get", "stale":
			s.ops = append(s.ops, op)
		case "linearizable":
			s.ops = append(s.ops, "get")
		default:
			return s, fmt.Errorf("ops: unknown operation %q (want put, get or stale)", op)
		}
	}
	if len(s.ops) == 0 {
		return s, fmt.Errorf("ops: none given")
	}
	if s.duration, err = time.ParseDuration(*duration); err != nil || s.duration <= 0 {
		return s, fmt.Errorf("duration %q: want a positive duration such as 5s", *duration)
	}
	if s.warmup, err = time.ParseDuration(*warmup); err != nil || s.warmup < 0 {
		return s, fmt.Errorf("warmup %q: want a duration such as 1s", *warmup)
	}
	if s.keys < 1 || s.timeout <= 0 {
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
