package store

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// diskFaults make the store's own file fail as a failing disk would, for tests
// (which set them through Options) and for binaries built with the ballotfaults
// tag (faults_on.go). The zero value injects nothing, and a normal build has no
// way to set them.
type diskFaults struct {
	// write, when set, runs as each buntdb transaction of the store (Save,
	// Apply, Compact, SetRebuildTo, SetConfig, an interrupted Apply's redo) is
	// about to be written; an error fails that write as the operating system's
	// write() would when nothing of it reached the file: buntdb rolls the
	// transaction back in memory (its behaviour on a failed write) and the store
	// stops.
	write func() error
	// sync, when set, runs after each fsync of the store's file at a
	// durability point (Save, Compact, SetRebuildTo, SetConfig); an error fails
	// that fsync.
	sync func() error
}

// errInjected marks the errors diskFaults make, so that logs and messages show
// that the failure was asked for.
var errInjected = errors.New("injected disk fault")

// injectedEIO is the error of an injected failure: EIO, as a failing disk gives.
func injectedEIO() error { return fmt.Errorf("%w (%w)", syscall.EIO, errInjected) }

// faultAfter is a fault that lets the first `after` calls through, counted
// once armed reports true (nil: from the start), and fails every later one
// with err. Safe for concurrent use.
type faultAfter struct {
	after int64
	armed func() bool
	err   error
	calls atomic.Int64
}

func (f *faultAfter) check() error {
	if f.armed != nil && !f.armed() {
		return nil
	}
	if f.calls.Add(1) <= f.after {
		return nil
	}
	return f.err
}

// newDiskFaults returns faults that fail every write after the first writesOK
// and every fsync after the first syncsOK (a negative count: never), with EIO
// marked as injected. armedBy, when not empty, is a file whose existence starts
// the counting: a test creates it when the failures may begin.
func newDiskFaults(writesOK, syncsOK int64, armedBy string) diskFaults {
	var armed func() bool
	if armedBy != "" {
		armed = func() bool {
			_, err := os.Stat(armedBy)
			return err == nil
		}
	}
	var d diskFaults
	if writesOK >= 0 {
		f := &faultAfter{after: writesOK, armed: armed, err: injectedEIO()}
		d.write = f.check
	}
	if syncsOK >= 0 {
		f := &faultAfter{after: syncsOK, armed: armed, err: injectedEIO()}
		d.sync = f.check
	}
	return d
}
