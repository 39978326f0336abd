package server

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/ballot-kv/ballot/peer"
)

// maxClockDrift bounds how much faster one replica's clock may run than
// another's over an election timeout, as a fraction. Leases assume it; real
// monotonic clocks differ by well under 0.1 %.
const maxClockDrift = 0.10

// leaseDuration is how long after a heartbeat round leaves a leader that the
// leader may serve reads on the strength of a majority's answer to it. Each
// acceptor that answered refuses other candidates for ElectionTicks of its own
// ticks from the moment it took the round in (peer.Replica.followsLiveLeader), and
// at least ElectionTicks-1 whole ticks pass before its count reaches that. The
// lease is that, slowed by the drift bound, less one tick for the leader's own
// rounding.
func leaseDuration(tick time.Duration, electionTicks int) time.Duration {
	d := time.Duration(float64(time.Duration(electionTicks-1)*tick)*(1-maxClockDrift)) - tick
	return max(d, 0)
}

// leaseClock records when the leader handed each heartbeat (accept) round to the
// network, so that a majority's answer to a round can be turned into a time until
// which no other leader can exist. The node loop owns it.
type leaseClock struct {
	duration time.Duration
	ballot   peer.Ballot
	sent     []sentRound // by round, ascending
}

type sentRound struct {
	round uint64
	at    time.Time
}

// noteSent records that round, of the leadership at ballot b, leaves at or
// after at. Rounds are numbered afresh by each leadership.
func (c *leaseClock) noteSent(b peer.Ballot, round uint64, at time.Time) {
	if b != c.ballot {
		c.ballot, c.sent = b, c.sent[:0]
	}
	if n := len(c.sent); n > 0 && round <= c.sent[n-1].round {
		return // stamped already, no later than now
	}
	// A stamp older than the lease can never make one: drop those, keeping the
	// newest, which stands for every later round not stamped yet.
	drop := 0
	for drop+1 < len(c.sent) && at.Sub(c.sent[drop+1].at) >= c.duration {
		drop++
	}
	if drop > 0 {
		c.sent = append(c.sent[:0], c.sent[drop:]...)
	}
	c.sent = append(c.sent, sentRound{round: round, at: at})
}

// until returns the end of the lease a majority's answer to round (at ballot b)
// gives: an election timeout, less the margins, after the round left. The round
// left no earlier than the last stamp at or below it. ok is false when nothing
// stamped bounds it.
func (c *leaseClock) until(b peer.Ballot, round uint64) (time.Time, bool) {
	if b != c.ballot {
		return time.Time{}, false
	}
	i := sort.Search(len(c.sent), func(i int) bool { return c.sent[i].round > round })
	if i == 0 {
		return time.Time{}, false
	}
	return c.sent[i-1].at.Add(c.duration), true
}

// readLease is what the client service needs to serve a linearizable read
// without the node loop: until this time no other leader can have been chosen,
// and every write acknowledged by then is in the local store once it has applied
// index.
type readLease struct {
	until time.Time
	index uint64
}

// leaseRead serves a linearizable read from the local store if this replica
// holds a lease, and reports whether it did. A write is acknowledged only after
// the leader applied it, and no other leader can acknowledge one before the
// lease ends, so the store then holds every write acknowledged before the read
// began.
func leaseRead(lease *atomic.Pointer[readLease], store Storage, key string) (value []byte, found, served bool, err error) {
	l := lease.Load()
	if l == nil || !time.Now().Before(l.until) || store.Applied() < l.index {
		return nil, false, false, nil
	}
	value, found, err = store.Get(key)
	return value, found, true, err
}
