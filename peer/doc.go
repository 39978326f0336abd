// Package peer is Ballot's Multi-Paxos core: a deterministic state machine with no
// I/O, no clock and no goroutines, so that every interleaving of messages, crashes
// and timeouts can be replayed in a test.
//
// The caller (the replica runtime in package server) drives a Replica:
//
//   - Step(m) hands it a message from another replica (or a reply to one of its own);
//   - Tick() advances its logical clock by one tick;
//   - Propose(data) asks the leader to put a batch of commands in the log;
//   - ReadIndex(token) asks the leader to confirm leadership for a linearizable read.
//
// None of these perform I/O. They record what must happen; the caller collects it with
// Ready(), then, in this order:
//
//  1. writes Ready.Promised and Ready.Entries to stable storage and syncs it;
//  2. sends Ready.Messages;
//  3. applies Ready.Committed to the state machine, in order;
//  4. answers Ready.Reads once the state machine has applied up to each read's index;
//  5. calls Advance(rd).
//
// Step 1 before step 2 is the rule that keeps Paxos safe across crashes: an acceptor
// must never let a promise or an accepted value leave the machine before it is on
// disk, because after a restart it would not remember it. The leader counts its own
// vote for a slot only in Advance, that is after its own acceptor record is durable;
// so a leader's MsgAccept and MsgExecute requests (never a reply) may be sent while
// its own entries are still being saved, and its disk and its followers' disks then
// work at the same time. A leader that crashes before its save completes never
// reuses its ballot: it campaigns afresh with a higher one. Step 3 may also come
// before step 1 for committed entries that are not among Ready.Entries: they were
// saved by an earlier Ready (or are durable on a majority elsewhere), and applying
// them first lets a leader answer their writers without waiting for the next
// slot's fsync.
//
// The protocol (Lamport, "Paxos Made Simple", section 3, and "Paxos Made Moderately
// Complex"): a replica that hears nothing from a leader for a randomised election
// timeout runs phase 1 (prepare/promise) for every slot from its first unchosen slot
// on, with a ballot (round, id) higher than any it has seen. With promises from a
// majority it leads: it re-proposes, for each open slot, the value with the highest
// ballot any promise reported, fills the remaining holes with no-ops, and then puts
// new commands in fresh slots. Phase 2 (accept/accepted) chooses a slot once a
// majority has accepted it at the leader's ballot; a thrifty leader (Config.Thrifty)
// asks only that majority, and brings the other followers the chosen entries. Chosen slots reach the followers
// through the commit point carried by every accept and heartbeat, and through execute
// messages carrying the chosen entries a follower lacks.
package peer
