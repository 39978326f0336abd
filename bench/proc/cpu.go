package proc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is the unit of the CPU times in /proc (USER_HZ), read once, when
// first needed, from `getconf CLK_TCK`; Linux uses 100 Hz on every common
// architecture, the fallback.
var clockTick = sync.OnceValue(func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if hz, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && hz > 0 {
			return time.Second / time.Duration(hz)
		}
	}
	return 10 * time.Millisecond
})

// ProcessCPU returns the user plus system CPU time that process pid has used, from
// fields 14 (utime) and 15 (stime) of /proc/PID/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStat(data)
}

// ParseStat reads utime+stime from the text of /proc/PID/stat. The command name
// (field 2) is in parentheses and may hold spaces and parentheses itself, so the
// fields are counted from the last ')'.
func ParseStat(data []byte) (time.Duration, error) {
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
	return time.Duration(utime+stime) * clockTick(), nil
}

// MachineBusy returns the CPU time all CPUs have spent busy (user, nice, system,
// irq, softirq, steal) and the number of CPUs, from /proc/stat.
func MachineBusy() (busy time.Duration, cpus int, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return ParseMachineStat(data)
}

// ParseMachineStat reads the busy time and the CPU count from the text of
// /proc/stat; idle and iowait are not busy.
func ParseMachineStat(data []byte) (busy time.Duration, cpus int, err error) {
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
			busy, found = time.Duration(ticks)*clockTick(), true
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
