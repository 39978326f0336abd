package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
)

// put stores VALUE under KEY; VALUE "-" is read from stdin to its end.
func put(c *cli.Context, stdin io.Reader) error {
	if c.NArg() != 2 {
		return usageError(c, "want KEY VALUE, got %d arguments", c.NArg())
	}
	key, value := c.Args().Get(0), []byte(c.Args().Get(1))
	if string(value) == "-" {
		var err error
		if value, err = io.ReadAll(stdin); err != nil {
			return failure(fmt.Errorf("put %q: read value from stdin: %w", key, err))
		}
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Put(c.Context, key, value); err != nil {
		return failure(err)
	}
	return nil
}

// get prints the value stored under KEY and a newline.
func get(c *cli.Context) error {
	args := c.Args().Slice()
	stale := c.Bool("stale")
	// urfave/cli stops reading flags at the first argument; accept a trailing
	// --stale too, as the usage line shows it. The key itself is never taken for it.
	if len(args) > 1 {
		rest := slices.DeleteFunc(slices.Clone(args[1:]), func(a string) bool {
			return a == "--stale" || a == "-stale"
		})
		stale = stale || len(rest) < len(args)-1
		args = append([]string{args[0]}, rest...)
	}
	if len(args) != 1 {
		return usageError(c, "want KEY, got %d arguments", len(args))
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	read := cl.Get
	if stale {
		read = cl.GetStale
	}
	v, err := read(c.Context, args[0])
	if errors.Is(err, client.ErrNotFound) {
		return cli.Exit("not found", ExitNotFound)
	}
	if err != nil {
		return failure(err)
	}
	w := c.App.Writer
	if _, err := w.Write(append(v, '\n')); err != nil {
		return failure(fmt.Errorf("get %q: write value: %w", args[0], err))
	}
	return nil
}

// del removes KEY; removing a missing key succeeds.
func del(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "want KEY, got %d arguments", c.NArg())
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Delete(c.Context, c.Args().First()); err != nil {
		return failure(err)
	}
	return nil
}
