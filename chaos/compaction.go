package chaos

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Compaction is how often the replicas snapshot their store, compact their log
// and rewrite their store file: ballotd's --snapshot-every-slots,
// --snapshot-retain-slots, --snapshot-every-bytes and --rewrite-min-bytes. The
// zero value means AggressiveCompaction, the chaos default; a zero field in a
// non-zero value leaves ballotd's own default for that flag.
type Compaction struct {
	EverySlots      uint64
	RetainSlots     uint64
	EveryBytes      int64
	RewriteMinBytes int64
}

// The compaction settings a campaign can name (CHAOS_COMPACTION).
var (
	// AggressiveCompaction snapshots every few hundred slots and keeps few
	// below, so that in a history of seconds replicas compact many times,
	// followers that fall behind by a fault's length need a snapshot transfer,
	// and the store file is rewritten now and then.
	AggressiveCompaction = Compaction{EverySlots: 200, RetainSlots: 20, RewriteMinBytes: 1_000_000}
	// NoCompaction never snapshots, compacts or rewrites, as replicas did
	// before compaction existed; wiped replicas then catch up from the log.
	NoCompaction = Compaction{EverySlots: math.MaxInt64, EveryBytes: math.MaxInt64, RewriteMinBytes: math.MaxInt64}
)

// compactionNames are the settings ParseCompaction accepts by name.
var compactionNames = []struct {
	name string
	c    Compaction
}{
	{"aggressive", AggressiveCompaction},
	{"off", NoCompaction},
}

// ParseCompaction reads a compaction setting: "aggressive", "off", or flags
// without their dashes, as in
// "every-slots=500,every-bytes=65536,rewrite-min-bytes=200000", where an absent
// or zero one keeps ballotd's default ("every-slots=10000" is ballotd's
// defaults).
func ParseCompaction(s string) (Compaction, error) {
	s = strings.TrimSpace(s)
	for _, n := range compactionNames {
		if s == n.name {
			return n.c, nil
		}
	}
	var c Compaction
	for _, part := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Compaction{}, fmt.Errorf("compaction %q: want aggressive, off or name=value pairs", s)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 63)
		if err != nil {
			return Compaction{}, fmt.Errorf("compaction %s: %w", name, err)
		}
		switch strings.TrimSpace(name) {
		case "every-slots":
			c.EverySlots = n
		case "retain-slots":
			c.RetainSlots = n
		case "every-bytes":
			c.EveryBytes = int64(n)
		case "rewrite-min-bytes":
			c.RewriteMinBytes = int64(n)
		default:
			return Compaction{}, fmt.Errorf("compaction: unknown setting %q (want every-slots, retain-slots, every-bytes or rewrite-min-bytes)", name)
		}
	}
	if c == (Compaction{}) {
		// The zero value would mean AggressiveCompaction.
		return Compaction{}, fmt.Errorf("compaction %q sets nothing (every-slots=10000 is ballotd's defaults)", s)
	}
	return c, nil
}

func (c Compaction) withDefaults() Compaction {
	if c == (Compaction{}) {
		return AggressiveCompaction
	}
	return c
}

// args returns ballotd's flags for c, none for a field left at its default.
func (c Compaction) args() []string {
	c = c.withDefaults()
	var out []string
	add := func(flag string, v uint64) {
		if v != 0 {
			out = append(out, "--"+flag, strconv.FormatUint(v, 10))
		}
	}
	add("snapshot-every-slots", c.EverySlots)
	add("snapshot-retain-slots", c.RetainSlots)
	add("snapshot-every-bytes", uint64(c.EveryBytes))
	add("rewrite-min-bytes", uint64(c.RewriteMinBytes))
	return out
}

// Name spells c as ParseCompaction reads it: its name, or its settings.
func (c Compaction) Name() string {
	c = c.withDefaults()
	for _, n := range compactionNames {
		if c == n.c {
			return n.name
		}
	}
	var parts []string
	add := func(name string, v uint64) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", name, v))
		}
	}
	add("every-slots", c.EverySlots)
	add("retain-slots", c.RetainSlots)
	add("every-bytes", uint64(c.EveryBytes))
	add("rewrite-min-bytes", uint64(c.RewriteMinBytes))
	return strings.Join(parts, ",")
}

// String is c's name and the flags ballotd gets.
func (c Compaction) String() string {
	return fmt.Sprintf("%s (%s)", c.Name(), strings.Join(c.args(), " "))
}

// compactionLog counts what the replicas' logs say about compaction, summed
// over every replica and every start.
type compactionLog struct {
	Snapshots, Installs, Rewrites, Failures int
}

// countCompaction reads the replicas' logs for the lines server/compaction.go
// writes.
func countCompaction(c *Cluster) compactionLog {
	var out compactionLog
	for _, id := range c.IDs() {
		data, err := os.ReadFile(c.Replica(id).LogPath)
		if err != nil {
			continue
		}
		s := string(data)
		out.Snapshots += strings.Count(s, `msg="snapshot taken"`)
		out.Installs += strings.Count(s, `msg="snapshot installed"`)
		out.Rewrites += strings.Count(s, `msg="store file rewritten"`)
		out.Failures += strings.Count(s, `msg="snapshot failed"`) + strings.Count(s, `msg="store file rewrite failed"`)
	}
	return out
}
