package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
)

// ensureFileLimit raises this process's RLIMIT_NOFILE to at least need, or
// skips the test saying why it cannot.
func ensureFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Skipf("needs %d file descriptors; RLIMIT_NOFILE is %d, hard limit %d (raise it with ulimit -Hn)", need, lim.Cur, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("needs %d file descriptors; raising RLIMIT_NOFILE from %d: %v", need, lim.Cur, err)
	}
}

// ensureProcessFileLimit skips the test unless replica id's process may open
// need descriptors (its soft limit, from /proc/PID/limits).
func (c *cluster) ensureProcessFileLimit(t *testing.T, id int, need uint64) {
	t.Helper()
	pid := c.rep(id).cmd.Process.Pid
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Skipf("cannot read replica %d's limits: %v", id, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(fields) > 0 {
			if n, err := strconv.ParseUint(fields[0], 10, 64); err == nil && n < need {
				t.Skipf("replica %d (pid %d) may open %d files; the test needs %d", id, pid, n, need)
			}
		}
		return
	}
}

// callFrame is a framed, strict binary call of method with args, as a real
// client sends it.
func callFrame(t testing.TB, method string, args thrift.TStruct) []byte {
	t.Helper()
	buf := thrift.NewTMemoryBuffer()
	cfg := &thrift.TConfiguration{}
	framed := thrift.NewTFramedTransportConf(buf, cfg)
	p := thrift.NewTBinaryProtocolConf(framed, cfg)
	ctx := context.Background()
	if err := p.WriteMessageBegin(ctx, method, thrift.CALL, 1); err != nil {
		t.Fatal(err)
	}
	if err := args.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

// putFrame and prepareFrame are valid requests for the client and the peer port.
func putFrame(t testing.TB) []byte {
	return callFrame(t, "put", &kvapi.KVPutArgs{ClientID: 7, Seq: 1, Key: "slowly", Value: []byte("one byte a second")})
}

func prepareFrame(t testing.TB) []byte {
	return callFrame(t, "prepare", &peerapi.PeerPrepareArgs{Req: &peerapi.PrepareRequest{Sender: 9, Ballot: &peerapi.Ballot{Round: 1, Replica: 9}}})
}

// closedWithin reports whether the other side closes c within d: a read ends
// in EOF or a reset rather than waiting out the deadline.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// closeAll closes every connection in conns.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// portAttack is what one port of a replica is made to hold: connections that
// send nothing, and slow writers that send one byte of a request a second.
type portAttack struct {
	name string
	addr string
	req  []byte // the request the slow writers send
	idle []net.Conn
	slow []net.Conn
}

// open dials the idle connections, then the slow writers, which send their
// first byte at once.
func (a *portAttack) open(idle, slow int) error {
	for range idle {
		c, err := net.DialTimeout("tcp", a.addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s: idle connection %d: %w", a.name, len(a.idle)+1, err)
		}
		a.idle = append(a.idle, c)
	}
	for range slow {
		c, err := dialForRequest(a.addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("%s: slow writer %d: %w", a.name, len(a.slow)+1, err)
		}
		a.slow = append(a.slow, c)
		c.Write(a.req[:1])
	}
	return nil
}

// drip sends the slow writers' requests on, one byte per second, until stop is
// closed or the requests are all sent. Writes to connections the server closed
// fail, and that is all.
func drip(attacks []*portAttack, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for sent := 1; ; sent++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		more := false
		for _, a := range attacks {
			if sent >= len(a.req) {
				continue
			}
			more = true
			for _, c := range a.slow {
				c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				c.Write(a.req[sent : sent+1])
			}
		}
		if !more {
			return
		}
	}
}

// countOpen counts, all at once, the connections in conns that the server has
// not closed.
func countOpen(conns []net.Conn) int {
	var wg sync.WaitGroup
	open := make([]bool, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			open[i] = !closedWithin(c, 300*time.Millisecond)
		}()
	}
	wg.Wait()
	n := 0
	for _, o := range open {
		if o {
			n++
		}
	}
	return n
}

// countLines counts the lines of log that contain every one of parts.
func countLines(log string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// latencies are sorted durations.
type latencies []time.Duration

func (l latencies) at(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(q*float64(len(l))))].Round(10 * time.Microsecond)
}

// putsAndGets makes a new client, puts n keys one after another and reads each
// back with a linearizable get, all within limit; any failure fails the test.
// It returns the put and the get latencies.
func putsAndGets(t *testing.T, c *cluster, prefix string, n int, limit time.Duration) (puts, gets latencies) {
	t.Helper()
	cl := c.client(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for i := range n {
		key := fmt.Sprintf("%s/%03d", prefix, i)
		begin := time.Now()
		if _, err := cl.Put(ctx, key, []byte(key)); err != nil {
			t.Fatalf("put %d of %d (%s) after %s: %v", i+1, n, key, time.Since(begin).Round(time.Millisecond), err)
		}
		mid := time.Now()
		v, err := cl.Get(ctx, key)
		if err != nil || string(v) != key {
			t.Fatalf("get %s: %q, %v", key, v, err)
		}
		puts = append(puts, mid.Sub(begin))
		gets = append(gets, time.Since(mid))
	}
	slices.Sort(puts)
	slices.Sort(gets)
	return puts, gets
}

// TestAttackersDoNotLockOutClients holds 1,000 idle connections and 100 slow
// writers (a byte of a valid request per second) on each of the client and
// peer ports of the leader and of a follower, more than the 1,024 each port
// serves by default. A client that connects afterwards must complete 200 puts,
// each read back with a linearizable get, within 20 s; the replicas must have
// made room by closing idle connections, and still hold nearly all the rest.
func TestAttackersDoNotLockOutClients(t *testing.T) {
	const (
		idlePerPort = 1000
		slowPerPort = 100
		ops         = 200
		opsLimit    = 20 * time.Second
		maxConns    = 1024 // transport.DefaultMaxConns, which ballotd uses by default
	)
	ensureFileLimit(t, 4*(idlePerPort+slowPerPort)+1000)
	c := newCluster(t, 3)
	leader := c.waitLeader()
	follower := others(c.ids(), leader)[0]
	for _, id := range []int{leader, follower} {
		c.ensureProcessFileLimit(t, id, 2*maxConns+200)
	}

	calmPuts, calmGets := putsAndGets(t, c, "calm", ops, opsLimit)

	var attacks []*portAttack
	for _, id := range []int{leader, follower} {
		r := c.rep(id)
		attacks = append(attacks,
			&portAttack{name: fmt.Sprintf("replica %d client port", id), addr: r.clientAddr, req: putFrame(t)},
			&portAttack{name: fmt.Sprintf("replica %d peer port", id), addr: r.peerAddr, req: prepareFrame(t)})
	}
	begin := time.Now()
	errs := make(chan error, len(attacks))
	for _, a := range attacks {
		go func() { errs <- a.open(idlePerPort, slowPerPort) }()
	}
	for range attacks {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	setup := time.Since(begin)
	for _, a := range attacks {
		t.Cleanup(func() { closeAll(a.idle); closeAll(a.slow) })
	}
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() { defer close(dripped); drip(attacks, stop) }()
	defer func() { close(stop); <-dripped }()

	attackedPuts, attackedGets := putsAndGets(t, c, "attacked", ops, opsLimit)
	held := time.Since(begin)

	for _, a := range attacks {
		idle, slow := countOpen(a.idle), countOpen(a.slow)
		t.Logf("%s: %d of %d idle connections and %d of %d slow writers still open after %s",
			a.name, idle, len(a.idle), slow, len(a.slow), held.Round(time.Millisecond))
		if idle+slow > maxConns {
			t.Errorf("%s holds %d attacking connections, more than its limit of %d", a.name, idle+slow, maxConns)
		}
		// Room is made by closing the connections idle longest: as many as the
		// attackers exceed the limit by, plus one for each legitimate
		// connection (a client's, or the leader's pool to a follower's peer
		// port). Never the slow writers, which are mid-request, until the read
		// timeout (10 s by default) ends them.
		const legitimate = 60
		if excess := idlePerPort + slowPerPort - maxConns; len(a.idle)-idle > excess+legitimate {
			t.Errorf("%s closed %d idle connections; making room for %d attackers over the limit and at most %d legitimate connections takes no more than %d",
				a.name, len(a.idle)-idle, excess, legitimate, excess+legitimate)
		}
		if held < 9*time.Second && slow != slowPerPort {
			t.Errorf("%s: %d of %d slow writers open %s after they began, within the read timeout", a.name, slow, slowPerPort, held.Round(time.Millisecond))
		}
	}
	for _, id := range []int{leader, follower} {
		r := c.rep(id)
		if !r.running() {
			t.Fatalf("replica %d exited (code %d)", id, r.exitCode)
		}
		log, err := os.ReadFile(r.logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range []string{"client", "peer"} {
			n := countLines(string(log), "connection limit", "port="+port)
			if n < 1 || n > 2 {
				t.Errorf("replica %d logged %d connection limit lines for its %s port, want 1 or 2 (rate-limited)", id, n, port)
			}
		}
	}
	t.Logf("%d idle connections and %d slow writers on each of 4 ports opened in %s",
		idlePerPort, slowPerPort, setup.Round(time.Millisecond))
	t.Logf("%d puts, each read back: calm put p50 %s p99 %s, get p50 %s p99 %s; attacked put p50 %s p99 %s, get p50 %s p99 %s",
		ops, calmPuts.at(0.5), calmPuts.at(0.99), calmGets.at(0.5), calmGets.at(0.99),
		attackedPuts.at(0.5), attackedPuts.at(0.99), attackedGets.at(0.5), attackedGets.at(0.99))
}

// TestTimeoutsOnBothPorts runs a replica with --idle-timeout 1500ms and
// --read-timeout 500ms and checks, on its client and its peer port, that an idle
// connection is closed after the idle timeout, and that a half-sent request and
// one dripped a byte every 100 ms are cut off after the read timeout.
func TestTimeoutsOnBothPorts(t *testing.T) {
	const (
		idleTimeout = 1500 * time.Millisecond
		readTimeout = 500 * time.Millisecond
		slack       = time.Second
	)
	c := newClusterWith(t, 1, "--idle-timeout", idleTimeout.String(), "--read-timeout", readTimeout.String())
	r := c.rep(1)
	type probe struct {
		name          string
		addr          string
		send          func(net.Conn) // what the connection sends; it must not block
		atLeast, upTo time.Duration  // when the server must close it
	}
	var probes []probe
	for _, port := range []struct{ name, addr string }{{"client", r.clientAddr}, {"peer", r.peerAddr}} {
		probes = append(probes,
			probe{port.name + " port, idle", port.addr, func(net.Conn) {}, idleTimeout, idleTimeout + slack},
			probe{port.name + " port, half a request", port.addr, func(c net.Conn) {
				c.Write(append([]byte{0, 0, 0, 100}, make([]byte, 10)...))
			}, readTimeout, readTimeout + slack},
			probe{port.name + " port, a byte every 100 ms", port.addr, func(c net.Conn) {
				go func() {
					for range 200 { // 20 s, if the server never closes it
						if _, err := c.Write([]byte{0}); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond) // the client's pace, not synchronisation
					}
				}()
			}, readTimeout, readTimeout + slack})
	}
	var wg sync.WaitGroup
	results := make([]string, len(probes))
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The replica counts idle time from its accept, which may come
			// before the dial (and, under TLS, the handshake) returns here; it
			// cannot come before the dial starts.
			begin := time.Now()
			conn, err := dialForRequest(p.addr, 5*time.Second)
			if err != nil {
				results[i] = fmt.Sprintf("%s: %v", p.name, err)
				return
			}
			defer conn.Close()
			p.send(conn)
			if !closedWithin(conn, p.upTo+2*slack) {
				results[i] = fmt.Sprintf("%s: still open after %s", p.name, p.upTo+2*slack)
				return
			}
			if took := time.Since(begin); took < p.atLeast || took > p.upTo {
				results[i] = fmt.Sprintf("%s: closed after %s, want %s to %s", p.name, took.Round(time.Millisecond), p.atLeast, p.upTo)
			} else {
				t.Logf("%s: closed after %s", p.name, took.Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for _, res := range results {
		if res != "" {
			t.Error(res)
		}
	}
	log, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"client", "peer"} {
		if countLines(string(log), "request stalled", "port="+port) == 0 {
			t.Errorf("no stalled request logged for the %s port:\n%s", port, tail(r.logPath, 20))
		}
	}
	// Short timeouts do not get in the way of real requests.
	c.mustBallot("put", "after-timeouts", "fine")
	if got := c.mustBallot("get", "after-timeouts"); got != "fine\n" {
		t.Fatalf("get after-timeouts printed %q", got)
	}
}

// TestConnectionLimitLoggedOncePerInterval runs a replica with --max-conns 20
// and sends 2,000 connections to its client port while it is full of idle ones
// (each takes the place of the one idle longest), then 2,000 while it is full of
// requests in progress (each is refused). Every one must be closed promptly, the
// requests in progress must not be, and the log must hold a line or two about
// the limit, not thousands.
func TestConnectionLimitLoggedOncePerInterval(t *testing.T) {
	const (
		maxConns = 20
		flood    = 2000
	)
	ensureFileLimit(t, flood+500)
	c := newClusterWith(t, 1, "--max-conns", strconv.Itoa(maxConns), "--read-timeout", "30s")
	r := c.rep(1)
	addr := r.clientAddr
	dial := func() net.Conn {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}

	// Full of idle connections: each new one evicts the oldest.
	idle := make([]net.Conn, 0, flood)
	for range flood {
		idle = append(idle, dial())
	}
	evicted := 0
	for _, conn := range idle[:flood-maxConns] {
		if closedWithin(conn, time.Second) {
			evicted++
		}
	}
	if evicted != flood-maxConns {
		t.Errorf("%d of the %d oldest idle connections were closed, want all", evicted, flood-maxConns)
	}
	if open := countOpen(idle[flood-maxConns:]); open != maxConns {
		t.Errorf("%d of the %d newest idle connections open, want all", open, maxConns)
	}
	closeAll(idle)

	// Full of requests in progress: each new connection is refused. A slow
	// writer is busy once the replica has read its first byte; until then it is
	// idle, and the next connection may take its place. So slow writers are
	// added until one is refused, each given time to be read before the next.
	half := putFrame(t)
	half = half[:len(half)/2]
	var slow []net.Conn
	t.Cleanup(func() { closeAll(slow) })
	// openSlow returns nil for a connection closed before it could send (at
	// its TLS handshake, with BALLOT_TEST_TLS=1).
	openSlow := func() net.Conn {
		conn, err := dialForRequest(addr, 5*time.Second)
		if errors.Is(err, errRefusedAtHandshake) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(half); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	for range maxConns {
		conn := openSlow()
		if conn == nil {
			t.Fatal("a connection was refused before the replica was full")
		}
		slow = append(slow, conn)
	}
	for {
		conn := openSlow()
		if conn == nil || closedWithin(conn, 100*time.Millisecond) {
			if conn != nil {
				conn.Close()
			}
			break
		}
		slow = append(slow, conn) // it took the place of one not read from yet
		if len(slow) > 2*maxConns {
			t.Fatalf("the replica let in %d connections sending requests, with --max-conns %d", len(slow), maxConns)
		}
	}
	kept := slow[:0]
	for _, conn := range slow {
		if closedWithin(conn, 10*time.Millisecond) {
			conn.Close()
		} else {
			kept = append(kept, conn)
		}
	}
	slow = kept
	if len(slow) != maxConns {
		t.Fatalf("%d requests in progress held when the first connection was refused, want %d", len(slow), maxConns)
	}
	begin := time.Now()
	refused := 0
	for range flood {
		conn := dial()
		if closedWithin(conn, 2*time.Second) {
			refused++
		}
		conn.Close()
	}
	t.Logf("%d connections refused in %s", refused, time.Since(begin).Round(time.Millisecond))
	if refused != flood {
		t.Errorf("%d of %d connections refused, want all", refused, flood)
	}
	if open := countOpen(slow); open != maxConns {
		t.Errorf("%d of %d requests in progress still open, want all", open, maxConns)
	}

	log, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := countLines(string(log), "connection limit")
	evictLines := countLines(string(log), "connection limit", "idle longest")
	refuseLines := countLines(string(log), "connection limit", "every connection is busy")
	t.Logf("%d connection limit lines for %d evicted and %d refused connections", lines, evicted, refused)
	if evictLines < 1 || refuseLines < 1 || lines > 4 {
		t.Errorf("%d connection limit lines (%d on evictions, %d on refusals), want 1 or 2 of each:\n%s",
			lines, evictLines, refuseLines, tail(r.logPath, 20))
	}

	// Once the requests in progress go, clients are served again.
	closeAll(slow)
	c.mustBallot("put", "after-flood", "fine")
}
