package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/transport"
)

// fakeInquirer is another replica answering Inquire. It is called concurrently
// (inquireAll asks every replica at once, and the test reads its calls).
type fakeInquirer struct {
	mu     sync.Mutex // guards the fields below
	answer func(call int) (transport.Inquiry, error)
	calls  []time.Time
}

func (f *fakeInquirer) Inquire(ctx context.Context, from uint64) (transport.Inquiry, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	n, answer := len(f.calls), f.answer
	f.mu.Unlock()
	return answer(n)
}

func (f *fakeInquirer) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// answers builds a replica that always gives the same answer.
func answers(q transport.Inquiry, err error) *fakeInquirer {
	return &fakeInquirer{answer: func(int) (transport.Inquiry, error) { return q, err }}
}

var (
	errNoAnswer = errors.New("connection refused")
	starting    = transport.Inquiry{Starting: true}
)

func silent() *fakeInquirer { return answers(transport.Inquiry{}, errNoAnswer) }

func withState(promised peer.Ballot, highest uint64) *fakeInquirer {
	return answers(transport.Inquiry{Promised: promised, Highest: highest}, nil)
}

type planResult struct {
	plan rebuildPlan
	err  error
}

// startPlan runs planRebuild for replica 1 in the background.
func startPlan(t *testing.T, ctx context.Context, applied uint64, fakes map[uint64]*fakeInquirer, clusterSize int,
	hold, timeout time.Duration) <-chan planResult {
	return startPlanAs(t, ctx, applied, 0, fakes, clusterSize, hold, timeout)
}

// startPlanAs is startPlan for a replica whose process started with nonce.
func startPlanAs(t *testing.T, ctx context.Context, applied, nonce uint64, fakes map[uint64]*fakeInquirer, clusterSize int,
	hold, timeout time.Duration) <-chan planResult {
	peers := make(map[uint64]inquirer, len(fakes))
	for id, f := range fakes {
		peers[id] = f
	}
	done := make(chan planResult, 1)
	go func() {
		plan, err := planRebuild(ctx, 1, applied, nonce, peers, clusterSize, hold, timeout, testLogger(t))
		done <- planResult{plan, err}
	}()
	return done
}

func waitPlan(t *testing.T, done <-chan planResult, within time.Duration) planResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(within):
		t.Fatalf("planRebuild did not return within %v", within)
		return planResult{}
	}
}

// undecided waits until f has been asked at least n times, failing if
// planRebuild returns first.
func undecided(t *testing.T, done <-chan planResult, f *fakeInquirer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.callTimes()) < n {
		select {
		case r := <-done:
			t.Fatalf("decided %+v, %v after %d inquiries; want it to keep waiting", r.plan, r.err, len(f.callTimes()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("asked %d times in 10s; want %d", len(f.callTimes()), n)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	select {
	case r := <-done:
		t.Fatalf("decided %+v, %v after %d inquiries; want it to keep waiting", r.plan, r.err, len(f.callTimes()))
	default:
	}
}

// When every other replica is starting without state too, the cluster is new:
// the replica starts as it is, without waiting out the hold.
func TestPlanNewCluster(t *testing.T) {
	const hold = time.Minute
	fakes := map[uint64]*fakeInquirer{2: answers(starting, nil), 3: answers(starting, nil)}
	start := time.Now()
	r := waitPlan(t, startPlan(t, context.Background(), 0, fakes, 3, hold, 50*time.Millisecond), 10*time.Second)
	if r.err != nil || !reflect.DeepEqual(r.plan, rebuildPlan{}) {
		t.Fatalf("plan %+v, %v; want a new cluster", r.plan, r.err)
	}
	if d := time.Since(start); d >= hold {
		t.Fatalf("took %v: it waited out the hold", d)
	}
}

// A new cluster's plan keeps the start nonces the others reported, so that this
// replica can later tell one of them that it founded the cluster while that
// one was starting.
func TestPlanNewClusterKeepsStartNonces(t *testing.T) {
	fakes := map[uint64]*fakeInquirer{
		2: answers(transport.Inquiry{From: 2, Starting: true, StartNonce: 22}, nil),
		3: answers(transport.Inquiry{From: 3, Starting: true, StartNonce: 33}, nil),
	}
	r := waitPlan(t, startPlan(t, context.Background(), 0, fakes, 3, time.Minute, 50*time.Millisecond), 10*time.Second)
	want := rebuildPlan{saw: map[uint64]uint64{2: 22, 3: 33}}
	if r.err != nil || !reflect.DeepEqual(r.plan, want) {
		t.Fatalf("plan %+v, %v; want %+v", r.plan, r.err, want)
	}
}

// A replica whose first rounds came before the others founded the cluster, and
// whose next round after they elected a leader, finds history. One of them
// founded it having heard this very start, so it has never voted: it takes part
// at once, in their configuration, without waiting out the hold or rebuilding.
// Heard from another start (its disk was lost since), it rebuilds.
func TestPlanStartedLateInNewCluster(t *testing.T) {
	const nonce = 0x5eed
	founder := func(foundedWith uint64) *fakeInquirer {
		return answers(transport.Inquiry{From: 2, Promised: peer.Ballot{Round: 1, ID: 2}, Highest: 3,
			Epoch: 1, Members: []uint64{1, 2, 3}, FoundedWith: foundedWith}, nil)
	}
	other := func() *fakeInquirer {
		return answers(transport.Inquiry{From: 3, Promised: peer.Ballot{Round: 1, ID: 2}, Highest: 3,
			Epoch: 1, Members: []uint64{1, 2, 3}}, nil)
	}

	fakes := map[uint64]*fakeInquirer{2: founder(nonce), 3: other()}
	r := waitPlan(t, startPlanAs(t, context.Background(), 0, nonce, fakes, 3, time.Hour, 50*time.Millisecond), 10*time.Second)
	want := rebuildPlan{late: true, epoch: 1, members: []uint64{1, 2, 3}}
	if r.err != nil || !reflect.DeepEqual(r.plan, want) {
		t.Fatalf("founded having heard this start: plan %+v, %v; want %+v", r.plan, r.err, want)
	}

	fakes = map[uint64]*fakeInquirer{2: founder(nonce + 1), 3: other()}
	r = waitPlan(t, startPlanAs(t, context.Background(), 0, nonce, fakes, 3, time.Millisecond, 50*time.Millisecond), 10*time.Second)
	if r.err != nil || !r.plan.rebuild || r.plan.late {
		t.Fatalf("founded having heard another start: plan %+v, %v; want a rebuild", r.plan, r.err)
	}
}

// A replica that does not answer may be the only one holding a chosen value, so
// the cluster is not taken as new while any other replica is silent.
func TestPlanWaitsForEveryReplicaBeforeNewCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := silent()
	fakes := map[uint64]*fakeInquirer{2: answers(starting, nil), 3: answers(starting, nil), 4: quiet, 5: answers(starting, nil)}
	done := startPlan(t, ctx, 0, fakes, 5, time.Millisecond, 5*time.Millisecond)
	undecided(t, done, quiet, 4)
	cancel()
	r := waitPlan(t, done, 10*time.Second)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("after cancel: %+v, %v; want context.Canceled", r.plan, r.err)
	}
}

// Once some replica reports history, the replica waits out the hold, asks again
// and rebuilds with the highest ballot and slot of that last round.
func TestPlanRebuild(t *testing.T) {
	const hold = 80 * time.Millisecond
	growing := &fakeInquirer{answer: func(call int) (transport.Inquiry, error) {
		if call == 1 {
			return transport.Inquiry{Promised: peer.Ballot{Round: 4, ID: 2}, Highest: 40}, nil
		}
		// Its leader went on: the answer after the hold is the one that counts.
		return transport.Inquiry{Promised: peer.Ballot{Round: 4, ID: 2}, Highest: 52}, nil
	}}
	fakes := map[uint64]*fakeInquirer{
		2: growing,
		3: withState(peer.Ballot{Round: 5, ID: 3}, 37),
		4: withState(peer.Ballot{Round: 5, ID: 1}, 45),
		5: silent(),
	}
	r := waitPlan(t, startPlan(t, context.Background(), 10, fakes, 5, hold, 20*time.Millisecond), 10*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := rebuildPlan{rebuild: true, promised: peer.Ballot{Round: 5, ID: 3}, upTo: 52}
	if !reflect.DeepEqual(r.plan, want) {
		t.Fatalf("plan %+v, want %+v", r.plan, want)
	}
	for id, f := range fakes {
		calls := f.callTimes()
		if len(calls) < 2 {
			t.Fatalf("replica %d asked %d times; want once before the hold and once after", id, len(calls))
		}
		if d := calls[len(calls)-1].Sub(calls[0]); d < hold {
			t.Errorf("replica %d: last inquiry %v after the first; want at least the hold, %v", id, d, hold)
		}
	}
}

// With history in the cluster, the replica needs answers with state from as many
// others as a majority of the whole cluster; replicas that are starting
// themselves know nothing and do not count.
func TestPlanWaitsForMajorityWithState(t *testing.T) {
	cases := []struct {
		name  string
		fakes map[uint64]*fakeInquirer
	}{
		{"others starting", map[uint64]*fakeInquirer{
			2: withState(peer.Ballot{Round: 2, ID: 2}, 9),
			3: withState(peer.Ballot{Round: 2, ID: 2}, 9),
			4: answers(starting, nil),
			5: answers(starting, nil),
		}},
		{"others silent", map[uint64]*fakeInquirer{
			2: withState(peer.Ballot{Round: 2, ID: 2}, 9),
			3: withState(peer.Ballot{Round: 2, ID: 2}, 9),
			4: silent(),
			5: silent(),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := startPlan(t, ctx, 0, tc.fakes, 5, time.Millisecond, 5*time.Millisecond)
			undecided(t, done, tc.fakes[2], 5) // well past the hold
			cancel()
			if r := waitPlan(t, done, 10*time.Second); !errors.Is(r.err, context.Canceled) {
				t.Fatalf("after cancel: %+v, %v; want context.Canceled", r.plan, r.err)
			}
		})
	}
}

// A replica restored from a backup at slot S, whose peers were restored from the
// same backup (nothing promised, nothing beyond S), starts a new cluster; one
// slot more anywhere is history, and it rebuilds.
func TestPlanRestoredReplica(t *testing.T) {
	const applied = 120
	cases := []struct {
		name    string
		highest uint64
		rebuild bool
	}{
		{"peers at the backup's slot", applied, false},
		{"peers behind it", applied - 20, false},
		{"a peer past it", applied + 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fakes := map[uint64]*fakeInquirer{
				2: withState(peer.Ballot{}, applied),
				3: withState(peer.Ballot{}, tc.highest),
			}
			r := waitPlan(t, startPlan(t, context.Background(), applied, fakes, 3, time.Millisecond, 20*time.Millisecond),
				10*time.Second)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.plan.rebuild != tc.rebuild {
				t.Fatalf("plan %+v; want rebuild %v", r.plan, tc.rebuild)
			}
			if tc.rebuild && r.plan.upTo != tc.highest {
				t.Fatalf("plan %+v; want a rebuild to slot %d", r.plan, tc.highest)
			}
		})
	}
}

// Replicas of a new cluster start at about the same time, and one may ask the
// others before they listen. It must ask again soon: if it waits so long that
// they have elected a leader meanwhile, they look established and it takes the
// slow path of a rebuild, out of service for the hold (TestFollowerRedirects
// and TestRetryAppliedOnce failed now and then that way).
func TestPlanRetriesSoonAfterRefusal(t *testing.T) {
	const timeout = 4 * time.Second
	late := &fakeInquirer{answer: func(call int) (transport.Inquiry, error) {
		if call == 1 {
			return transport.Inquiry{}, errNoAnswer // not listening yet
		}
		return starting, nil
	}}
	fakes := map[uint64]*fakeInquirer{2: late, 3: answers(starting, nil)}
	start := time.Now()
	r := waitPlan(t, startPlan(t, context.Background(), 0, fakes, 3, time.Minute, timeout), 2*timeout)
	if r.err != nil || !reflect.DeepEqual(r.plan, rebuildPlan{}) {
		t.Fatalf("plan %+v, %v; want a new cluster", r.plan, r.err)
	}
	if d := time.Since(start); d > timeout/4 {
		t.Fatalf("took %v to ask again after a refused call (call timeout %v)", d, timeout)
	}
}

// Stopping a replica while it waits for the others to answer is a graceful stop,
// not a failure to start.
func TestRunStopsWhilePlanning(t *testing.T) {
	dir := t.TempDir()
	peerAddr := freePort(t)
	file := filepath.Join(dir, "replicas.txt")
	// Replica 2 never starts, so replica 1 keeps asking it.
	lines := fmt.Sprintf("1 %s %s\n2 %s %s\n", freePort(t), peerAddr, freePort(t), freePort(t))
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{ID: 1, ReplicasFile: file, DataDir: filepath.Join(dir, "1"), Logger: testLogger(t)})
	}()

	pc := transport.NewPeerClient(peerAddr, transport.ClientOptions{CallTimeout: time.Second})
	defer pc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := pc.Inquire(context.Background(), 2)
		if err == nil && q.Starting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 does not report that it is starting: %+v, %v", q, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while waiting for replica 2: %v; want a graceful stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop within 10s")
	}
}

// TestReplicaStartedLateInNewCluster founds a three-replica cluster whose third
// replica answers the others' inquiries (it is starting) but asks its own only
// after the two have elected a leader and committed a write: the race of
// replicas started moments apart on a loaded machine. It finds history, yet
// must take part at once rather than wait out a hold of over a minute
// (its peer timeout is 30 s) and rebuild.
func TestReplicaStartedLateInNewCluster(t *testing.T) {
	release := make(chan struct{})
	c := newTestClusterWith(t, 3, func(id uint64, cfg *Config) {
		if id != 3 {
			return
		}
		cfg.PeerTimeout = 30 * time.Second
		cfg.hooks = &testHooks{inquire: func(uint64) { <-release }}
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the cluster stops: cleanups run last first

	leader := c.leader()
	if leader == 3 {
		t.Fatal("replica 3 leads before it has asked the others anything")
	}
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	st, err := rawStatus(c.addrs[leader])
	if err != nil {
		t.Fatal(err)
	}
	unblock()

	// Replica 3 learns the write the others committed without it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		s3, err := rawStatus(c.addrs[3])
		if err == nil && s3.Member && s3.Applied >= st.Applied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 3 has not applied slot %d 15s after it could ask the others: %+v, %v", st.Applied, s3, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	// And it votes: with replica 3 taking part, either of the others may stop.
	other := uint64(1)
	if leader == 1 {
		other = 2
	}
	c.stop(other)
	if _, err := cl.Put(ctx, "after", []byte("2")); err != nil {
		t.Fatalf("put with replica %d stopped: %v", other, err)
	}
}

// TestClientPortAnswersWhileStarting starts one replica of two: it waits for
// the other to answer before it takes part, for as long as that takes. Its
// client port must meanwhile answer every call at once, with Unavailable saying
// so (status with what it waits for), rather than hold a client that tried it
// first until the client's deadline.
func TestClientPortAnswersWhileStarting(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 4)
	file := filepath.Join(dir, "replicas.txt")
	lines := fmt.Sprintf("1 %s %s\n2 %s %s\n", ports[0], ports[1], ports[2], ports[3])
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{ID: 1, ReplicasFile: file, DataDir: filepath.Join(dir, "1"), Logger: testLogger(t)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica 1 stopped with %v", err)
		}
	}()

	var st *kvapi.ReplicaStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = rawStatusEvenStarting(ports[0]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of a starting replica: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval: the port opens moments after Run starts
	}
	if st.ID != 1 || !strings.Contains(st.Starting, "asking the other replicas") {
		t.Fatalf("status %+v; want replica 1 saying it is asking the others", st)
	}
	kv := rawClient(t, ports[0])
	_, err := kv.Put(context.Background(), 1, 1, "colour", []byte("blue"))
	var unavailable *kvapi.Unavailable
	if !errors.As(err, &unavailable) || !strings.Contains(unavailable.GetMessage(), "replica 1 is starting") {
		t.Fatalf("put to a starting replica: %v; want Unavailable saying it is starting", err)
	}
	_, err = kv.Get(context.Background(), "colour", kvapi.Consistency_STALE)
	if !errors.As(err, &unavailable) {
		t.Fatalf("stale get from a starting replica: %v; want Unavailable", err)
	}
}
