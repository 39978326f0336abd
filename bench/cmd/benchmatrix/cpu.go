package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc (USER_HZ), read once from
// `getconf CLK_TCK`; Linux uses 100 Hz on every common architecture.
var clockTick = func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if hz, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && hz > 0 {
			return time.Second / time.Duration(hz)
		}
	}
	return 10 * time.Millisecond
}()

// processCPU returns the user plus system CPU time that process pid has used, from
// fields 14 (utime) and 15 (stime) of /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(data)
}

// parseProcStat reads utime+stime from the text of /proc/PID/stat. The command
// name (field 2) is in parentheses and may hold spaces and parentheses itself, so
// the fields are counted from the last ')'.
func parseProcStat(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", cutText(data))
	}
	// After ")": field 3 (state) onwards; utime and stime are fields 14 and 15.
	rest := strings.Fields(string(data[i+1:]))
	if len(rest) < 13 {
		return 0, fmt.Errorf("proc stat %q: %d fields after the command name, want at least 13", cutText(data), len(rest))
	}
	utime, err1 := strconv.ParseUint(rest[11], 10, 64)
	stime, err2 := strconv.ParseUint(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat %q: utime %q, stime %q are not numbers", cutText(data), rest[11], rest[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineBusy returns the CPU time all CPUs have spent busy (user, nice, system,
// irq, softirq, steal) and the number of CPUs, from /proc/stat.
func machineBusy() (busy time.Duration, cpus int, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineStat(data)
}

func parseMachineStat(data []byte) (busy time.Duration, cpus int, err error) {
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			// user nice system idle iowait irq softirq steal ...
			if len(f) < 9 {
				return 0, 0, fmt.Errorf("/proc/stat: short cpu line %q", line)
			}
			var ticks uint64
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, 0, fmt.Errorf("/proc/stat: cpu line %q: %w", line, err)
				}
				ticks += n
			}
			busy, found = time.Duration(ticks)*clockTick, true
		case strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("/proc/stat: no cpu line")
	}
	return busy, max(cpus, 1), nil
}

func cutText(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// cpuSnapshot is the CPU used so far by each replica, by this process (the load
// generator) and by the whole machine.
type cpuSnapshot struct {
	at       time.Time
	replicas []time.Duration
	self     time.Duration
	machine  time.Duration
	cpus     int
}

func takeCPUSnapshot(pids []int) (cpuSnapshot, error) {
	s := cpuSnapshot{at: time.Now()}
	for _, pid := range pids {
		d, err := processCPU(pid)
		if err != nil {
			return s, fmt.Errorf("CPU of replica pid %d: %w", pid, err)
		}
		s.replicas = append(s.replicas, d)
	}
	var err error
	if s.self, err = processCPU(os.Getpid()); err != nil {
		return s, fmt.Errorf("CPU of the load generator: %w", err)
	}
	if s.machine, s.cpus, err = machineBusy(); err != nil {
		return s, err
	}
	return s, nil
}

// cpuUse is what was used between two snapshots.
type cpuUse struct {
	wall     time.Duration
	replicas time.Duration // summed over the replicas
	self     time.Duration
	// others is the machine's busy time not spent by the replicas or this process.
	others time.Duration
	cpus   int
}

func cpuBetween(a, b cpuSnapshot) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at), self: b.self - a.self, cpus: b.cpus}
	for i := range a.replicas {
		u.replicas += b.replicas[i] - a.replicas[i]
	}
	u.others = max(b.machine-a.machine-u.replicas-u.self, 0)
	return u
}

// othersShare is the share of the machine's capacity that other processes used.
func (u cpuUse) othersShare() float64 {
	if u.wall <= 0 || u.cpus == 0 {
		return 0
	}
	return float64(u.others) / (float64(u.wall) * float64(u.cpus))
}
