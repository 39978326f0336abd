package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/replicas"
)

// replicaStatus is one row of `ballot status`, and one object of its --json array.
type replicaStatus struct {
	ID         uint64  `json:"id"`
	ClientAddr string  `json:"client_addr"`
	PeerAddr   string  `json:"peer_addr"`
	Up         bool    `json:"up"`
	Leader     bool    `json:"leader"`
	LeaderID   int64   `json:"leader_id"`
	Ballot     string  `json:"ballot"`
	Applied    int64   `json:"applied"`
	Chosen     int64   `json:"chosen"`
	LogEntries int64   `json:"log_entries"`
	Keys       int64   `json:"keys"`
	Members    []int64 `json:"members"`
	// SnapshotIndex is the applied slot of the latest snapshot, 0 if none.
	SnapshotIndex int64 `json:"snapshot_index"`
	// Compacted is the slot up to which log entries have been discarded.
	Compacted int64 `json:"compacted"`
	// DiskBytes is the size of the replica's data directory.
	DiskBytes int64 `json:"disk_bytes"`
	// ConfigEpoch is the epoch of the committed configuration the replica
	// follows, and Member whether it is a member of it.
	ConfigEpoch int64 `json:"config_epoch"`
	Member      bool  `json:"member"`
	// MemberAddresses are the committed configuration's members with the
	// addresses it records.
	MemberAddresses []memberAddress `json:"member_addresses,omitempty"`
	// Starting says what a replica that answered but serves nothing yet is
	// waiting for; such a row is not up.
	Starting string `json:"starting,omitempty"`
	Error    string `json:"error,omitempty"`
}

// status asks every replica for its status at once, each within the timeout, and
// prints one row per replica, answered or not.
func status(c *cli.Context) error {
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

	rows := queryAll(c.Context, cl.Status, t.replicas)

	up := 0
	for _, r := range rows {
		if r.Up {
			up++
		} else {
			fmt.Fprintf(c.App.ErrWriter, "ballot: %s\n", oneLine(r.Error))
		}
	}
	for _, note := range membershipNotes(rows, t.source) {
		fmt.Fprintf(c.App.ErrWriter, "ballot: %s\n", note)
	}
	if c.Bool("json") {
		err = printJSON(c, rows)
	} else {
		err = printTable(c, rows)
	}
	if err != nil {
		return failure(fmt.Errorf("status: write output: %w", err))
	}
	if up == 0 {
		return failure(errors.New("status: no replica answered"))
	}
	return nil
}

// statusFunc asks the replica at endpoint for its status (client.Client.Status).
type statusFunc = func(ctx context.Context, endpoint string) (*kvapi.ReplicaStatus, error)

// queryStatus asks one replica; the row keeps what replicas.txt says when it is
// down, and what the replica says about itself when it answers.
func queryStatus(ctx context.Context, ask statusFunc, r replicas.Replica) replicaStatus {
	row := replicaStatus{ID: r.ID, ClientAddr: r.ClientAddr, PeerAddr: r.PeerAddr, Members: []int64{}}
	st, err := ask(ctx, r.ClientAddr)
	var starting *client.StartingError
	if errors.As(err, &starting) {
		row.Starting = starting.Reason
	}
	if err != nil {
		row.Error = err.Error()
		return row
	}
	if st.ID > 0 {
		row.ID = uint64(st.ID)
	}
	if st.PeerAddr != "" {
		row.PeerAddr = st.PeerAddr
	}
	row.Up = true
	row.Leader = st.IsLeader
	row.LeaderID = st.LeaderID
	row.Ballot = st.Ballot
	row.Applied = st.Applied
	row.Chosen = st.Chosen
	row.LogEntries = st.LogEntries
	row.Keys = st.Keys
	if st.Members != nil {
		row.Members = st.Members
	}
	row.SnapshotIndex = st.SnapshotIndex
	row.Compacted = st.Compacted
	row.DiskBytes = st.DiskBytes
	row.ConfigEpoch = st.ConfigEpoch
	row.Member = st.Member
	for _, m := range st.MemberAddresses {
		if m != nil {
			row.MemberAddresses = append(row.MemberAddresses, memberAddress{ID: m.ID, ClientAddr: m.ClientAddr, PeerAddr: m.PeerAddr})
		}
	}
	return row
}

func printJSON(c *cli.Context, rows any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func printTable(c *cli.Context, rows []replicaStatus) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLIENT\tPEER\tUP\tLEADER\tEPOCH\tBALLOT\tAPPLIED\tCHOSEN\tKEYS\tSNAPSHOT\tCOMPACTED\tLOG\tDISK")
	for _, r := range rows {
		id, peer := "-", "-"
		if r.ID > 0 {
			id = strconv.FormatUint(r.ID, 10)
		}
		if r.PeerAddr != "" {
			peer = r.PeerAddr
		}
		if !r.Up {
			state := "down"
			if r.Starting != "" {
				state = "starting"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", id, r.ClientAddr, peer, state)
			continue
		}
		leader := "no"
		if r.Leader {
			leader = "yes"
		}
		ballot := r.Ballot
		if ballot == "" {
			ballot = "-"
		}
		snapshot := "-"
		if r.SnapshotIndex > 0 {
			snapshot = strconv.FormatInt(r.SnapshotIndex, 10)
		}
		epoch := "-"
		if r.ConfigEpoch > 0 {
			epoch = strconv.FormatInt(r.ConfigEpoch, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tup\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%s\n",
			id, r.ClientAddr, peer, leader, epoch, ballot, r.Applied, r.Chosen, r.Keys,
			snapshot, r.Compacted, r.LogEntries, humanBytes(r.DiskBytes))
	}
	return tw.Flush()
}

// humanBytes writes n bytes in binary units without a space, so that a table
// column stays one word: 512B, 1.5KiB, 12MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	for v >= 1023.5 && i < len(units)-1 { // would print as 1024 or more of this unit
		v /= 1024
		i++
	}
	if v < 9.95 {
		return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + units[i]
}

// membershipNotes compares the replicas asked (the replicas file) with the
// committed configuration the replicas that answered report: a replica listed but
// not a member, and a member not listed, each get a line naming source. With
// --endpoints (source "") only the first kind is noted.
func membershipNotes(rows []replicaStatus, source string) []string {
	var notes []string
	var epoch int64
	var members []int64
	listed := map[uint64]bool{}
	for _, r := range rows {
		listed[r.ID] = true
		if r.Up && r.ConfigEpoch > epoch {
			epoch, members = r.ConfigEpoch, r.Members
		}
	}
	if epoch == 0 {
		return nil
	}
	isMember := map[uint64]bool{}
	for _, m := range members {
		isMember[uint64(m)] = true
		if !listed[uint64(m)] && source != "" {
			notes = append(notes, fmt.Sprintf("replica %d is a member of the committed configuration (epoch %d) but is not in %s", m, epoch, source))
		}
	}
	for _, r := range rows {
		if r.ID > 0 && !isMember[r.ID] {
			where := source
			if where == "" {
				where = "--endpoints"
			}
			notes = append(notes, fmt.Sprintf("replica %d is in %s but not a member of the committed configuration (epoch %d, members %v)", r.ID, where, epoch, members))
		}
	}
	return notes
}

// memberAddress is one member of a committed configuration in status --json.
type memberAddress struct {
	ID         int64  `json:"id"`
	ClientAddr string `json:"client_addr"`
	PeerAddr   string `json:"peer_addr"`
}
