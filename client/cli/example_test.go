package cli_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/ballot-kv/ballot/client/cli"
	"github.com/ballot-kv/ballot/client/internal/kvtest"
)

func ExampleNewApp() {
	replica, err := kvtest.New() // stands in for a Ballot cluster
	if err != nil {
		fmt.Println(err)
		return
	}
	defer replica.Close()
	ballot := func(stdin string, args ...string) {
		app := cli.NewApp(strings.NewReader(stdin), os.Stdout, os.Stdout)
		err := app.Run(append([]string{"ballot", "--endpoints", replica.Addr()}, args...))
		fmt.Println("exit", cli.ExitCode(err))
	}

	ballot("", "put", "colour", "blue")
	ballot("", "get", "colour")
	ballot("green", "put", "colour", "-")
	ballot("", "get", "--stale", "colour")
	ballot("", "delete", "colour")
	ballot("", "get", "colour")
	ballot("", "get")
	// Output:
	// exit 0
	// blue
	// exit 0
	// exit 0
	// green
	// exit 0
	// exit 0
	// not found
	// exit 1
	// ballot get: want KEY, got 0 arguments
	// Run 'ballot get --help' for usage.
	// exit 2
}
