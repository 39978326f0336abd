package peer

// MessageType names a protocol message. The names follow the papers: P1a/P1b are
// phase 1, P2a/P2b phase 2, P3 the commit notice.
type MessageType uint8

const (
	// MsgPrepare (P1a): a candidate asks acceptors to promise Ballot, reporting
	// what they accepted from Slot on.
	MsgPrepare MessageType = iota + 1
	// MsgPromise (P1b): the reply to MsgPrepare. OK is false when the acceptor
	// refused; Ballot is then the acceptor's promised ballot.
	MsgPromise
	// MsgAccept (P2a): the leader asks acceptors to accept Entries at Ballot. With
	// no entries it is a heartbeat. Commit is the leader's commit point; RoundTrip
	// numbers the heartbeat round for linearizable reads.
	MsgAccept
	// MsgAccepted (P2b): the reply to MsgAccept. Commit is the acceptor's chosen
	// prefix, so the leader knows what to resend.
	MsgAccepted
	// MsgExecute (P3): the leader sends chosen Entries the receiver lacks, and its
	// commit point.
	MsgExecute
	// MsgExecuted: the reply to MsgExecute, with the receiver's chosen prefix.
	MsgExecuted
	// MsgUnreachable is never sent: the caller steps it when a request to From
	// failed (timeout, connection refused), so the leader resends from what it knows.
	MsgUnreachable
)

var messageTypeNames = [...]string{
	MsgPrepare:     "prepare",
	MsgPromise:     "promise",
	MsgAccept:      "accept",
	MsgAccepted:    "accepted",
	MsgExecute:     "execute",
	MsgExecuted:    "executed",
	MsgUnreachable: "unreachable",
}

func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) && messageTypeNames[t] != "" {
		return messageTypeNames[t]
	}
	return "unknown"
}

// IsReply reports whether t answers a request (and so goes back to the replica that
// sent the request, correlated by Message.Token).
func (t MessageType) IsReply() bool {
	return t == MsgPromise || t == MsgAccepted || t == MsgExecuted
}

// Message is one protocol message. Fields a type does not use are zero.
type Message struct {
	Type MessageType
	From uint64
	To   uint64
	// Ballot is the sender's ballot on requests, the acceptor's promised ballot on
	// replies.
	Ballot Ballot
	// OK is the acceptor's verdict on MsgPromise and MsgAccepted.
	OK bool
	// Slot is the first slot a MsgPrepare asks about.
	Slot uint64
	// Probe marks a MsgPrepare (and its MsgPromise) that only asks whether the
	// acceptor would promise, changing nothing: a replica runs such a pre-vote before
	// raising its ballot, so one that was cut off cannot depose a working leader by
	// coming back with a higher ballot (Raft thesis, section 9.6).
	Probe bool
	// Entries are proposed (MsgAccept), reported accepted (MsgPromise) or chosen
	// (MsgExecute).
	Entries []Entry
	// Commit is the sender's chosen prefix: every slot up to it is chosen.
	Commit uint64
	// RoundTrip numbers a leader's heartbeat round; replies echo it.
	RoundTrip uint64
	// Snapshot, on a MsgExecute and a refused MsgPromise, is the slot up to which
	// the sender has compacted its log: it can no longer send or report entries up
	// to there, so a receiver whose chosen prefix is below it must install a
	// snapshot (Ready.Snapshot) before it can catch up or lead.
	Snapshot uint64
	// Epoch is the caller's too: the configuration the sender is in. The core
	// neither reads nor sets it; a caller that changes configurations refuses
	// prepare and accept traffic between replicas in different ones.
	Epoch uint64
	// FromAddr is the caller's as well: the sender's peer address on requests, so
	// a replica that does not know the sender yet can reach it.
	FromAddr string
	// Token is the caller's: a reply carries its request's Token, so a transport
	// with request/response calls can match them. The core never interprets it.
	Token uint64
}
