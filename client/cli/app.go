package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/internal/tlsconfig"
	"github.com/ballot-kv/ballot/replicas"
)

// Exit codes of the ballot command.
const (
	ExitOK       = 0
	ExitNotFound = 1
	ExitUsage    = 2
	ExitFailure  = 3
)

// NewApp returns the ballot command line, reading a "-" value from stdin and
// writing to stdout and stderr. Running it never exits the process: App.Run returns
// an error whose exit code ExitCode gives, after the message has been written to
// stderr.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "ballot",
		Usage:     "read and write a Ballot replicated key-value store",
		UsageText: "ballot [global options] command [command options] [arguments...]",
		Description: "Global options go before the command. put and delete print nothing on success;\n" +
			"get prints the value and a newline.\n" +
			"For backups and checks: 'ballot snapshot save FILE' and 'ballot digest'.\n" +
			"To change the members: edit the replicas file and run 'ballot reconfigure'.\n" +
			"With TLS on the client port: --cacert FILE, and --cert FILE --key FILE if the\n" +
			"replicas require client certificates ('ballot certs' makes a local CA; docs/security.md).\n" +
			"Exit codes: 0 success, 1 key not found, 2 usage error, 3 other failure.",
		HideVersion: true,
		Writer:      stdout,
		ErrWriter:   stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "replicas",
				Usage:   "replicas.txt listing the cluster's replicas",
				Value:   "./replicas.txt",
				EnvVars: []string{"BALLOT_REPLICAS"},
			},
			&cli.StringFlag{
				Name:    "endpoints",
				Usage:   "comma-separated client addresses `host:port,...`; overrides --replicas",
				EnvVars: []string{"BALLOT_ENDPOINTS"},
			},
			&cli.DurationFlag{
				Name:    "timeout",
				Usage:   "deadline of each operation, retries included",
				Value:   client.DefaultTimeout,
				EnvVars: []string{"BALLOT_TIMEOUT"},
			},
			&cli.StringFlag{
				Name:    "cacert",
				Usage:   "use TLS and trust replicas whose certificates chain to this CA `FILE` (PEM)",
				EnvVars: []string{"BALLOT_CACERT"},
			},
			&cli.StringFlag{
				Name:    "cert",
				Usage:   "present this client certificate `FILE` (PEM) over TLS; with --key",
				EnvVars: []string{"BALLOT_CERT"},
			},
			&cli.StringFlag{
				Name:    "key",
				Usage:   "the private key `FILE` (PEM) of --cert",
				EnvVars: []string{"BALLOT_KEY"},
			},
		},
		Commands: []*cli.Command{
			{
				Name:         "put",
				Usage:        "store VALUE under KEY (VALUE - reads stdin); prints nothing",
				ArgsUsage:    "KEY VALUE",
				OnUsageError: onUsageError,
				Action:       func(c *cli.Context) error { return put(c, stdin) },
			},
			{
				Name:         "get",
				Usage:        "print the value stored under KEY",
				ArgsUsage:    "KEY",
				OnUsageError: onUsageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{
						Name:  "stale",
						Usage: "read any replica's local copy, which may lag behind",
					},
				},
				Action: get,
			},
			{
				Name:         "delete",
				Usage:        "remove KEY; prints nothing",
				ArgsUsage:    "KEY",
				OnUsageError: onUsageError,
				Action:       del,
			},
			{
				Name:         "status",
				Usage:        "show every replica's status",
				OnUsageError: onUsageError,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print a JSON array instead of a table"},
				},
				Action: status,
			},
			digestCommand(),
			snapshotCommand(),
			reconfigureCommand(),
			benchCommand(),
			certsCommand(),
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError(c, "unknown command %q", c.Args().First())
			}
			return usageError(c, "no command given")
		},
		ExitErrHandler: func(c *cli.Context, err error) {
			if err == nil {
				return
			}
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(c.App.ErrWriter, msg)
			}
		},
	}
}

// ExitCode is the process exit code for the error App.Run returned.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return ExitFailure
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageError(c, "%v", err)
}

// usageError is exit code 2 with the problem and where to find the usage.
func usageError(c *cli.Context, format string, args ...any) error {
	cmd := "ballot"
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		if h := c.Command.HelpName; strings.HasPrefix(h, cmd+" ") && strings.HasSuffix(h, " "+c.Command.Name) {
			cmd = h // with any parent command: "ballot snapshot save"
		} else {
			cmd += " " + c.Command.Name
		}
	}
	return cli.Exit(fmt.Sprintf("%s: %s\nRun '%s --help' for usage.", cmd, fmt.Sprintf(format, args...), cmd), ExitUsage)
}

// failure is exit code 3 with one line saying what failed and where.
func failure(err error) error {
	return cli.Exit("ballot: "+oneLine(err.Error()), ExitFailure)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// target is where the command finds the cluster and how it connects.
type target struct {
	timeout time.Duration
	// tls is from --cacert, --cert and --key; nil: plaintext.
	tls *tls.Config
	// replicas lists the members, from the replicas file or one entry per
	// --endpoints address (ID and PeerAddr unknown).
	replicas []replicas.Replica
	// source names where replicas came from: the replicas file, or "" for
	// --endpoints.
	source string
}

// loadTarget reads the global flags: --endpoints if given, else the replicas
// file, and the TLS files.
func loadTarget(c *cli.Context) (target, error) {
	t := target{timeout: c.Duration("timeout")}
	if t.timeout <= 0 {
		return t, cli.Exit(fmt.Sprintf("ballot: --timeout must be positive, got %s\nRun 'ballot --help' for usage.", t.timeout), ExitUsage)
	}
	files := tlsconfig.ClientFiles{CACert: c.String("cacert"), Cert: c.String("cert"), Key: c.String("key")}
	on, err := files.Enabled()
	if err != nil {
		return t, cli.Exit(fmt.Sprintf("ballot: %v\nRun 'ballot --help' for usage.", err), ExitUsage)
	}
	if on {
		if t.tls, err = tlsconfig.Client(files, tlsconfig.Options{}); err != nil {
			return t, failure(err)
		}
	}
	if eps := c.String("endpoints"); strings.TrimSpace(eps) != "" {
		for _, ep := range strings.Split(eps, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				t.replicas = append(t.replicas, replicas.Replica{ClientAddr: ep})
			}
		}
		return t, nil
	}
	list, err := replicas.Load(c.String("replicas"))
	if err != nil {
		return t, failure(err)
	}
	t.replicas = list
	t.source = c.String("replicas")
	return t, nil
}

// newClient returns a client for the target's replicas.
func (t target) newClient(c *cli.Context) (*client.Client, error) {
	cl, err := client.New(t.clientConfig(replicas.ClientAddrs(t.replicas)))
	if err != nil {
		return nil, usageError(c, "%v", err)
	}
	return cl, nil
}

// clientConfig is the client configuration for endpoints under the global
// flags.
func (t target) clientConfig(endpoints []string) client.Config {
	return client.Config{Endpoints: endpoints, Timeout: t.timeout, TLS: t.tls}
}

// connect reads the global flags and returns a client, or the error to exit with.
func connect(c *cli.Context) (*client.Client, error) {
	t, err := loadTarget(c)
	if err != nil {
		return nil, err
	}
	return t.newClient(c)
}
