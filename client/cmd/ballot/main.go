// Command ballot reads and writes a Ballot cluster: put, get, delete, status, digest
// and snapshot save. See package github.com/ballot-kv/ballot/client/cli for usage and
// exit codes.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/ballot-kv/ballot/client/cli"
)

func main() { os.Exit(run(os.Args)) }

// run executes the command line and returns the process exit code.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return cli.ExitCode(cli.NewApp(os.Stdin, os.Stdout, os.Stderr).RunContext(ctx, args))
}
