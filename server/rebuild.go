package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ballot-kv/ballot/peer"
	"github.com/ballot-kv/ballot/transport"
)

// inquirer asks one other replica what a replica rebuilding lost storage needs
// to know (transport.PeerClient).
type inquirer interface {
	Inquire(ctx context.Context, from uint64) (transport.Inquiry, error)
}

// rebuildPlan is what a replica that starts without its acceptor state learned
// from the others.
type rebuildPlan struct {
	rebuild bool // the cluster has history: rebuild; false: a new cluster
	// late: the cluster has history, but a replica that founded it heard this
	// process starting in its founding round, so this replica has never voted
	// in it: it takes part at once, with nothing to rebuild.
	late bool
	// saw: for a new cluster, the start nonce each other replica reported in
	// the round that found it new (only the nonzero ones; nil if none).
	saw      map[uint64]uint64
	promised peer.Ballot // at least the highest ballot a majority of the others promised
	upTo     uint64      // the highest slot they accepted, applied or are rebuilding to
	// epoch and members: the latest configuration they are in (0: none reported).
	epoch   uint64
	members []uint64
}

// planRebuild decides how a replica whose store holds no acceptor state (a new
// replica, a deleted data directory, or a restore from a backup) may start.
//
// If every other replica answers and none of them has promised a ballot or holds
// a slot beyond what this replica has applied, the cluster is new (or restored
// from one backup everywhere) and it starts as it is. Otherwise this replica
// may have promised ballots and accepted entries it no longer remembers, and
// voting as if it had not could lose a chosen value. It then waits for hold (long
// enough that no candidate still counts a promise it gave before the loss, and
// no leader a vote: both expire within an election timeout), asks a majority of
// the others again, and starts with their highest ballot as its promise and as
// peer.Durable.RebuildTo the highest slot they report; until it has learned every
// slot up to there it neither campaigns nor promises (see package peer). It
// retries until a majority answers or ctx ends: soon at first, since replicas
// started together begin to listen moments apart, then backing off to one round
// per timeout.
//
// Replicas started together can still decide moments apart: this one may ask
// again only after the others founded the cluster and elected a leader. It
// then finds history, but need not rebuild if any of them founded the cluster
// having heard nonce, this process's start nonce: this process has not voted,
// its store was empty when it started, and before the founding there was no
// history, so it has never voted in this cluster (plan.late).
func planRebuild(ctx context.Context, self uint64, applied, nonce uint64, peers map[uint64]inquirer, clusterSize int,
	hold, timeout time.Duration, logger *slog.Logger) (rebuildPlan, error) {
	if len(peers) == 0 {
		return rebuildPlan{}, nil
	}
	// Answers from others with state, as many as a majority of the cluster (of the
	// latest configuration the answers name): then they include one of the others
	// in any quorum this replica was part of before it lost its state.
	need := clusterSize/2 + 1
	first := true
	// Soon, whatever the call timeout: with --peer-timeout 60s a first retry
	// at timeout/16 came 3.75 s later, after the others had formed the cluster.
	retry := min(timeout/16, firstInquiryRetry)
	for {
		answers := inquireAll(ctx, self, peers, timeout)
		established, witnessed, counted := false, false, 0
		var plan rebuildPlan
		// The latest configuration any of them is in: a majority of its members
		// must answer (any quorum this replica was part of had members there).
		var latest transport.Inquiry
		for _, a := range answers {
			if !a.Starting && len(a.Members) > 0 && a.Epoch > latest.Epoch {
				latest = a
			}
		}
		need := need
		if latest.Epoch != 0 {
			need = len(latest.Members)/2 + 1
		}
		for _, a := range answers {
			if a.Promised != (peer.Ballot{}) || a.Highest > applied {
				established = true
			}
			if a.Starting {
				if a.StartNonce != 0 {
					if plan.saw == nil {
						plan.saw = make(map[uint64]uint64)
					}
					plan.saw[a.From] = a.StartNonce
				}
				continue
			}
			if nonce != 0 && a.FoundedWith == nonce {
				witnessed = true
			}
			plan.promised = maxBallotOf(plan.promised, a.Promised)
			plan.upTo = max(plan.upTo, a.Highest)
			if latest.Epoch == 0 || slices.Contains(latest.Members, a.From) {
				counted++
			}
		}
		switch {
		case !established && len(answers) == len(peers):
			// Every other replica is new too (all must say so: one with
			// history may be the only one left holding a chosen value).
			return rebuildPlan{saw: plan.saw}, nil
		case established && witnessed:
			logger.Info("the other replicas founded the cluster while this one was starting: " +
				"taking part with nothing to rebuild")
			return rebuildPlan{late: true, epoch: latest.Epoch, members: latest.Members}, nil
		case established && first:
			logger.Warn("this replica has no acceptor state but the cluster has history: "+
				"rebuilding it from the others before it votes", "wait", hold)
			first = false
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				return rebuildPlan{}, ctx.Err()
			}
			continue
		case established && counted >= need:
			plan.rebuild, plan.saw = true, nil
			plan.epoch, plan.members = latest.Epoch, latest.Members
			return plan, nil
		}
		logger.Info("waiting for the other replicas to answer", "answered", len(answers), "with_state", counted,
			"replicas", len(peers))
		select {
		case <-time.After(retry):
		case <-ctx.Done():
			return rebuildPlan{}, fmt.Errorf("waiting for the other replicas: %w", ctx.Err())
		}
		retry = min(2*retry, timeout)
	}
}

// firstInquiryRetry bounds the wait before planRebuild first asks again.
const firstInquiryRetry = 100 * time.Millisecond

// inquireAll asks every peer at once and returns the answers that came in time.
func inquireAll(ctx context.Context, self uint64, peers map[uint64]inquirer, timeout time.Duration) []transport.Inquiry {
	var mu sync.Mutex
	var out []transport.Inquiry
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			a, err := p.Inquire(cctx, self)
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func maxBallotOf(a, b peer.Ballot) peer.Ballot {
	if a.Less(b) {
		return b
	}
	return a
}
