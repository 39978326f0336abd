package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/command"
	"github.com/ballot-kv/ballot/gen/kvapi"
	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/replicas"
	"github.com/ballot-kv/ballot/store"
)

// The two fuzz targets below feed raw bytes to a real replica's ports: each input
// is written to a new TCP connection on 127.0.0.1, the connection is half-closed
// and the reply read until the replica closes it. One replica serves every input
// of a fuzzing process, so the inputs also test what a long series of hostile
// requests leaves behind. After every input the replica must have closed the
// connection within the time its requests may take, logged no error (a handler
// panic, which the transport turns into a closed connection, or a storage
// failure, which stops the replica), and still answer on a connection it keeps
// open; every fuzzCheckEvery inputs, and when the target ends, a well-formed
// write must still be stored and read back.
//
// Seed corpora are in testdata/fuzz/FuzzClientPort and testdata/fuzz/FuzzPeerPort
// (written by TestFuzzSeeds); `go test` runs them as regular tests, `make
// fuzz` mutates them (docs/testing.md).

const (
	// fuzzCheckEvery is how many inputs run between two full checks.
	fuzzCheckEvery = 32
	// fuzzSlack is added to the time an input's requests may take, for the
	// connection, the replica's scheduling and a loaded machine.
	fuzzSlack = 3 * time.Second
	// fuzzRequestTimeout and fuzzPeerTimeout are the replica's RequestTimeout
	// and PeerTimeout: how long one request may hold a connection.
	fuzzRequestTimeout = 2 * time.Second
	fuzzPeerTimeout    = time.Second
	// fuzzLogTail is how many of the replica's last log lines a failure shows.
	fuzzLogTail = 40
)

// FuzzClientPort sends arbitrary bytes to the client port (kvapi.NewKVProcessor
// behind transport.Server) of a one-replica cluster, which leads itself, so
// writes, reads, backups and reconfigurations all reach the store.
func FuzzClientPort(f *testing.F) {
	r := startFuzzReplica(f, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := decodeRequests(data, clientMaxFrame, kvArgs)
		if reason := unsafeClientRequest(reqs, r.list); reason != "" {
			// The replica would change its members or dial the address: an
			// input that makes the cluster unusable or sends traffic off this
			// machine is not one this harness can judge.
			t.Skip(reason)
		}
		r.run(t, r.list[0].ClientAddr, data, len(reqs), fuzzRequestTimeout)
	})
}

// FuzzPeerPort sends arbitrary bytes to the peer port (peerapi.NewPeerProcessor
// behind transport.Server) of replica 1 of a three-member configuration whose
// other two members are not running. Replica 1 can never lead, so nothing but
// the input changes its acceptor state, and an input that names replica 2 or 3
// as its sender reaches the real prepare, accept and execute handling (and the
// durable writes behind them) rather than the refusal of a non-member.
//
// The full check plays replica 2 on a new connection: it sends a put as a
// chosen entry at the next slot (an execute, which a replica takes from any
// member at any ballot) and reads it back with a stale get from the client
// port. A peer is trusted with chosen values, so inputs may leave the replica
// holding any data, but never unable to learn the next chosen slot.
func FuzzPeerPort(f *testing.F) {
	r := startFuzzReplica(f, 3)
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := decodeRequests(data, peerMaxFrame, peerArgs)
		if reason := unsafePeerRequest(reqs, r.list); reason != "" {
			t.Skip(reason)
		}
		r.run(t, r.list[0].PeerAddr, data, len(reqs), fuzzPeerTimeout)
	})
}

// fuzzReplica is one replica run in this process for a fuzz target, and what
// the target knows about it.
type fuzzReplica struct {
	list    []replicas.Replica // its replicas file; it is list[0]
	members int
	done    chan error // Run's result
	logs    *fuzzLog

	// Only the fuzz function's goroutine uses these.
	inputs int        // inputs run so far
	probe  *probeConn // kept open between inputs
	recent [][]byte   // the inputs since the last full check, for a failure report
	nonce  int        // numbers the keys of full checks
	// failed is set when a check failed, after which the final check is
	// pointless; the cleanup reads it.
	failed atomic.Bool
}

// startFuzzReplica starts replica 1 of a cluster of members replicas in which
// only it runs. With more than one member its data directory is laid out first
// as if the cluster had been founded (the configuration recorded, a promise
// made), so that it starts at once instead of waiting for the others.
func startFuzzReplica(f testing.TB, members int) *fuzzReplica {
	f.Helper()
	dir := f.TempDir()
	r := &fuzzReplica{members: members, done: make(chan error, 1), logs: newFuzzLog(fuzzLogTail)}
	var file strings.Builder
	// The ports of the replicas that do not run are closed: dialling them is
	// refused at once.
	ports := freePorts(f, 2*members)
	for id := 1; id <= members; id++ {
		rep := replicas.Replica{ID: uint64(id), ClientAddr: ports[2*id-2], PeerAddr: ports[2*id-1]}
		r.list = append(r.list, rep)
		fmt.Fprintf(&file, "%d %s %s\n", rep.ID, rep.ClientAddr, rep.PeerAddr)
	}
	replicasFile := filepath.Join(dir, "replicas.txt")
	if err := os.WriteFile(replicasFile, []byte(file.String()), 0o644); err != nil {
		f.Fatal(err)
	}
	dataDir := filepath.Join(dir, "1")
	if members > 1 {
		if err := foundCluster(dataDir, r.list); err != nil {
			f.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{
		ID: 1, ReplicasFile: replicasFile, DataDir: dataDir,
		RequestTimeout: fuzzRequestTimeout,
		PeerTimeout:    fuzzPeerTimeout,
		Logger:         slog.New(r.logs),
	}
	go func() { r.done <- Run(ctx, cfg) }()
	f.Cleanup(func() {
		if !r.failed.Load() {
			if err := r.fullCheck(); err != nil {
				f.Errorf("final check: %v\n%s", err, r.logs.tail())
			}
		}
		if r.probe != nil {
			r.probe.close()
		}
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				f.Errorf("replica stopped with %v\n%s", err, r.logs.tail())
			}
		case <-time.After(10 * time.Second):
			f.Errorf("replica did not stop within 10s")
		}
	})
	if err := r.awaitReady(members == 1); err != nil {
		f.Fatalf("replica did not start: %v\n%s", err, r.logs.tail())
	}
	return r
}

// foundCluster writes what a replica of list keeps after its cluster was
// founded: the configuration at epoch 1 and a promise to replica 2.
func foundCluster(dataDir string, list []replicas.Replica) error {
	st, err := store.Open(dataDir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	conf, err := encodeMembership(membership{epoch: 1, members: list})
	if err == nil {
		err = st.SetConfig(conf)
	}
	if err == nil {
		err = st.Save(true, peer.Ballot{Round: 1, ID: 2}, nil)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("found the cluster in %s: %w", dataDir, err)
	}
	return nil
}

// awaitReady waits until the replica answers status (and leads, if it must).
func (r *fuzzReplica) awaitReady(lead bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := rawStatus(r.list[0].ClientAddr)
		if err == nil && (st.IsLeader || !lead) {
			return nil
		}
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("replica stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within 15s (last status %v, %v)", st, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// run sends one input to addr and checks the replica afterwards. requests is
// how many requests the input holds (a bound on how long it may take, with
// perRequest for each).
func (r *fuzzReplica) run(t *testing.T, addr string, data []byte, requests int, perRequest time.Duration) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		r.failed.Store(true)
		t.Fatalf("%s\nreplica log:\n%s", fmt.Sprintf(format, args...), r.logs.tail())
	}
	errorsBefore := r.logs.errorCount()
	bound := fuzzSlack + time.Duration(requests)*perRequest
	reply, err := exchangeReply(addr, data, bound)
	if err != nil {
		fail("input of %d bytes, %d requests: %v", len(data), requests, err)
	}
	t.Logf("%d requests, %d reply bytes", requests, len(reply))
	if err := r.alive(); err != nil {
		fail("after an input of %d bytes: %v", len(data), err)
	}
	if n := r.logs.errorCount(); n != errorsBefore {
		fail("the replica logged %d errors while it served an input of %d bytes", n-errorsBefore, len(data))
	}
	r.inputs++
	r.recent = append(r.recent, slices.Clone(data))
	if r.inputs%fuzzCheckEvery != 0 {
		return
	}
	if err := r.fullCheck(); err != nil {
		var b strings.Builder
		for i, in := range r.recent {
			fmt.Fprintf(&b, "input %d of %d: %q\n", i+1, len(r.recent), in)
		}
		fail("full check after %d inputs: %v\nstatus: %s\nnode goroutines:\n%s\ninputs since the previous check:\n%s",
			r.inputs, err, r.describe(), nodeStacks(), b.String())
	}
	r.recent = r.recent[:0]
}

// describe is the replica's status, for a failure report.
func (r *fuzzReplica) describe() string {
	st, err := rawStatus(r.list[0].ClientAddr)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v", st)
}

// nodeStacks is the stacks of the goroutines running in this package's node, for
// a failure report: a check that timed out shows where the node waits.
func nodeStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "server.(*node)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// exchangeReply writes data to a new connection to addr, half-closes it and
// reads until the replica closes it, and returns what the replica wrote. The
// replica must close the connection within bound.
func exchangeReply(addr string, data []byte, bound time.Duration) ([]byte, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	start := time.Now()
	if err := conn.SetDeadline(start.Add(bound)); err != nil {
		return nil, err
	}
	// The replica may close the connection before it has read everything (a
	// malformed frame ends it), so a failed write is not an error; a hang is.
	if _, err := conn.Write(data); err != nil && isTimeout(err) {
		return nil, fmt.Errorf("write not taken within %v", bound)
	}
	// A half-close fails only when the replica has already closed the
	// connection (ENOTCONN after a reset), which the read below sees too.
	_ = conn.(*net.TCPConn).CloseWrite()
	var reply bytes.Buffer
	_, err = io.Copy(&reply, conn)
	switch {
	case err == nil, isClosedConn(err):
		return reply.Bytes(), nil
	case isTimeout(err):
		return reply.Bytes(), fmt.Errorf("connection still open after %v (%d reply bytes read): the replica holds it",
			bound, reply.Len())
	}
	return reply.Bytes(), fmt.Errorf("read reply: %w", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isClosedConn reports whether err means the replica closed or reset the
// connection.
func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ENOTCONN) || errors.Is(err, net.ErrClosed)
}

// alive checks that Run has not returned and that the replica answers on the
// connection the target keeps open: a request that goes through the node's loop
// (inquire on the peer port) or the handler's (status on the client port), so
// that whatever the input made the loop do has been done.
func (r *fuzzReplica) alive() error {
	select {
	case err := <-r.done:
		r.done <- err
		return fmt.Errorf("replica stopped: %v", err)
	default:
	}
	for attempt := 0; ; attempt++ {
		if r.probe == nil {
			p, err := openProbe(r.probeAddr(), fuzzSlack)
			if err != nil {
				return err
			}
			r.probe = p
		}
		err := r.probe.ping(r.members > 1)
		if err == nil {
			return nil
		}
		r.probe.close()
		r.probe = nil
		if attempt == 1 {
			return fmt.Errorf("probe: %w", err)
		}
	}
}

// epoch is the epoch of the configuration the replica is in, or the largest
// epoch there is if it does not answer (so that every configuration entry
// counts as unsafe).
func (r *fuzzReplica) epoch() uint64 {
	st, err := rawStatus(r.list[0].ClientAddr)
	if err != nil {
		return math.MaxInt64
	}
	return uint64(st.ConfigEpoch)
}

func (r *fuzzReplica) probeAddr() string {
	if r.members > 1 {
		return r.list[0].PeerAddr
	}
	return r.list[0].ClientAddr
}

// fullCheck stores a new key through the protocol and reads it back, on new
// connections.
func (r *fuzzReplica) fullCheck() error {
	r.nonce++
	key := fmt.Sprintf("fuzz-check-%d-%d", time.Now().UnixNano(), r.nonce)
	value := []byte(fmt.Sprintf("value %d", r.nonce))
	ctx, cancel := context.WithTimeout(context.Background(), 2*fuzzRequestTimeout)
	defer cancel()
	kv, closeKV, err := dialKV(r.list[0].ClientAddr)
	if err != nil {
		return err
	}
	defer closeKV()
	if r.members == 1 {
		if _, err := kv.Put(ctx, 0, 0, key, value); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		got, err := kv.Get(ctx, key, kvapi.Consistency_LINEARIZABLE)
		if err != nil {
			return fmt.Errorf("get %s after put: %w", key, err)
		}
		if !bytes.Equal(got.Value, value) {
			return fmt.Errorf("get %s = %q, want %q", key, got.Value, value)
		}
		return nil
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if st.ID != 1 || !slices.Equal(st.Members, []int64{1, 2, 3}) || !st.Member {
		return fmt.Errorf("status: replica %d, members %v, member %v; want replica 1 of [1 2 3]", st.ID, st.Members, st.Member)
	}
	// An fsync held up by other work on the machine can outlast the peer
	// timeout; a replica that hangs fails every attempt.
	for attempt := 1; ; attempt++ {
		err := executeChosenPut(ctx, r.list[0].PeerAddr, uint64(st.ConfigEpoch), key, value)
		if err == nil {
			break
		}
		if attempt == 3 {
			return fmt.Errorf("%d attempts: %w", attempt, err)
		}
	}
	// Applying is the node loop's work after it answers; wait for it.
	for {
		got, err := kv.Get(ctx, key, kvapi.Consistency_STALE)
		if err == nil {
			if !bytes.Equal(got.Value, value) {
				return fmt.Errorf("stale get %s = %q, want %q", key, got.Value, value)
			}
			return nil
		}
		var nf *kvapi.NotFound
		if !errors.As(err, &nf) {
			return fmt.Errorf("stale get %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the chosen put of %s was not applied within %v", key, 2*fuzzRequestTimeout)
		case <-time.After(10 * time.Millisecond): // polling interval
		}
	}
}

// executeChosenPut tells the replica at peerAddr, as replica 2, that a put of
// key is chosen at the slot after its chosen prefix.
func executeChosenPut(ctx context.Context, peerAddr string, epoch uint64, key string, value []byte) error {
	pc, closePeer, err := dialPeer(peerAddr)
	if err != nil {
		return err
	}
	defer closePeer()
	learn := &peerapi.ExecuteRequest{Sender: 2, Ballot: &peerapi.Ballot{}, Epoch: int64(epoch)}
	executed, err := pc.Execute(ctx, learn)
	if err != nil {
		return fmt.Errorf("execute (learn the chosen prefix): %w", err)
	}
	data, err := command.EncodeBatch([]command.Command{{Op: command.OpPut, Key: key, Value: value}})
	if err != nil {
		return err
	}
	slot := executed.Chosen + 1
	req := &peerapi.ExecuteRequest{
		Sender: 2, Ballot: &peerapi.Ballot{}, Epoch: int64(epoch), Commit: slot,
		Entries: []*peerapi.Entry{{Slot: slot, Ballot: &peerapi.Ballot{}, Kind: peerapi.EntryKind_COMMANDS, Data: data}},
	}
	got, err := pc.Execute(ctx, req)
	if err != nil {
		return fmt.Errorf("execute slot %d: %w", slot, err)
	}
	if got.Chosen < slot {
		return fmt.Errorf("execute slot %d: chosen prefix %d after it, want at least %d", slot, got.Chosen, slot)
	}
	return nil
}

// fuzzTransportConfig is what the target's own Thrift clients use.
func fuzzTransportConfig() *thrift.TConfiguration {
	return &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: 2 * fuzzRequestTimeout}
}

func dialKV(addr string) (*kvapi.KVClient, func(), error) {
	cfg := fuzzTransportConfig()
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := tr.Open(); err != nil {
		return nil, nil, fmt.Errorf("dial client port %s: %w", addr, err)
	}
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	return kvapi.NewKVClient(thrift.NewTStandardClient(p, p)), func() { tr.Close() }, nil
}

func dialPeer(addr string) (*peerapi.PeerClient, func(), error) {
	cfg := fuzzTransportConfig()
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := tr.Open(); err != nil {
		return nil, nil, fmt.Errorf("dial peer port %s: %w", addr, err)
	}
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	return peerapi.NewPeerClient(thrift.NewTStandardClient(p, p)), func() { tr.Close() }, nil
}

// probeConn is the connection alive uses, kept open between inputs.
type probeConn struct {
	kv    *kvapi.KVClient
	peer  *peerapi.PeerClient
	close func()
}

func openProbe(addr string, timeout time.Duration) (*probeConn, error) {
	cfg := &thrift.TConfiguration{ConnectTimeout: time.Second, SocketTimeout: timeout}
	tr := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, cfg), cfg)
	if err := tr.Open(); err != nil {
		return nil, fmt.Errorf("probe: dial %s: %w", addr, err)
	}
	p := thrift.NewTBinaryProtocolConf(tr, cfg)
	c := thrift.NewTStandardClient(p, p)
	return &probeConn{kv: kvapi.NewKVClient(c), peer: peerapi.NewPeerClient(c), close: func() { tr.Close() }}, nil
}

func (p *probeConn) ping(peerPort bool) error {
	ctx := context.Background()
	if peerPort {
		q, err := p.peer.Inquire(ctx, &peerapi.InquiryRequest{Sender: 2})
		if err == nil && q.Sender != 1 {
			err = fmt.Errorf("inquire answered by replica %d, want 1", q.Sender)
		}
		return err
	}
	st, err := p.kv.Status(ctx)
	if err == nil && st.ID != 1 {
		err = fmt.Errorf("status of replica %d, want 1", st.ID)
	}
	return err
}

// decodedRequest is one request of an input as the replica reads it: the
// method's name and its arguments (nil for an unknown method).
type decodedRequest struct {
	name string
	args thrift.TStruct
}

// kvArgs and peerArgs return the argument struct of a method, as the generated
// processors do, or nil for an unknown method.
func kvArgs(name string) thrift.TStruct {
	switch name {
	case "get":
		return &kvapi.KVGetArgs{}
	case "put":
		return &kvapi.KVPutArgs{}
	case "remove":
		return &kvapi.KVRemoveArgs{}
	case "status":
		return &kvapi.KVStatusArgs{}
	case "digest":
		return &kvapi.KVDigestArgs{}
	case "backup":
		return &kvapi.KVBackupArgs{}
	case "reconfigure":
		return &kvapi.KVReconfigureArgs{}
	}
	return nil
}

func peerArgs(name string) thrift.TStruct {
	switch name {
	case "prepare":
		return &peerapi.PeerPrepareArgs{}
	case "accept":
		return &peerapi.PeerAcceptArgs{}
	case "execute":
		return &peerapi.PeerExecuteArgs{}
	case "fetch_snapshot":
		return &peerapi.PeerFetchSnapshotArgs{}
	case "inquire":
		return &peerapi.PeerInquireArgs{}
	}
	return nil
}

// decodeRequests reads data as the replica's connection does (framed transport
// with maxFrame, strict binary protocol, the generated argument readers, and
// the transport's ReadBinary) and returns every request it would start to
// process, the last one possibly unreadable. Whatever the replica acts on is
// among them, so the harness can see what an input would make the replica do.
func decodeRequests(data []byte, maxFrame int32, argsFor func(string) thrift.TStruct) []decodedRequest {
	strict := true
	cfg := &thrift.TConfiguration{MaxFrameSize: maxFrame, MaxMessageSize: maxFrame,
		TBinaryStrictRead: &strict, TBinaryStrictWrite: &strict}
	frame := thrift.NewTFramedTransportConf(thrift.NewStreamTransportR(bytes.NewReader(data)), cfg)
	prot := &mirrorProtocol{TBinaryProtocol: thrift.NewTBinaryProtocolConf(frame, cfg), frame: frame, maxSize: maxFrame}
	ctx := context.Background()
	var out []decodedRequest
	for {
		name, _, _, err := prot.ReadMessageBegin(ctx)
		if err != nil {
			return out
		}
		args := argsFor(name)
		if args == nil {
			// The replica answers an unknown method and closes the connection.
			return append(out, decodedRequest{name: name})
		}
		if err := args.Read(ctx, prot); err != nil {
			return append(out, decodedRequest{name: name})
		}
		if err := prot.ReadMessageEnd(ctx); err != nil {
			return append(out, decodedRequest{name: name})
		}
		out = append(out, decodedRequest{name: name, args: args})
	}
}

// mirrorProtocol is the binary protocol with the transport package's
// ReadBinary (transport/protocol.go), which refuses a binary longer than what is
// left of its frame where Thrift's own would read on into the next frame.
type mirrorProtocol struct {
	*thrift.TBinaryProtocol
	frame   *thrift.TFramedTransport
	maxSize int32
}

func (p *mirrorProtocol) ReadBinary(ctx context.Context) ([]byte, error) {
	size, err := p.ReadI32(ctx)
	if err != nil {
		return nil, err
	}
	if size < 0 || size > p.maxSize || uint64(size) > p.frame.RemainingBytes() {
		return nil, fmt.Errorf("binary of %d bytes refused", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(p.frame, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// loopbackAddr reports whether dialling addr stays on this machine without a
// name lookup: an IP literal in 127.0.0.0/8 or ::1, with a port.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unsafeClientRequest names the first request that would make the one-replica
// cluster of list change its members (after which it has no quorum, which is
// the change asked for rather than a fault) or dial an address off this
// machine; "" if there is none. A reconfiguration to replica 1 alone, with any
// loopback addresses, stays, and so does one the handler refuses for an id
// below 1.
func unsafeClientRequest(reqs []decodedRequest, list []replicas.Replica) string {
	for _, q := range reqs {
		args, ok := q.args.(*kvapi.KVReconfigureArgs)
		if !ok {
			continue
		}
		for _, m := range args.Members {
			if m == nil || m.ID < 1 {
				continue
			}
			if m.ID != int64(list[0].ID) {
				return fmt.Sprintf("reconfigure adds replica %d", m.ID)
			}
			if !loopbackAddr(m.ClientAddr) || !loopbackAddr(m.PeerAddr) {
				return fmt.Sprintf("reconfigure gives addresses %q, %q off loopback", m.ClientAddr, m.PeerAddr)
			}
		}
	}
	return ""
}

// unsafePeerRequest names the first request that would make replica 1 of list
// dial an address off this machine (a sender address from a later epoch, which
// the replica fetches a snapshot from, or a member address in a configuration
// entry), or adopt a configuration with other members; "" if there is none. A
// configuration entry whose data does not decode, or whose epoch is not above
// the one the replica is in, stays: both are faults the replica must refuse.
func unsafePeerRequest(reqs []decodedRequest, list []replicas.Replica) string {
	checkAddr := func(addr string) string {
		if addr != "" && !loopbackAddr(addr) {
			return fmt.Sprintf("sender address %q is off loopback", addr)
		}
		return ""
	}
	checkEntries := func(es []*peerapi.Entry) string {
		for _, e := range es {
			if e == nil || e.Kind != peerapi.EntryKind_CONFIG {
				continue
			}
			m, err := decodeMembership(e.Data)
			if err != nil {
				continue
			}
			if !slices.Equal(m.ids(), []uint64{1, 2, 3}) {
				return fmt.Sprintf("configuration entry with members %v", m.ids())
			}
			for _, r := range m.members {
				if !loopbackAddr(r.ClientAddr) || !loopbackAddr(r.PeerAddr) {
					return fmt.Sprintf("configuration entry gives addresses %q, %q off loopback", r.ClientAddr, r.PeerAddr)
				}
			}
		}
		return ""
	}
	for _, q := range reqs {
		var reason string
		switch a := q.args.(type) {
		case *peerapi.PeerPrepareArgs:
			if a.Req != nil {
				reason = checkAddr(a.Req.SenderAddr)
			}
		case *peerapi.PeerAcceptArgs:
			if a.Req != nil {
				reason = firstReason(checkAddr(a.Req.SenderAddr), checkEntries(a.Req.Entries))
			}
		case *peerapi.PeerExecuteArgs:
			if a.Req != nil {
				reason = firstReason(checkAddr(a.Req.SenderAddr), checkEntries(a.Req.Entries))
			}
		}
		if reason != "" {
			return reason
		}
	}
	return ""
}

// firstReason returns the first non-empty reason.
func firstReason(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fuzzLog is the replica's slog handler in a fuzz target: it keeps the last
// lines for failure reports and counts records at level Error.
type fuzzLog struct {
	mu     sync.Mutex // guards lines, next and errors
	lines  []string   // ring of the last len(lines) records
	next   int
	errors int
}

func newFuzzLog(n int) *fuzzLog { return &fuzzLog{lines: make([]string, n)} }

// Enabled leaves out debug records, one per connection, which cost time and
// say nothing a failure needs.
func (l *fuzzLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelInfo }

func (l *fuzzLog) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q", rec.Time.Format("15:04:05.000"), rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s", a)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if rec.Level >= slog.LevelError {
		l.errors++
	}
	l.lines[l.next%len(l.lines)] = b.String()
	l.next++
	return nil
}

func (l *fuzzLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &fuzzLogView{log: l, attrs: attrs}
}

func (l *fuzzLog) WithGroup(string) slog.Handler { return l }

func (l *fuzzLog) errorCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors
}

func (l *fuzzLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i := max(0, l.next-len(l.lines)); i < l.next; i++ {
		b.WriteString(l.lines[i%len(l.lines)])
		b.WriteByte('\n')
	}
	return b.String()
}

// fuzzLogView is a fuzzLog narrowed with attributes (logger.With).
type fuzzLogView struct {
	log   *fuzzLog
	attrs []slog.Attr
}

func (v *fuzzLogView) Enabled(ctx context.Context, level slog.Level) bool {
	return v.log.Enabled(ctx, level)
}

func (v *fuzzLogView) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(v.attrs...)
	return v.log.Handle(ctx, rec)
}

func (v *fuzzLogView) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &fuzzLogView{log: v.log, attrs: append(slices.Clone(v.attrs), attrs...)}
}

func (v *fuzzLogView) WithGroup(string) slog.Handler { return v }
