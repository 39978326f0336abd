// Package kvtest is an in-memory KV service on a real Thrift server on 127.0.0.1,
// for testing clients of idl/kv.thrift. A test scripts failures with a Hook and
// checks afterwards what the server saw: every call with its (client id, seq), the
// connections accepted, and any breach of the session rules (two writes
// outstanding for one client id, or a seq going backwards). digest is computed
// from the stored data as the IDL describes; backup serves a file the test sets
// with SetBackup. reconfigure commits the members it is given as the next
// configuration of this one replica, which status then reports; OnReconfigure
// lets a test pass it on to other fakes, as a cluster would.
package kvtest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// Call is one request as the server received it.
type Call struct {
	Method      string // "get", "put", "remove", "status", "digest", "backup" or "reconfigure"
	ClientID    int64
	Seq         int64
	Key         string
	Consistency kvapi.Consistency
	// Index, Offset and MaxBytes are backup's arguments.
	Index    int64
	Offset   int64
	MaxBytes int32
	// Members lists the ids of reconfigure's members in the order sent, as
	// "1,2,3" (Reconfigures has their addresses); Call stays comparable.
	Members string
}

// Backup is the snapshot file that backup() serves.
type Backup struct {
	// Index is the applied slot the file holds, returned with every chunk.
	Index int64
	// File is the whole snapshot file.
	File []byte
	// Sum is the checksum announced with every chunk; nil means the SHA-256 of File.
	Sum []byte
	// Corrupt, if set, may change a copy of each chunk's data (the bytes from
	// offset on) before it is sent, as a fault on the way would.
	Corrupt func(offset int64, data []byte)
}

// Hook decides the fate of a call before the server handles it: a non-nil error
// (usually an IDL exception) is the answer. ctx ends when the client goes away or
// the server closes, so a hook may block on it to play an unresponsive replica.
type Hook func(ctx context.Context, c Call) error

// Server is a fake replica. Its methods are safe for concurrent use.
type Server struct {
	addr   string
	server *thrift.TSimpleServer
	ln     *countingListener
	// done is closed by Close, releasing blocked hooks.
	done chan struct{}
	// served is closed when the accept loop has returned.
	served    chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex // guards every field below
	hook   Hook
	status *kvapi.ReplicaStatus
	backup *Backup
	data   map[string][]byte
	// slot is the last slot used, by a write or a configuration change; status
	// reports it as applied unless SetStatus says more.
	slot  int64
	calls []Call
	// reconfigures holds every reconfigure call's members, in order.
	reconfigures [][]*kvapi.ReplicaAddress
	// epoch and members are the configuration this replica follows (epoch 0:
	// none, and status answers what SetStatus set); members are sorted by id.
	epoch   int64
	members []*kvapi.ReplicaAddress
	// reconfigured is called after each change reconfigure commits.
	reconfigured func(kvapi.ReconfigureResult_)
	// reconfigureAnswer, if set, is what reconfigure answers, changing nothing.
	reconfigureAnswer *kvapi.ReconfigureResult_
	// sessions is the de-duplication table: the last applied write per client id.
	sessions map[int64]applied
	// inflight counts the writes being handled per client id.
	inflight   map[int64]int
	violations []string
}

type applied struct {
	seq    int64
	result *kvapi.WriteResult_
}

// Start runs a fake replica on 127.0.0.1 on a free port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs a fake replica on 127.0.0.1 on a free port until Close.
func New() (*Server, error) {
	sock, err := thrift.NewTServerSocketTimeout("127.0.0.1:0", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("kvtest: server socket: %w", err)
	}
	if err := sock.Listen(); err != nil {
		return nil, fmt.Errorf("kvtest: listen: %w", err)
	}
	s := &Server{
		addr:     sock.Addr().String(),
		done:     make(chan struct{}),
		served:   make(chan struct{}),
		data:     make(map[string][]byte),
		sessions: make(map[int64]applied),
		inflight: make(map[int64]int),
	}
	cfg := &thrift.TConfiguration{MaxFrameSize: 4 << 20, SocketTimeout: 10 * time.Second}
	s.ln = &countingListener{TServerSocket: sock}
	s.server = thrift.NewTSimpleServer4(
		kvapi.NewKVProcessor(handler{s}),
		s.ln,
		thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), cfg),
		thrift.NewTBinaryProtocolFactoryConf(cfg),
	)
	s.server.SetLogContext(context.Background())
	go func() {
		defer close(s.served)
		s.server.AcceptLoop()
	}()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Done is closed when the server closes.
func (s *Server) Done() <-chan struct{} { return s.done }

// SetHook installs h for the calls that follow (nil removes it).
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// SetStatus sets what status() answers; keys is filled in from the data, applied
// is at least the last slot used, and a configuration (SetConfiguration, or one
// reconfigure committed) sets config_epoch, members and member.
func (s *Server) SetStatus(st *kvapi.ReplicaStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = st
}

// SetBackup sets the file backup() serves (nil: backup answers Unavailable).
func (s *Server) SetBackup(b *Backup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backup = b
}

// SetConfiguration makes the server follow the configuration epoch with these
// members, as a replica does once it has applied the change at slot: status
// reports config_epoch, the members' ids, member (whether status's id is one of
// them) and an applied slot of at least slot; the next change made here gets a
// later slot.
func (s *Server) SetConfiguration(epoch, slot int64, members []*kvapi.ReplicaAddress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = epoch
	s.members = sortedMembers(members)
	s.slot = max(s.slot, slot)
}

// Configuration returns the configuration the server follows (epoch 0: none).
func (s *Server) Configuration() (epoch int64, members []*kvapi.ReplicaAddress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, cloneMembers(s.members)
}

// OnReconfigure has fn called with the result of every change reconfigure
// commits, after it is committed here and before the caller gets the answer
// (nil: none). A test uses it to make other fakes follow the new configuration.
func (s *Server) OnReconfigure(fn func(kvapi.ReconfigureResult_)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconfigured = fn
}

// SetReconfigureResult makes reconfigure answer r to every call, changing
// nothing (nil: commit the members asked for). Errors are scripted with a Hook.
func (s *Server) SetReconfigureResult(r *kvapi.ReconfigureResult_) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconfigureAnswer = r
}

// Calls returns every call received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Reconfigures returns the members of every reconfigure call received so far,
// in order, as sent.
func (s *Server) Reconfigures() [][]*kvapi.ReplicaAddress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]*kvapi.ReplicaAddress, len(s.reconfigures))
	for i, ms := range s.reconfigures {
		out[i] = cloneMembers(ms)
	}
	return out
}

// Value returns what the server stores under key.
func (s *Server) Value(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// Violations lists every breach of the session rules seen so far.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Conns is the number of connections accepted so far.
func (s *Server) Conns() int { return s.ln.count() }

// DropConns closes every connection accepted so far, as a restarted or idle-timing
// replica would; the server keeps accepting new ones.
func (s *Server) DropConns() { s.ln.dropAll() }

// Close stops the server and closes every connection it accepted.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ln.closeAll()
		s.server.Stop()
		<-s.served
	})
}

// countingListener counts the connections it accepts and remembers them so that
// Close can cut them (TSimpleServer.Stop waits for every connection to end).
type countingListener struct {
	*thrift.TServerSocket

	mu       sync.Mutex // guards accepted and closed
	accepted []thrift.TTransport
	closed   bool
}

func (l *countingListener) Accept() (thrift.TTransport, error) {
	tr, err := l.TServerSocket.Accept()
	if err != nil {
		return tr, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		tr.Close()
		return tr, nil
	}
	l.accepted = append(l.accepted, tr)
	return tr, nil
}

func (l *countingListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *countingListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.accepted {
		tr.Close()
	}
}

func (l *countingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.dropAll()
}

// handler serves the KV service from the Server's map.
type handler struct{ s *Server }

var _ kvapi.KV = handler{}

// before records c and runs the hook, if any.
func (h handler) before(ctx context.Context, c Call) error {
	h.s.mu.Lock()
	h.s.calls = append(h.s.calls, c)
	hook := h.s.hook
	h.s.mu.Unlock()
	if hook == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return hook(ctx, c)
}

func (h handler) Get(ctx context.Context, key string, consistency kvapi.Consistency) (*kvapi.GetResult_, error) {
	if err := h.before(ctx, Call{Method: "get", Key: key, Consistency: consistency}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	v, ok := h.s.data[key]
	if !ok {
		return nil, &kvapi.NotFound{Key: key}
	}
	return &kvapi.GetResult_{Value: v, Applied: h.s.slot}, nil
}

func (h handler) Put(ctx context.Context, clientID, seq int64, key string, value []byte) (*kvapi.WriteResult_, error) {
	return h.write(ctx, Call{Method: "put", ClientID: clientID, Seq: seq, Key: key}, func() bool {
		_, existed := h.s.data[key]
		h.s.data[key] = slices.Clone(value)
		return existed
	})
}

func (h handler) Remove(ctx context.Context, clientID, seq int64, key string) (*kvapi.WriteResult_, error) {
	return h.write(ctx, Call{Method: "remove", ClientID: clientID, Seq: seq, Key: key}, func() bool {
		_, existed := h.s.data[key]
		delete(h.s.data, key)
		return existed
	})
}

// write checks the session rules, runs the hook, and applies the write once per
// (client id, seq): a retry of the last applied write gets its recorded result.
func (h handler) write(ctx context.Context, c Call, apply func() (existed bool)) (*kvapi.WriteResult_, error) {
	h.s.mu.Lock()
	if h.s.inflight[c.ClientID] > 0 {
		h.s.violations = append(h.s.violations,
			fmt.Sprintf("client %d: seq %d sent while another write is outstanding", c.ClientID, c.Seq))
	}
	if last, ok := h.s.sessions[c.ClientID]; ok && c.Seq < last.seq {
		h.s.violations = append(h.s.violations,
			fmt.Sprintf("client %d: seq %d after seq %d", c.ClientID, c.Seq, last.seq))
	}
	h.s.inflight[c.ClientID]++
	h.s.mu.Unlock()
	defer func() {
		h.s.mu.Lock()
		h.s.inflight[c.ClientID]--
		h.s.mu.Unlock()
	}()

	if c.ClientID <= 0 {
		return nil, &kvapi.InvalidArgument{Message: "client_id must be positive", Field: "client_id"}
	}
	if err := h.before(ctx, c); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if last, ok := h.s.sessions[c.ClientID]; ok && last.seq == c.Seq {
		return last.result, nil
	}
	h.s.slot++
	res := &kvapi.WriteResult_{Slot: h.s.slot, Existed: apply()}
	h.s.sessions[c.ClientID] = applied{seq: c.Seq, result: res}
	return res, nil
}

func (h handler) Status(ctx context.Context) (*kvapi.ReplicaStatus, error) {
	if err := h.before(ctx, Call{Method: "status"}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	st := &kvapi.ReplicaStatus{ClientAddr: h.s.addr}
	if h.s.status != nil {
		cp := *h.s.status
		st = &cp
	}
	st.Keys = int64(len(h.s.data))
	st.Applied = max(st.Applied, h.s.slot)
	if h.s.epoch > 0 {
		st.ConfigEpoch = h.s.epoch
		st.Members = make([]int64, 0, len(h.s.members))
		st.Member = false
		for _, m := range h.s.members {
			st.Members = append(st.Members, m.ID)
			st.Member = st.Member || m.ID == st.ID
		}
	}
	return st, nil
}

func (h handler) Digest(ctx context.Context) (*kvapi.Digest, error) {
	if err := h.before(ctx, Call{Method: "digest"}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	keys := slices.Sorted(maps.Keys(h.s.data))
	sum := sha256.New()
	for _, k := range keys {
		writeLenPrefixed(sum, []byte(k))
		writeLenPrefixed(sum, h.s.data[k])
	}
	return &kvapi.Digest{Applied: h.s.slot, Keys: int64(len(keys)), Sha256: sum.Sum(nil)}, nil
}

// writeLenPrefixed writes b's length (8 bytes, big-endian) and then b, as the
// IDL's Digest.sha256 prescribes.
func writeLenPrefixed(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func (h handler) Backup(ctx context.Context, index, offset int64, maxBytes int32) (*kvapi.BackupChunk, error) {
	if err := h.before(ctx, Call{Method: "backup", Index: index, Offset: offset, MaxBytes: maxBytes}); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	b := h.s.backup
	h.s.mu.Unlock()
	switch {
	case b == nil:
		return nil, &kvapi.Unavailable{Message: "kvtest: no backup to serve"}
	case index < 0:
		return nil, &kvapi.InvalidArgument{Message: fmt.Sprintf("index %d is negative", index), Field: "index"}
	case offset < 0 || offset > int64(len(b.File)) || (index == 0 && offset != 0):
		return nil, &kvapi.InvalidArgument{Message: fmt.Sprintf("offset %d is out of range", offset), Field: "offset"}
	case maxBytes < 1:
		return nil, &kvapi.InvalidArgument{Message: fmt.Sprintf("max_bytes %d is below 1", maxBytes), Field: "max_bytes"}
	case index != 0 && index != b.Index:
		return nil, &kvapi.Unavailable{Message: fmt.Sprintf("kvtest: no snapshot at index %d", index)}
	}
	sum := b.Sum
	if sum == nil {
		s := sha256.Sum256(b.File)
		sum = s[:]
	}
	n := min(int64(maxBytes), kvapi.MAX_VALUE_BYTES, int64(len(b.File))-offset)
	data := slices.Clone(b.File[offset : offset+n])
	if b.Corrupt != nil {
		b.Corrupt(offset, data)
	}
	return &kvapi.BackupChunk{Index: b.Index, Size: int64(len(b.File)), Checksum: sum, Offset: offset, Data: data}, nil
}

// Reconfigure commits members as the next configuration of this replica: the
// epoch after the current one, at the next slot. Asking for the members it
// already has changes nothing and answers slot 0, as the IDL says.
func (h handler) Reconfigure(ctx context.Context, members []*kvapi.ReplicaAddress) (*kvapi.ReconfigureResult_, error) {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = strconv.FormatInt(m.GetID(), 10)
	}
	h.s.mu.Lock()
	h.s.reconfigures = append(h.s.reconfigures, cloneMembers(members))
	h.s.mu.Unlock()
	if err := h.before(ctx, Call{Method: "reconfigure", Members: strings.Join(ids, ",")}); err != nil {
		return nil, err
	}
	seen := make(map[int64]bool, len(members))
	for _, m := range members {
		if m == nil || m.ID < 1 || seen[m.ID] {
			return nil, &kvapi.InvalidArgument{Message: "kvtest: a member id is missing, below 1 or listed twice", Field: "members"}
		}
		seen[m.ID] = true
	}
	if len(members) == 0 {
		return nil, &kvapi.InvalidArgument{Message: "kvtest: no members", Field: "members"}
	}
	h.s.mu.Lock()
	if r := h.s.reconfigureAnswer; r != nil {
		h.s.mu.Unlock()
		cp := *r
		cp.Members = cloneMembers(r.Members)
		return &cp, nil
	}
	want := sortedMembers(members)
	res := &kvapi.ReconfigureResult_{Epoch: h.s.epoch}
	changed := !slices.EqualFunc(want, h.s.members, func(a, b *kvapi.ReplicaAddress) bool { return *a == *b })
	if changed {
		h.s.epoch++
		h.s.slot++
		h.s.members = want
		res.Epoch, res.Slot = h.s.epoch, h.s.slot
	}
	res.Members = cloneMembers(h.s.members)
	fn := h.s.reconfigured
	h.s.mu.Unlock()
	if changed && fn != nil {
		cp := *res
		cp.Members = cloneMembers(res.Members)
		fn(cp)
	}
	return res, nil
}

// cloneMembers copies a member list, so that no caller shares the server's.
func cloneMembers(ms []*kvapi.ReplicaAddress) []*kvapi.ReplicaAddress {
	if ms == nil {
		return nil
	}
	out := make([]*kvapi.ReplicaAddress, len(ms))
	for i, m := range ms {
		if m != nil {
			cp := *m
			out[i] = &cp
		}
	}
	return out
}

// sortedMembers copies a member list sorted by id.
func sortedMembers(ms []*kvapi.ReplicaAddress) []*kvapi.ReplicaAddress {
	out := cloneMembers(ms)
	slices.SortFunc(out, func(a, b *kvapi.ReplicaAddress) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
