// Command ballotd runs one Ballot replica.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/server"
	"github.com/ballot-kv/ballot/transport"
)

func main() {
	// Thrift's generated processors start a goroutine and a 5 ms ticker for every
	// request to notice a client hanging up, at a system call per tick. A replica
	// bounds every request with its own deadline instead, so that per-request
	// cost buys nothing here.
	thrift.ServerConnectivityCheckInterval = 0
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := &cli.App{
		Name:      "ballotd",
		Usage:     "run one replica of a Ballot cluster",
		UsageText: "ballotd --id N --replicas FILE --data DIR",
		// Exit codes are decided in run, not deep inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "id", Usage: "this replica's id in the replicas file", EnvVars: []string{"BALLOT_ID"}, Required: true},
			&cli.StringFlag{Name: "replicas", Value: "replicas.txt", Usage: "replicas file: one `id client-addr peer-addr` line per replica", EnvVars: []string{"BALLOT_REPLICAS"}},
			&cli.StringFlag{Name: "data", Usage: "data directory for this replica's store", EnvVars: []string{"BALLOT_DATA"}, Required: true},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"BALLOT_LOG_LEVEL"}},
			&cli.IntFlag{Name: "max-inflight-slots", Value: 4, Usage: "slots a leader may have proposed and not yet chosen; while one is in flight, new writes wait to share the next slot unless they fill one (1,024 writes or 4 MiB)", EnvVars: []string{"BALLOT_MAX_INFLIGHT_SLOTS"}},
			&cli.BoolFlag{Name: "thrifty", Value: true, Usage: "send each slot's accept request only to as many followers as a majority needs, the others learning chosen slots a tick at a time; false: to every follower", EnvVars: []string{"BALLOT_THRIFTY"}},
			&cli.BoolFlag{Name: "read-lease", Value: true, Usage: "serve linearizable reads on the leader under a lease (an election timeout after a heartbeat round a majority answered, assuming clocks run within 10 % of each other); false: a heartbeat round for every read", EnvVars: []string{"BALLOT_READ_LEASE"}},
			&cli.Uint64Flag{Name: "snapshot-every-slots", Value: 10_000, Usage: "snapshot the store and compact the log after this many applied slots", EnvVars: []string{"BALLOT_SNAPSHOT_EVERY_SLOTS"}},
			&cli.Int64Flag{Name: "snapshot-every-bytes", Value: 64 << 20, Usage: "... or after this many bytes of applied log entries", EnvVars: []string{"BALLOT_SNAPSHOT_EVERY_BYTES"}},
			&cli.Uint64Flag{Name: "snapshot-retain-slots", Value: 1_000, Usage: "log slots kept below a snapshot for followers slightly behind", EnvVars: []string{"BALLOT_SNAPSHOT_RETAIN_SLOTS"}},
			&cli.Int64Flag{Name: "snapshot-retain-bytes", Value: 16 << 20, Usage: "... and no more of them than hold this many bytes of entries", EnvVars: []string{"BALLOT_SNAPSHOT_RETAIN_BYTES"}},
			&cli.Int64Flag{Name: "rewrite-min-bytes", Value: 64 << 20, Usage: "rewrite the store file once it is larger than this and twice its last rewritten size", EnvVars: []string{"BALLOT_REWRITE_MIN_BYTES"}},
			&cli.StringFlag{Name: "restore", Usage: "create the (empty) data directory from this snapshot `FILE` (ballot snapshot save), then start", EnvVars: []string{"BALLOT_RESTORE"}},
			&cli.BoolFlag{Name: "join", Usage: "with an empty data directory: never found a new cluster, wait to be added to a running one (for a replica that has never been a member)", EnvVars: []string{"BALLOT_JOIN"}},
			&cli.DurationFlag{Name: "peer-timeout", Value: time.Second, Usage: "bound on one call to another replica; past it the replica counts as unreachable", EnvVars: []string{"BALLOT_PEER_TIMEOUT"}},
			&cli.DurationFlag{Name: "idle-timeout", Value: transport.DefaultIdleTimeout, Usage: "close a connection to either port that sends no request for this long", EnvVars: []string{"BALLOT_IDLE_TIMEOUT"}},
			&cli.DurationFlag{Name: "read-timeout", Value: transport.DefaultReadTimeout, Usage: "close a connection whose request has not arrived in full this long after its first byte", EnvVars: []string{"BALLOT_READ_TIMEOUT"}},
			&cli.IntFlag{Name: "max-conns", Value: transport.DefaultMaxConns, Usage: "connections each port holds open; a new one past this replaces the one idle longest", EnvVars: []string{"BALLOT_MAX_CONNS"}},
			&cli.StringFlag{Name: "peer-cert", Usage: "this replica's certificate `FILE` (PEM) for mutual TLS between replicas; with --peer-key and --peer-ca", EnvVars: []string{"BALLOT_PEER_CERT"}},
			&cli.StringFlag{Name: "peer-key", Usage: "the private key `FILE` (PEM) of --peer-cert", EnvVars: []string{"BALLOT_PEER_KEY"}},
			&cli.StringFlag{Name: "peer-ca", Usage: "CA certificate `FILE` (PEM) every replica's certificate must chain to", EnvVars: []string{"BALLOT_PEER_CA"}},
			&cli.StringFlag{Name: "client-cert", Usage: "certificate `FILE` (PEM) to serve the client port with TLS; with --client-key", EnvVars: []string{"BALLOT_CLIENT_CERT"}},
			&cli.StringFlag{Name: "client-key", Usage: "the private key `FILE` (PEM) of --client-cert", EnvVars: []string{"BALLOT_CLIENT_KEY"}},
			&cli.StringFlag{Name: "client-ca", Usage: "require client certificates chaining to this CA `FILE` (PEM) on the client port", EnvVars: []string{"BALLOT_CLIENT_CA"}},
			&cli.StringFlag{Name: "pprof", Usage: "serve Go's profiler (net/http/pprof) on this `host:port`; off when empty", EnvVars: []string{"BALLOT_PPROF"}},
		},
		Action: func(c *cli.Context) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return cli.Exit(fmt.Sprintf("ballotd: --log-level: %v", err), 2)
			}
			if addr := c.String("pprof"); addr != "" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return cli.Exit(fmt.Sprintf("ballotd: --pprof: %v", err), 1)
				}
				go http.Serve(ln, nil) // the default mux carries net/http/pprof's handlers
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := server.Run(ctx, server.Config{
				ID:                  c.Uint64("id"),
				ReplicasFile:        c.String("replicas"),
				DataDir:             c.String("data"),
				MaxInFlightSlots:    c.Int("max-inflight-slots"),
				AcceptsToAll:        !c.Bool("thrifty"),
				ReadIndexOnly:       !c.Bool("read-lease"),
				SnapshotEverySlots:  c.Uint64("snapshot-every-slots"),
				SnapshotEveryBytes:  c.Int64("snapshot-every-bytes"),
				SnapshotRetainSlots: c.Uint64("snapshot-retain-slots"),
				SnapshotRetainBytes: c.Int64("snapshot-retain-bytes"),
				RewriteMinBytes:     c.Int64("rewrite-min-bytes"),
				RestoreFrom:         c.String("restore"),
				Join:                c.Bool("join"),
				PeerTimeout:         c.Duration("peer-timeout"),
				IdleTimeout:         c.Duration("idle-timeout"),
				ReadTimeout:         c.Duration("read-timeout"),
				MaxConns:            c.Int("max-conns"),
				PeerTLS: tlsconfig.PeerFiles{
					Cert: c.String("peer-cert"), Key: c.String("peer-key"), CA: c.String("peer-ca"),
				},
				ClientTLS: tlsconfig.ClientPortFiles{
					Cert: c.String("client-cert"), Key: c.String("client-key"), ClientCA: c.String("client-ca"),
				},
				Logger: server.Logger(level, os.Stderr),
			})
			if err != nil {
				return cli.Exit("ballotd: "+err.Error(), 1)
			}
			return nil
		},
	}
	if err := app.Run(args); err != nil {
		if ec, ok := err.(cli.ExitCoder); ok {
			if ec.Error() != "" {
				fmt.Fprintln(os.Stderr, ec.Error())
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "ballotd:", err)
		return 2
	}
	return 0
}
