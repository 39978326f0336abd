package chaos

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/client"
)

// TestMeasureSlowFollower reports the latency of sequential puts on three
// replicas when the links between the leader and one follower (the one a
// thrifty leader asks first, by member order) carry 3 ms each way (too little for the leader to call it silent), with thrifty
// leaders and without. A thrifty leader's census should move it to the fast
// follower within ThriftyCensusTicks; a measurement, not a check: set
// BALLOT_MEASURE=1 to run it.
func TestMeasureSlowFollower(t *testing.T) {
	if os.Getenv("BALLOT_MEASURE") != "1" {
		t.Skip("a measurement, not a check: set BALLOT_MEASURE=1 to run it")
	}
	const delay = 3 * time.Millisecond
	for _, thrifty := range []bool{false, true} {
		ctx := context.Background()
		c, err := StartCluster(ClusterConfig{Binary: ballotd, Replicas: 3, Dir: t.TempDir(), Seed: 1, Logf: t.Logf,
			Env: []string{fmt.Sprintf("BALLOT_THRIFTY=%v", thrifty)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WaitServing(ctx, 20*time.Second); err != nil {
			c.Close()
			t.Fatal(err)
		}
		leader, err := c.WaitLeader(ctx, 20*time.Second)
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		var followers []int
		for _, id := range c.IDs() {
			if id != leader {
				followers = append(followers, id)
			}
		}
		slow := slices.Min(followers)
		c.Link(leader, slow).Delay(delay, 0)
		c.Link(slow, leader).Delay(delay, 0)
		cl, err := client.New(client.Config{Endpoints: []string{c.Replica(leader).ClientAddr}, Timeout: 5 * time.Second})
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		var lat []time.Duration
		begin := time.Now()
		for i := 0; i < 100_000 && time.Since(begin) < 3*time.Second; i++ {
			start := time.Now()
			if _, err := cl.Put(ctx, "slow-follower", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Errorf("put %d: %v", i, err)
				break
			}
			lat = append(lat, time.Since(start))
		}
		cl.Close()
		c.Close()
		slices.Sort(lat)
		t.Logf("thrifty=%v, leader %d, follower %d behind %s each way: %d puts in 3 s, p50 %s, p90 %s, max %s",
			thrifty, leader, slow, delay, len(lat), lat[len(lat)/2].Round(10*time.Microsecond),
			lat[len(lat)*9/10].Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
}
