package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/replicas"
)

// replicaDigest is one row of `ballot digest`, and one object of its --json array.
type replicaDigest struct {
	ID         uint64 `json:"id"`
	ClientAddr string `json:"client_addr"`
	PeerAddr   string `json:"peer_addr"`
	Up         bool   `json:"up"`
	// Applied is the slot the digest was taken at.
	Applied uint64 `json:"applied"`
	Keys    int64  `json:"keys"`
	// Digest is the SHA-256 over the replica's keys and values, in hex; "" when
	// the replica did not answer.
	Digest string `json:"digest"`
	Error  string `json:"error,omitempty"`
}

// digestCommand is `ballot digest`: compare the replicas' data.
func digestCommand() *cli.Command {
	return &cli.Command{
		Name: "digest",
		Usage: "show a SHA-256 of each replica's keys and values, with the applied slot it\n" +
			"was taken at; fails if replicas at the same slot differ",
		OnUsageError: onUsageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array instead of a table"},
		},
		Action: digest,
	}
}

// digest asks every replica for its digest at once, each within the timeout,
// prints one row per replica, and fails if two replicas that applied the same
// slot hold different data.
func digest(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "want no arguments, got %d", c.NArg())
	}
	t, err := loadTarget(c)
	if err != nil {
		return err
	}
	cl, err := t.newClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()

	rows := askEach(t.replicas, func(r replicas.Replica) replicaDigest { return queryDigest(c.Context, cl.Digest, r) })

	up := 0
	for _, r := range rows {
		if r.Up {
			up++
		} else {
			fmt.Fprintf(c.App.ErrWriter, "ballot: %s\n", oneLine(r.Error))
		}
	}
	if c.Bool("json") {
		err = printJSON(c, rows)
	} else {
		err = printDigests(c, rows)
	}
	if err != nil {
		return failure(fmt.Errorf("digest: write output: %w", err))
	}
	if up == 0 {
		return failure(errors.New("digest: no replica answered"))
	}
	return diverged(rows)
}

// digestFunc asks the replica at endpoint for its digest (client.Client.Digest).
type digestFunc = func(ctx context.Context, endpoint string) (client.Digest, error)

func queryDigest(ctx context.Context, ask digestFunc, r replicas.Replica) replicaDigest {
	row := replicaDigest{ID: r.ID, ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr}
	d, err := ask(ctx, r.ClientAddr)
	if err != nil {
		row.Error = err.Error()
		return row
	}
	row.Up = true
	row.Applied = d.Applied
	row.Keys = d.Keys
	row.Digest = hex.EncodeToString(d.Sum[:])
	return row
}

// diverged is a failure naming the first two replicas that applied the same slot
// but hold different data, or nil.
func diverged(rows []replicaDigest) error {
	first := make(map[uint64]replicaDigest) // by applied slot
	for _, r := range rows {
		if !r.Up {
			continue
		}
		f, ok := first[r.Applied]
		if !ok {
			first[r.Applied] = r
			continue
		}
		if f.Digest != r.Digest {
			return failure(fmt.Errorf("digest: %s and %s differ at applied slot %d (%d and %d keys)",
				replicaName(f), replicaName(r), r.Applied, f.Keys, r.Keys))
		}
	}
	return nil
}

// replicaName is "replica ID (addr)", or the address when the id is unknown.
func replicaName(r replicaDigest) string {
	if r.ID > 0 {
		return fmt.Sprintf("replica %d (%s)", r.ID, r.ClientAddr)
	}
	return r.ClientAddr
}

func printDigests(c *cli.Context, rows []replicaDigest) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLIENT\tUP\tAPPLIED\tKEYS\tSHA256")
	for _, r := range rows {
		id := "-"
		if r.ID > 0 {
			id = strconv.FormatUint(r.ID, 10)
		}
		if !r.Up {
			fmt.Fprintf(tw, "%s\t%s\tdown\t-\t-\t-\n", id, r.ClientAddr)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\tup\t%d\t%d\t%s\n", id, r.ClientAddr, r.Applied, r.Keys, r.Digest)
	}
	return tw.Flush()
}
