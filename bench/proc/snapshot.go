package proc

import (
	"fmt"
	"os"
	"time"
)

// Snapshot is the CPU used so far by each of a set of processes (the servers of a
// cluster), by this process (the load generator) and by the whole machine.
type Snapshot struct {
	At      time.Time
	Procs   []time.Duration // in the order of the pids given to TakeSnapshot
	Self    time.Duration
	Machine time.Duration
	CPUs    int
}

// TakeSnapshot reads the CPU time of every process in pids, of this process and
// of the machine.
func TakeSnapshot(pids []int) (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	for _, pid := range pids {
		d, err := ProcessCPU(pid)
		if err != nil {
			return s, fmt.Errorf("CPU of server pid %d: %w", pid, err)
		}
		s.Procs = append(s.Procs, d)
	}
	var err error
	if s.Self, err = ProcessCPU(os.Getpid()); err != nil {
		return s, fmt.Errorf("CPU of the load generator: %w", err)
	}
	if s.Machine, s.CPUs, err = MachineBusy(); err != nil {
		return s, err
	}
	return s, nil
}

// Use is what was used between two snapshots.
type Use struct {
	Wall  time.Duration
	Procs time.Duration // summed over the processes
	Self  time.Duration
	// Others is the machine's busy time not spent by the processes or this one.
	Others time.Duration
	CPUs   int
}

// Between returns what was used from a to b, two snapshots of the same pids.
func Between(a, b Snapshot) Use {
	u := Use{Wall: b.At.Sub(a.At), Self: b.Self - a.Self, CPUs: b.CPUs}
	for i := range a.Procs {
		u.Procs += b.Procs[i] - a.Procs[i]
	}
	u.Others = max(b.Machine-a.Machine-u.Procs-u.Self, 0)
	return u
}

// OthersShare is the share of the machine's capacity that other processes used.
func (u Use) OthersShare() float64 {
	if u.Wall <= 0 || u.CPUs == 0 {
		return 0
	}
	return float64(u.Others) / (float64(u.Wall) * float64(u.CPUs))
}
