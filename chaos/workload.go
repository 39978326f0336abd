package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ballot-kv/ballot/gen/kvapi"
)

// WorkloadConfig describes the clients of one history.
type WorkloadConfig struct {
	// Clients is how many clients run at once. Default 8.
	Clients int
	// Keys all clients read and write, so their operations collide. Default
	// five keys.
	Keys []string
	// ReadRatio and RemoveRatio are the shares of gets and deletes; the rest are
	// puts. Defaults 0.5 and 0.15.
	ReadRatio, RemoveRatio float64
	// RandomReads sends every get to a random replica first (followers answer
	// NotLeader, which the client follows) instead of the leader it knows, as
	// one request in four, reads and writes, does anyway.
	RandomReads bool
	// MaxOps bounds each client's operations. Default 100000.
	MaxOps int
	// CallTimeout bounds one request on the wire. Default 4s: longer than the
	// replicas' own 3s request timeout, so they can answer Unavailable first.
	CallTimeout time.Duration
	// WriteBudget is how long a write is retried (with the same client id and
	// seq) before it is given up as unknown. Default 8s.
	WriteBudget time.Duration
	// ReadBudget is how long a get is retried before it is dropped. Default 4s.
	ReadBudget time.Duration
	// GiveUp is the chance that a write whose attempt may have taken effect is
	// not retried but recorded with an unknown outcome, so that histories hold
	// writes that may land at any later time. Default 0.2; negative means never.
	GiveUp float64
	// TLS, when set, is used for every connection, with the ServerName of the
	// replica dialled (replicas serving --client-cert). Nil: plaintext.
	TLS *tls.Config
}

func (c WorkloadConfig) withDefaults() WorkloadConfig {
	if c.Clients == 0 {
		c.Clients = 8
	}
	if len(c.Keys) == 0 {
		c.Keys = []string{"k1", "k2", "k3", "k4", "k5"}
	}
	if c.ReadRatio == 0 {
		c.ReadRatio = 0.5
	}
	if c.RemoveRatio == 0 {
		c.RemoveRatio = 0.15
	}
	if c.MaxOps == 0 {
		c.MaxOps = 100000
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 4 * time.Second
	}
	if c.WriteBudget == 0 {
		c.WriteBudget = 8 * time.Second
	}
	if c.ReadBudget == 0 {
		c.ReadBudget = 4 * time.Second
	}
	if c.GiveUp == 0 {
		c.GiveUp = 0.2
	}
	return c
}

// WorkloadStats counts what the clients did, beyond what the history holds.
type WorkloadStats struct {
	// ReadsDropped: gets that never got an answer (left out of the history).
	ReadsDropped int64
	// WritesNotProposed: writes every replica refused with NotLeader (left out).
	WritesNotProposed int64
	// Retries: attempts that failed and were tried again (NotLeader included).
	Retries int64
	// Errors: answers no correct replica gives (InvalidArgument to a valid
	// request, an error the IDL does not declare); each is a failure.
	Errors []string
}

// errorKind sorts a request's failure by what it says about the request.
type errorKind int

const (
	errNone       errorKind = iota
	errNotFound             // get: the key holds no value
	errNotLeader            // not proposed; try the leader it names
	errUnknown              // may or may not have taken effect
	errUndeclared           // not an IDL exception: a replica's bug, outcome unknown
	errBad                  // a correct replica never says this
)

func classify(err error) (errorKind, string) {
	if err == nil {
		return errNone, ""
	}
	var (
		nl  *kvapi.NotLeader
		nf  *kvapi.NotFound
		ua  *kvapi.Unavailable
		inv *kvapi.InvalidArgument
	)
	switch {
	case errors.As(err, &nf):
		return errNotFound, ""
	case errors.As(err, &nl):
		return errNotLeader, nl.LeaderAddr
	case errors.As(err, &ua):
		return errUnknown, ""
	case errors.As(err, &inv):
		return errBad, ""
	}
	var app thrift.TApplicationException
	if errors.As(err, &app) {
		return errUndeclared, ""
	}
	return errUnknown, ""
}

// RunWorkload runs cfg.Clients clients against the replicas at addrs (replica
// id i at addrs[i-1]) and records their operations in h. Clients start no new
// operation once ctx ends; the operations in flight then finish within their
// budgets, so RunWorkload returns at most WriteBudget after ctx ends.
func RunWorkload(ctx context.Context, cfg WorkloadConfig, seed uint64, addrs []string, h *History) WorkloadStats {
	cfg = cfg.withDefaults()
	var (
		stats   WorkloadStats
		mu      sync.Mutex // guards stats.Errors
		dropped atomic.Int64
		refused atomic.Int64
		retries atomic.Int64
		wg      sync.WaitGroup
	)
	for i := range cfg.Clients {
		w := &worker{
			index: i,
			cfg:   cfg,
			addrs: addrs,
			h:     h,
			rng:   rand.New(rand.NewPCG(seed, uint64(i)+1)),
			conns: make(map[int]*kvConn),
		}
		w.newSession()
		w.leader = w.rng.IntN(len(addrs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.closeAll()
			defer func() {
				dropped.Add(w.readsDropped)
				refused.Add(w.notProposed)
				retries.Add(w.retries)
				mu.Lock()
				stats.Errors = append(stats.Errors, w.undeclared...)
				mu.Unlock()
			}()
			for n := 0; n < cfg.MaxOps && ctx.Err() == nil; n++ {
				if err := w.step(); err != nil {
					mu.Lock()
					stats.Errors = append(stats.Errors, err.Error())
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	stats.ReadsDropped, stats.WritesNotProposed, stats.Retries = dropped.Load(), refused.Load(), retries.Load()
	return stats
}

// worker is one client: a raw Thrift connection per replica, a session (client
// id and seq) for its writes, and the leader it believes in.
type worker struct {
	index int
	cfg   WorkloadConfig
	addrs []string
	h     *History
	rng   *rand.Rand
	conns map[int]*kvConn // by index into addrs
	// leader is the index of the replica the worker sends to first.
	leader int

	session  int   // porcupine client id
	clientID int64 // on the wire
	seq      int64 // of the last write recorded under clientID
	written  int   // writes started, for unique values

	readsDropped int64
	notProposed  int64
	retries      int64
	// undeclared lists errors outside the IDL (the first few).
	undeclared []string
}

// noteUndeclared keeps the first few errors outside the IDL.
func (w *worker) noteUndeclared(what string, replica int, err error) {
	if len(w.undeclared) < 5 {
		w.undeclared = append(w.undeclared, fmt.Sprintf("client %d: %s at replica %d: error outside the IDL: %v", w.index, what, replica, err))
	}
}

// newSession starts a new client id: after a write whose outcome is unknown the
// old one may still have that write in flight, and a client id has at most one.
func (w *worker) newSession() {
	w.session = w.h.NewSession()
	w.clientID = w.rng.Int64N(1<<62) + 1
	w.seq = 0
}

func (w *worker) closeAll() {
	for i, c := range w.conns {
		c.Close()
		delete(w.conns, i)
	}
}

func (w *worker) conn(i int) (*kvConn, error) {
	if c, ok := w.conns[i]; ok {
		return c, nil
	}
	c, err := dialKVWith(w.addrs[i], w.cfg.CallTimeout, w.cfg.TLS)
	if err != nil {
		return nil, err
	}
	w.conns[i] = c
	return c, nil
}

func (w *worker) drop(i int) {
	if c, ok := w.conns[i]; ok {
		c.Close()
		delete(w.conns, i)
	}
}

func (w *worker) indexOf(addr string) int {
	for i, a := range w.addrs {
		if a == addr {
			return i
		}
	}
	return -1
}

// redirect picks the next replica to try after a failure at i: the leader the
// replica named, or another replica.
func (w *worker) redirect(i int, leaderAddr string) int {
	if j := w.indexOf(leaderAddr); j >= 0 && j != i {
		return j
	}
	if len(w.addrs) == 1 {
		return i
	}
	j := w.rng.IntN(len(w.addrs) - 1)
	if j >= i {
		j++
	}
	return j
}

func (w *worker) step() error {
	key := w.cfg.Keys[w.rng.IntN(len(w.cfg.Keys))]
	r := w.rng.Float64()
	switch {
	case r < w.cfg.ReadRatio:
		return w.read(key)
	case r < w.cfg.ReadRatio+w.cfg.RemoveRatio:
		return w.write(Input{Kind: OpRemove, Key: key})
	default:
		w.written++
		return w.write(Input{Kind: OpPut, Key: key, Value: fmt.Sprintf("v%d.%d", w.index, w.written)})
	}
}

// read runs one linearizable get. Each attempt that fails has no effect, so
// only the attempt that is answered is recorded, with its own call time.
func (w *worker) read(key string) error {
	target := w.leader
	if w.cfg.RandomReads || w.rng.IntN(4) == 0 {
		target = w.rng.IntN(len(w.addrs))
	}
	deadline := time.Now().Add(w.cfg.ReadBudget)
	for time.Now().Before(deadline) {
		c, err := w.conn(target)
		if err != nil {
			target = w.redirect(target, "")
			w.backoff()
			continue
		}
		call := w.h.Now()
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
		res, err := c.Get(ctx, key, kvapi.Consistency_LINEARIZABLE)
		cancel()
		ret := w.h.Now()
		kind, leaderAddr := classify(err)
		switch kind {
		case errNone, errNotFound:
			out := Output{Replica: target + 1}
			if kind == errNone {
				out.Found, out.Value = true, string(res.Value)
			}
			w.h.Add(porcupine.Operation{ClientId: w.session, Input: Input{Kind: OpGet, Key: key},
				Call: call, Output: out, Return: ret})
			if !w.cfg.RandomReads {
				w.leader = target
			}
			return nil
		case errNotLeader:
			w.retries++
			target = w.redirect(target, leaderAddr)
			if leaderAddr == "" {
				w.backoff()
			}
		case errBad:
			return fmt.Errorf("client %d: get %s at replica %d: %v", w.index, key, target+1, err)
		default:
			if kind == errUndeclared {
				w.noteUndeclared("get "+key, target+1, err)
			}
			w.retries++
			w.drop(target)
			target = w.redirect(target, "")
			w.backoff()
		}
	}
	w.readsDropped++
	return nil
}

// write runs one put or delete under the worker's session, retrying with the
// same client id and seq until it is answered or its budget is spent. The
// operation spans from the first attempt to the answer; if some attempt may have
// taken effect and none was answered, it is recorded with an unknown outcome.
func (w *worker) write(in Input) error {
	w.seq++
	in.Client, in.Seq = w.clientID, w.seq
	call := w.h.Now()
	maybe := false
	target := w.leader
	if w.rng.IntN(4) == 0 {
		target = w.rng.IntN(len(w.addrs))
	}
	deadline := time.Now().Add(w.cfg.WriteBudget)
	for time.Now().Before(deadline) {
		c, err := w.conn(target)
		if err != nil {
			// Not connected: nothing was sent.
			target = w.redirect(target, "")
			w.backoff()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
		var res *kvapi.WriteResult_
		if in.Kind == OpPut {
			res, err = c.Put(ctx, in.Client, in.Seq, in.Key, []byte(in.Value))
		} else {
			res, err = c.Remove(ctx, in.Client, in.Seq, in.Key)
		}
		cancel()
		ret := w.h.Now()
		kind, leaderAddr := classify(err)
		switch kind {
		case errNone:
			w.h.Add(porcupine.Operation{ClientId: w.session, Input: in, Call: call,
				Output: Output{Existed: res.Existed, Replica: target + 1}, Return: ret})
			w.leader = target
			return nil
		case errNotLeader:
			// Not proposed: the request may go elsewhere at once.
			w.retries++
			target = w.redirect(target, leaderAddr)
			if leaderAddr == "" {
				w.backoff()
			}
		case errUnknown, errUndeclared:
			if kind == errUndeclared {
				w.noteUndeclared(KVModel.DescribeOperation(in, Output{Unknown: true}), target+1, err)
			}
			maybe = true
			w.drop(target)
			if w.rng.Float64() < w.cfg.GiveUp {
				deadline = time.Time{}
				continue
			}
			w.retries++
			target = w.redirect(target, "")
			w.backoff()
		default:
			return fmt.Errorf("client %d: %s at replica %d: %v", w.index, KVModel.DescribeOperation(in, Output{Unknown: true}), target+1, err)
		}
	}
	if !maybe {
		// Every replica refused it: it was never proposed, and the seq is free.
		w.seq--
		w.notProposed++
		return nil
	}
	w.h.Add(porcupine.Operation{ClientId: w.session, Input: in, Call: call,
		Output: Output{Unknown: true}, Return: never})
	w.newSession()
	return nil
}

// backoff paces retries after a failure.
func (w *worker) backoff() {
	pause(context.Background(), time.Duration(20+w.rng.IntN(60))*time.Millisecond)
}
