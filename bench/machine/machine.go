// Package machine measures how fast the machine under a benchmark is at the two
// things a replicated write waits for: an fsync of a small append and a loopback
// round trip. The machines Ballot is measured on are shared virtual machines whose
// speed at both drifts by a factor of two from one day to the next; a benchmark
// report that carries these two figures says whether a slow run had a slow machine
// under it or a slow design in it.
package machine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Probe is the result of one probe: operations completed one at a time for about
// the probe's duration, and their latencies.
type Probe struct {
	Ops       int           `json:"ops"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
}

func (p Probe) String() string {
	return fmt.Sprintf("%.0f/s, p50 %s, p99 %s", p.PerSecond, round(p.P50), round(p.P99))
}

func round(d time.Duration) time.Duration {
	if d < 100*time.Microsecond {
		return d.Round(100 * time.Nanosecond)
	}
	return d.Round(time.Microsecond)
}

// Limits are the probes of one machine.
type Limits struct {
	// Fsync: append 128 bytes to a file, then fsync it, one at a time.
	Fsync Probe `json:"fsync_128b"`
	// Loopback: 64 bytes to an echo server on 127.0.0.1 and back, one at a time,
	// over one TCP connection. Client and server are goroutines of this process.
	Loopback Probe `json:"loopback_rtt_64b"`
}

func (l Limits) String() string {
	return fmt.Sprintf("append 128 B + fsync %s; loopback round trip 64 B %s", l.Fsync, l.Loopback)
}

// maxOps bounds every probe by count as well as by time.
const maxOps = 1_000_000

// Measure runs both probes for d each; the fsync probe writes a file in dir, which
// it removes.
func Measure(dir string, d time.Duration) (Limits, error) {
	var l Limits
	var err error
	if l.Fsync, err = Fsync(dir, d); err != nil {
		return l, err
	}
	if l.Loopback, err = Loopback(d); err != nil {
		return l, err
	}
	return l, nil
}

// Fsync appends 128 bytes to a new file in dir and fsyncs it, again and again for
// d, and reports how fast.
func Fsync(dir string, d time.Duration) (Probe, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return Probe{}, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	record := make([]byte, 128)
	return run(d, func() error {
		if _, err := f.Write(record); err != nil {
			return fmt.Errorf("fsync probe: write %s: %w", filepath.Base(f.Name()), err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync probe: fsync %s: %w", filepath.Base(f.Name()), err)
		}
		return nil
	})
}

// Loopback sends 64 bytes to an echo server on 127.0.0.1 and reads them back,
// again and again for d, over one connection, and reports how fast.
func Loopback(d time.Duration) (Probe, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Probe{}, fmt.Errorf("loopback probe: %w", err)
	}
	defer ln.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		echoed <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return Probe{}, fmt.Errorf("loopback probe: %w", err)
	}
	msg := make([]byte, 64)
	p, err := run(d, func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(c, msg)
		return err
	})
	c.Close()
	if echoErr := <-echoed; echoErr != nil && !errors.Is(echoErr, net.ErrClosed) {
		err = errors.Join(err, echoErr)
	}
	if err != nil {
		return p, fmt.Errorf("loopback probe: %w", err)
	}
	return p, nil
}

// run calls op one at a time until d has passed (or maxOps calls), and reports.
func run(d time.Duration, op func() error) (Probe, error) {
	lat := make([]time.Duration, 0, 4096)
	start := time.Now()
	for len(lat) < maxOps && time.Since(start) < d {
		t := time.Now()
		if err := op(); err != nil {
			return Probe{}, err
		}
		lat = append(lat, time.Since(t))
	}
	wall := time.Since(start)
	if len(lat) == 0 {
		return Probe{}, errors.New("no operation completed")
	}
	slices.Sort(lat)
	return Probe{
		Ops:       len(lat),
		PerSecond: float64(len(lat)) / wall.Seconds(),
		P50:       lat[len(lat)/2],
		P99:       lat[len(lat)*99/100],
	}, nil
}
