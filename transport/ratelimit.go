package transport

import (
	"sync"
	"time"
)

// logEvery is how often a Server logs each kind of connection trouble (a refused
// connection, a malformed request, a handler panic) at most.
const logEvery = 10 * time.Second

// logLimiter lets one log line through per interval and counts the events it held
// back, so that a flood of bad connections costs one line per interval, not one per
// connection.
type logLimiter struct {
	every time.Duration

	mu         sync.Mutex // guards last and suppressed
	last       time.Time  // when a line was last let through; zero: never
	suppressed int        // events held back since last
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every}
}

// allow records one event at now. It reports whether the event may be logged and,
// if so, how many events were held back since the previous line.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	suppressed = l.suppressed
	l.last = now
	l.suppressed = 0
	return true, suppressed
}
