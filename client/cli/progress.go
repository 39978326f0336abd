package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ballot-kv/ballot/bench"
)

// progressEvery is how often the progress bar is redrawn.
const progressEvery = 200 * time.Millisecond

func isTerminalFd(fd uintptr) bool { return term.IsTerminal(int(fd)) }

// showProgress draws a progress bar of the run on w until the returned stop is
// called (stop may be called more than once, and waits until the bar is gone).
// The bar shows the phase, the successes and failures so far and the rate.
func showProgress(w io.Writer, p *bench.Progress, cfg bench.Config) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		var bar *progressbar.ProgressBar
		shown := bench.PhaseStarting
		draw := func() {
			ph, elapsed, ok, failed := p.Snapshot()
			if ph == bench.PhaseStarting || ph == bench.PhaseDone {
				return
			}
			// Each phase has its own bar: counted in operations or in milliseconds.
			total, byTime := phaseTotal(ph, cfg)
			if ph != shown {
				if bar != nil {
					// The counts of a finished phase are gone; say only that it is done.
					bar.Describe(fmt.Sprintf("%-8s done", shown))
					bar.Finish()
					fmt.Fprintln(w)
				}
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetWidth(30),
					progressbar.OptionSetPredictTime(false),
					progressbar.OptionSetRenderBlankState(true),
					progressbar.OptionThrottle(0),
				)
				shown = ph
			}
			rate := 0.0
			if s := elapsed.Seconds(); s > 0 {
				rate = float64(ok) / s
			}
			bar.Describe(fmt.Sprintf("%-8s %6.1fs  %d ok  %d failed  %.0f ops/s", ph, elapsed.Seconds(), ok, failed, rate))
			if byTime {
				bar.Set64(min(elapsed.Milliseconds(), total))
			} else {
				bar.Set64(min(ok+failed, total))
			}
		}
		for {
			select {
			case <-done:
				// Draw the last state once, then take the bar off the line.
				draw()
				if bar != nil {
					bar.Clear()
					fmt.Fprint(w, "\r")
				}
				return
			case <-tick.C:
				draw()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-exited
	}
}

// phaseTotal is the length of a phase's bar: operations, or milliseconds when
// byTime.
func phaseTotal(ph bench.Phase, cfg bench.Config) (total int64, byTime bool) {
	switch {
	case ph == bench.PhasePreload:
		return int64(max(cfg.Keys, 1)), false
	case ph == bench.PhaseWarmup:
		return max(cfg.Warmup.Milliseconds(), 1), true
	case cfg.Duration > 0:
		return max(cfg.Duration.Milliseconds(), 1), true
	case cfg.Ops > 0:
		return cfg.Ops, false
	case cfg.Workload != nil:
		return int64(len(cfg.Workload.Ops)), false
	}
	return 1, false
}
