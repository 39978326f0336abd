package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/peer"
)

// The default lease: 15 ms ticks and an election timeout of 10 ticks give
// acceptors at least 9 whole ticks (135 ms) of refusal; at 10 % drift that is
// 121.5 ms, less the leader's tick: 106.5 ms, well inside the 150 ms timeout.
func TestLeaseDuration(t *testing.T) {
	if got, want := leaseDuration(15*time.Millisecond, 10), 106500*time.Microsecond; got != want {
		t.Errorf("leaseDuration(15ms, 10) = %v, want %v", got, want)
	}
	if got := leaseDuration(15*time.Millisecond, 1); got != 0 {
		t.Errorf("with an election timeout of one tick: %v, want no lease", got)
	}
}

func TestLeaseClock(t *testing.T) {
	b1, b2 := peer.Ballot{Round: 1, ID: 1}, peer.Ballot{Round: 2, ID: 1}
	t0 := time.Unix(1000, 0)
	c := &leaseClock{duration: 100 * time.Millisecond}
	if _, ok := c.until(b1, 1); ok {
		t.Fatal("a lease before any round left")
	}
	c.noteSent(b1, 3, t0)
	c.noteSent(b1, 5, t0.Add(10*time.Millisecond))
	c.noteSent(b1, 5, t0.Add(20*time.Millisecond)) // the same round again: first stamp stays
	c.noteSent(b1, 4, t0.Add(30*time.Millisecond)) // an older round: ignored
	for _, tt := range []struct {
		round uint64
		want  time.Time
		ok    bool
	}{
		{2, time.Time{}, false},                   // left before anything stamped
		{3, t0.Add(100 * time.Millisecond), true}, // exact
		{4, t0.Add(100 * time.Millisecond), true}, // not stamped: the earlier stamp bounds it
		{5, t0.Add(110 * time.Millisecond), true},
		{9, t0.Add(110 * time.Millisecond), true}, // not sent yet as far as stamps go: bounded by 5's
	} {
		got, ok := c.until(b1, tt.round)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("until(round %d) = %v, %v; want %v, %v", tt.round, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := c.until(b2, 5); ok {
		t.Error("a round of another ballot gave a lease")
	}
	// A new leadership numbers rounds afresh: the old stamps are gone.
	c.noteSent(b2, 1, t0.Add(time.Second))
	if _, ok := c.until(b1, 5); ok {
		t.Error("the previous leadership's round still gives a lease")
	}
	if got, ok := c.until(b2, 1); !ok || !got.Equal(t0.Add(1100*time.Millisecond)) {
		t.Errorf("until(b2, 1) = %v, %v", got, ok)
	}
}

// Stamps older than the lease are dropped as new ones come, except the newest,
// so a leader that sends accepts and serves no read keeps a bounded list.
func TestLeaseClockStaysSmall(t *testing.T) {
	b := peer.Ballot{Round: 1, ID: 1}
	t0 := time.Unix(1000, 0)
	c := &leaseClock{duration: 100 * time.Millisecond}
	for i := range 100_000 {
		c.noteSent(b, uint64(i+1), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(c.sent) > 102 {
		t.Errorf("%d stamps kept for a 100 ms lease at one round a millisecond", len(c.sent))
	}
	last := t0.Add(99_999 * time.Millisecond)
	if got, ok := c.until(b, 100_000); !ok || !got.Equal(last.Add(c.duration)) {
		t.Errorf("latest round: %v, %v", got, ok)
	}
}

// storeAt is a Storage with a settable applied slot and one key.
type storeAt struct {
	Storage
	applied uint64
}

func (s storeAt) Applied() uint64 { return s.applied }
func (s storeAt) Get(key string) ([]byte, bool, error) {
	return []byte("value of " + key), true, nil
}

func TestLeaseRead(t *testing.T) {
	var lease atomic.Pointer[readLease]
	if _, _, served, _ := leaseRead(&lease, storeAt{applied: 9}, "k"); served {
		t.Fatal("served without a lease")
	}
	lease.Store(&readLease{until: time.Now().Add(time.Hour), index: 10})
	if _, _, served, _ := leaseRead(&lease, storeAt{applied: 9}, "k"); served {
		t.Fatal("served before the store applied the lease's index")
	}
	v, found, served, err := leaseRead(&lease, storeAt{applied: 10}, "k")
	if !served || !found || err != nil || string(v) != "value of k" {
		t.Fatalf("under a lease: %q %v %v served=%v", v, found, err, served)
	}
	lease.Store(&readLease{until: time.Now().Add(-time.Millisecond), index: 10})
	if _, _, served, _ := leaseRead(&lease, storeAt{applied: 10}, "k"); served {
		t.Fatal("served after the lease ended")
	}
}
