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
// each cell ends, and die with this program if it is killed. The matrix itself,
// shared with bench/etcd's etcdmatrix, is package matrix.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ballot-kv/ballot/bench/cmd/benchmatrix/matrix"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	s, ballotd, err := parseSettings(args, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v\n", err)
		return 2
	}
	if _, err := os.Stat(ballotd); err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v (build it with make build)\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &matrix.Matrix{Sys: ballot(ballotd), S: s, Log: stdout}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "benchmatrix: %v\n", err)
		return 1
	}
	return 0
}

// parseSettings reads the matrix's settings and the server binary.
func parseSettings(args []string, getenv func(string) string, stderr io.Writer) (matrix.Settings, string, error) {
	var ballotd *string
	def := "bin/ballotd"
	if v := strings.TrimSpace(getenv("BALLOTD")); v != "" {
		def = v
	}
	s, err := matrix.ParseSettings("benchmatrix", args, getenv, stderr, func(fs *flag.FlagSet) {
		ballotd = fs.String("ballotd", def, "server binary (env BALLOTD)")
	})
	return s, *ballotd, err
}

// ballot is Ballot as the matrix measures it: clusters of ballotd.
func ballot(ballotd string) matrix.System {
	return matrix.System{
		Program:    "benchmatrix",
		Name:       "Ballot",
		Node:       "replica",
		Process:    "ballotd",
		Server:     "`" + ballotd + "`",
		Clients:    "every client with its own connection and session",
		FilePrefix: "bench",
		Start: func(ctx context.Context, parent string, n int) (matrix.Cluster, error) {
			cl, err := startCluster(ctx, ballotd, parent, n)
			if err != nil {
				// Not a nil *cluster in a non-nil interface.
				return nil, err
			}
			return cl, nil
		},
	}
}
