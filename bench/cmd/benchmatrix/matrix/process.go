package matrix

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// StopGrace is how long a server may take to exit on SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// Process is one server of a cluster, a child of this program.
type Process struct {
	name    string // "replica 1", in errors
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // set before done is closed
}

// StartProcess starts path with args, its output going to a new file at logPath.
// The process is killed if this program dies, even by SIGKILL, so no server
// outlives the driver. name says which server it is, in errors.
func StartProcess(name, logPath, path string, args ...string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{name: name, logPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// LogPath is the file holding the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Exited returns an error if the process is no longer running.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) exited: %v; log %s", p.name, p.PID(), p.err, p.logPath)
	default:
		return nil
	}
}

// PIDs returns the process ids of ps, in order.
func PIDs(ps []*Process) []int {
	pids := make([]int, 0, len(ps))
	for _, p := range ps {
		pids = append(pids, p.PID())
	}
	return pids
}

// FirstExited returns an error naming the first of ps that is no longer running.
func FirstExited(ps []*Process) error {
	for _, p := range ps {
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// StopProcesses sends SIGTERM to every process still running, waits up to
// StopGrace, then sends SIGKILL to any left. It returns an error naming each
// process that had to be killed.
func StopProcesses(ps []*Process) error {
	for _, p := range ps {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(StopGrace)
	defer timer.Stop()
	var errs []error
	for _, p := range ps {
		select {
		case <-p.done:
		case <-timer.C:
			// Later processes get no more grace than the first.
			timer.Reset(0)
		}
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("%s (pid %d) needed SIGKILL", p.name, p.PID()))
		}
	}
	return errors.Join(errs...)
}

// FreeAddrs returns n distinct 127.0.0.1 addresses on ports that were free a
// moment ago, each held until all are chosen so that none repeats.
func FreeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}
