package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
)

// snapshotCommand is `ballot snapshot save FILE`: a backup of the cluster's data.
func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:         "snapshot",
		Usage:        "back up the cluster's data (see 'ballot snapshot save --help')",
		ArgsUsage:    "save FILE",
		OnUsageError: onUsageError,
		Subcommands: []*cli.Command{
			{
				Name: "save",
				Usage: "write a fresh snapshot of the leader's store to FILE, through FILE.tmp;\n" +
					"prints the slot it holds, its size and its SHA-256",
				ArgsUsage:    "FILE",
				OnUsageError: onUsageError,
				Action:       saveSnapshot,
			},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError(c, "unknown subcommand %q; want save", c.Args().First())
			}
			return usageError(c, "no subcommand given; want save")
		},
	}
}

// saveSnapshot writes a fresh snapshot of the cluster's data to FILE.
func saveSnapshot(c *cli.Context) error {
	if c.NArg() != 1 || c.Args().First() == "" {
		return usageError(c, "want FILE, got %d arguments", c.NArg())
	}
	path := c.Args().First()
	cl, err := connect(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	info, err := writeSnapshot(c.Context, cl, path)
	if err != nil {
		return failure(fmt.Errorf("snapshot save %s: %w", path, err))
	}
	if _, err := fmt.Fprintf(c.App.Writer, "saved snapshot at slot %d: %d bytes, sha256 %x\n",
		info.Index, info.Size, info.Sum); err != nil {
		return failure(fmt.Errorf("snapshot save %s: write output: %w", path, err))
	}
	return nil
}

// writeSnapshot streams a backup into path+".tmp" (mode 0600: it holds every
// value), reads the file back to check it against the snapshot's SHA-256, syncs
// it and renames it to path. On any error the temporary file is removed and path
// is left as it was.
func writeSnapshot(ctx context.Context, cl *client.Client, path string) (info client.BackupInfo, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			f.Close() // already failed; the file is being removed
			os.Remove(tmp)
		}
	}()
	if info, err = cl.Backup(ctx, f); err != nil {
		return info, err
	}
	if err = f.Sync(); err != nil {
		return info, err
	}
	if err = checkFile(f, info); err != nil {
		return info, fmt.Errorf("%s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return info, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return info, err
	}
	return info, syncDir(filepath.Dir(path))
}

// checkFile reads f from its start and compares its size and SHA-256 with info.
func checkFile(f *os.File, info client.BackupInfo) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if sum := h.Sum(nil); n != info.Size || !bytes.Equal(sum, info.Sum[:]) {
		return fmt.Errorf("read back %d bytes with SHA-256 %x, want %d bytes with %x: %w",
			n, sum, info.Size, info.Sum, client.ErrCorrupt)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, syscall.EINVAL) { // some file systems cannot sync a directory
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
