// Command etcdmatrix runs Ballot's benchmark matrix on etcd (`make bench-etcd`):
// the same cells, flags, environment variables, load engine, CPU accounting and
// reports as benchmatrix, each cell on a fresh etcd cluster of that many members
// on loopback, so that etcd and Ballot measured in one run compare.
//
//	etcdmatrix [flags]               run the matrix (flags as benchmatrix's, less -ballotd,
//	                                 plus -shared-client)
//	etcdmatrix server [etcd flags]   run one etcd server (etcdmain), as the matrix does
//
// The members are this same program started with "server", so the etcd that is
// measured is exactly the etcd this module builds (go.mod). Every etcd setting
// is at its default but the member's name, its URLs, its data directory and its
// logging (level warn, to a file per member). The report files start with etcd-.
//
// Each worker has its own clientv3.Client, as each of benchmatrix's workers has
// its own Ballot client. -shared-client (or BENCH_ETCD_SHARED=1) gives all workers
// one client instead, the way etcd is usually used: gRPC then multiplexes every
// request over one HTTP/2 connection per member, which costs etcd far less CPU
// per operation (docs/performance.md, "Side by side with etcd").
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ballot-kv/ballot/bench/cmd/benchmatrix/matrix"
	"go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "server" {
		// etcd parses its flags from args[1:], as if started as etcd itself.
		etcdmain.Main(append([]string{os.Args[0]}, os.Args[2:]...))
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var shared *bool
	s, err := matrix.ParseSettings("etcdmatrix", args, os.Getenv, stderr, func(fs *flag.FlagSet) {
		def, _ := strconv.ParseBool(os.Getenv("BENCH_ETCD_SHARED"))
		shared = fs.Bool("shared-client", def, "all workers share one clientv3.Client instead of one each (env BENCH_ETCD_SHARED)")
	})
	if err != nil {
		fmt.Fprintf(stderr, "etcdmatrix: %v\n", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "etcdmatrix: find this program to start it as etcd: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &matrix.Matrix{Sys: etcdSystem(self, *shared), S: s, Log: stdout}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "etcdmatrix: %v\n", err)
		return 1
	}
	return 0
}

// etcdName is the server measured, with the version of the etcd modules built in.
func etcdName() string { return "etcd " + version.Version }

// etcdSystem is etcd as the matrix measures it: clusters of self started as
// "self server", each worker with its own client unless sharedClient.
func etcdSystem(self string, sharedClient bool) matrix.System {
	name := etcdName()
	clients := "every client with its own clientv3.Client listing the members from the i-th"
	if sharedClient {
		clients = "all clients sharing one clientv3.Client (one connection per member)"
	}
	return matrix.System{
		Program: "etcdmatrix",
		Name:    name,
		Label:   name,
		Node:    "member",
		Process: "etcd",
		Server: name + " (`etcdmatrix server`, built from etcd's Go modules; every setting at its default " +
			"but names, URLs, data directory and logging)",
		Clients:    clients,
		FilePrefix: "etcd",
		Start: func(ctx context.Context, parent string, n int) (matrix.Cluster, error) {
			cl, err := startCluster(ctx, self, parent, n, sharedClient)
			if err != nil {
				// Not a nil *cluster in a non-nil interface.
				return nil, err
			}
			return cl, nil
		},
	}
}
