// Package proc reads CPU time from Linux's /proc: what a process has used
// (/proc/PID/stat) and how busy the whole machine has been (/proc/stat), and the
// difference between two readings. The benchmark drivers use it to charge the
// servers of a cluster, the load generator and everything else on the machine
// with their share of the CPU over exactly the measured phase of a run.
//
// The unit is the kernel's clock tick (1/CLK_TCK s, 10 ms on every common
// architecture), so a difference is exact to about one tick per process.
package proc
