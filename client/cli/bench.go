package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/bench"
	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/replicas"
)

// maxListedMalformed bounds the malformed workload lines listed on stderr.
const maxListedMalformed = 20

// benchCommand is `ballot bench`: load the cluster and report throughput,
// latency percentiles and errors.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load the cluster with concurrent clients; report ops/s, latency percentiles and errors",
		Description: "Runs --clients workers, each with its own client and session, for --duration or\n" +
			"--ops operations (with --workload alone: once through the file), after --warmup.\n" +
			"Generated loads use keys bench/0000000000 ... (--keys of them) and --value-size\n" +
			"byte values, in the proportions of --mix. Throughput is successes divided by\n" +
			"wall-clock seconds; latencies are of successes; failures are counted by kind\n" +
			"(not_found, unavailable, invalid, other). A progress bar is drawn on stderr when\n" +
			"it is a terminal (or with --progress). Exit code 3 if nothing succeeded or the\n" +
			"run was interrupted; the report is printed either way. The global options\n" +
			"(--endpoints, --replicas, --timeout) go before the command: ballot --endpoints\n" +
			"127.0.0.1:7001 bench --clients 64 --duration 5s --mix put=100.",
		ArgsUsage:    " ",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "clients", Aliases: []string{"c"}, Value: 16, Usage: "concurrent clients, each with its own connection and session"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "length of the measured run", DefaultText: "10s unless --ops or --workload"},
			&cli.Int64Flag{Name: "ops", Aliases: []string{"n"}, Usage: "operations in the measured run, instead of --duration", DefaultText: "none"},
			&cli.DurationFlag{Name: "warmup", Value: time.Second, Usage: "run the load this long first, without measuring", DefaultText: "1s; 0 for one pass through --workload"},
			&cli.DurationFlag{Name: "time-limit", Usage: "stop an --ops or --workload run after this long", DefaultText: "10m"},
			&cli.IntFlag{Name: "keys", Value: bench.DefaultKeys, Usage: "size of the key space of generated loads"},
			&cli.IntFlag{Name: "value-size", Value: bench.DefaultValueSize, Usage: "bytes per generated value"},
			&cli.StringFlag{Name: "mix", Value: "put=50,get=50", Usage: "share of each operation, `put=N,get=N,delete=N`"},
			&cli.StringFlag{Name: "read", Value: "linearizable", Usage: "how gets read: `linearizable` (the leader) or stale (any replica)"},
			&cli.StringFlag{Name: "workload", Usage: "replay this `FILE` of PUT,key,value / GET,key / DELETE,key lines instead of --mix"},
			&cli.BoolFlag{Name: "preload", Value: true, Usage: "put every key once before a generated load with gets or deletes"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the generated keys and operations", DefaultText: "random"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of the table"},
			&cli.StringFlag{Name: "plot", Usage: "write latency over time, throughput over time and a latency histogram to this PNG `FILE`"},
			&cli.BoolFlag{Name: "progress", Usage: "draw the progress bar on stderr even when it is not a terminal"},
		},
		Action: benchAction,
	}
}

func benchAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, "unexpected argument %q", c.Args().First())
	}
	cfg := bench.Config{
		Clients:   c.Int("clients"),
		Duration:  c.Duration("duration"),
		Ops:       c.Int64("ops"),
		Warmup:    c.Duration("warmup"),
		TimeLimit: c.Duration("time-limit"),
		Keys:      c.Int("keys"),
		ValueSize: c.Int("value-size"),
		Preload:   c.Bool("preload"),
		Seed:      c.Uint64("seed"),
	}
	switch {
	case cfg.Clients < 1 || cfg.Clients > bench.MaxClients:
		return usageError(c, "--clients must be from 1 to %d, got %d", bench.MaxClients, cfg.Clients)
	case cfg.Duration < 0 || cfg.Warmup < 0 || cfg.TimeLimit < 0:
		return usageError(c, "--duration, --warmup and --time-limit must not be negative")
	case cfg.Ops < 0:
		return usageError(c, "--ops must not be negative, got %d", cfg.Ops)
	case c.IsSet("duration") && c.IsSet("ops"):
		return usageError(c, "give --duration or --ops, not both")
	case cfg.Keys < 1:
		return usageError(c, "--keys must be at least 1, got %d", cfg.Keys)
	case cfg.ValueSize < 1:
		return usageError(c, "--value-size must be at least 1, got %d", cfg.ValueSize)
	}
	if c.IsSet("workload") && c.IsSet("mix") {
		return usageError(c, "give --workload or --mix, not both")
	}
	mix, err := bench.ParseMix(c.String("mix"))
	if err != nil {
		return usageError(c, "--mix: %v", err)
	}
	cfg.Mix = mix
	if cfg.Read, err = bench.ParseReadMode(c.String("read")); err != nil {
		return usageError(c, "--read: %v", err)
	}
	if path := c.String("workload"); path != "" {
		wl, err := bench.LoadWorkload(path)
		if err != nil {
			return failure(err)
		}
		if c.Bool("json") {
			// The text report lists them; with --json, say so on stderr as well.
			reportMalformed(c.App.ErrWriter, wl)
		}
		if len(wl.Ops) == 0 {
			return failure(fmt.Errorf("bench: workload %s holds no well-formed operation", path))
		}
		cfg.Workload = wl
	}
	switch {
	case cfg.Duration == 0 && cfg.Ops == 0 && cfg.Workload == nil:
		cfg.Duration = 10 * time.Second
	case cfg.Duration == 0 && cfg.Ops == 0 && !c.IsSet("warmup"):
		// One pass through a workload replays it as recorded, from a cold start.
		cfg.Warmup = 0
	}

	t, err := loadTarget(c)
	if err != nil {
		return err
	}
	endpoints := replicas.ClientAddrs(t.replicas)
	if err := (client.Config{Endpoints: endpoints}).Validate(); err != nil {
		return usageError(c, "%v", err)
	}
	cfg.NewKV = func(i int) (bench.KV, error) {
		// Start each worker at a different replica, so stale reads spread over all
		// of them; writes and linearizable reads follow the leader anyway.
		n := len(endpoints)
		rotated := append(append([]string{}, endpoints[i%n:]...), endpoints[:i%n]...)
		cl, err := client.New(t.clientConfig(rotated))
		if err != nil {
			return nil, err
		}
		return closingKV{bench.ClientKV{C: cl}}, nil
	}
	progress := &bench.Progress{}
	cfg.Progress = progress
	if c.Bool("progress") || isTerminal(c.App.ErrWriter) {
		stop := showProgress(c.App.ErrWriter, progress, cfg)
		defer stop()
		cfg.OnMeasure = func(start bool) {
			if !start {
				stop()
			}
		}
	}

	res, err := bench.Run(c.Context, cfg)
	if err != nil {
		return failure(err)
	}
	res.Endpoints = endpoints
	if c.Bool("json") {
		err = res.WriteJSON(c.App.Writer)
	} else {
		err = res.WriteText(c.App.Writer)
	}
	if err != nil {
		return failure(fmt.Errorf("bench: write report: %w", err))
	}
	if path := c.String("plot"); path != "" {
		if err := res.WritePlotFile(path); err != nil {
			return failure(err)
		}
		if !c.Bool("json") {
			fmt.Fprintf(c.App.Writer, "plot: %s\n", path)
		}
	}
	switch {
	case res.StoppedBy == bench.StoppedInterrupted:
		return failure(errors.New("bench interrupted; the report covers what completed"))
	case res.Total.Succeeded() == 0 && res.Total.Failed() > 0:
		return failure(fmt.Errorf("bench: all %d operations failed", res.Total.Failed()))
	}
	return nil
}

// closingKV lets the engine close each worker's client when the run ends.
type closingKV struct{ bench.ClientKV }

func (k closingKV) Close() error { return k.C.Close() }

// reportMalformed lists a workload's malformed lines on w, at most
// maxListedMalformed of them.
func reportMalformed(w io.Writer, wl *bench.Workload) {
	for i, m := range wl.Malformed {
		if i == maxListedMalformed {
			fmt.Fprintf(w, "ballot bench: %s: %d more malformed lines skipped\n", wl.Name, len(wl.Malformed)-i)
			return
		}
		fmt.Fprintf(w, "ballot bench: %s:%d: %s, skipped: %q\n", wl.Name, m.Line, m.Reason, m.Text)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminalFd(f.Fd())
}
