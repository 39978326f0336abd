package transport

import (
	"fmt"
	"math"

	"github.com/ballot-kv/ballot/gen/peerapi"
	"github.com/ballot-kv/ballot/peer"
)

// The Peer service's numbers are Thrift i64; the core's are uint64. Every
// conversion checks the range instead of letting a value wrap: a negative slot or
// ballot from the wire is an error, and so is a core value above math.MaxInt64.
//
// Entry data is shared, not copied, in both directions: a converted message must
// be treated as read-only while the original is in use.

// conv converts numbers field by field and keeps the first error, so that a
// conversion reads as a list of assignments followed by one check.
type conv struct {
	err error
}

// out converts a core value for the wire.
func (c *conv) out(field string, v uint64) int64 {
	if v > math.MaxInt64 {
		if c.err == nil {
			c.err = fmt.Errorf("%s %d exceeds %d: %w", field, v, int64(math.MaxInt64), ErrOutOfRange)
		}
		return 0
	}
	return int64(v)
}

// in converts a wire value for the core.
func (c *conv) in(field string, v int64) uint64 {
	if v < 0 {
		if c.err == nil {
			c.err = fmt.Errorf("%s %d is negative: %w", field, v, ErrOutOfRange)
		}
		return 0
	}
	return uint64(v)
}

// fail records err unless an earlier error is already recorded.
func (c *conv) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// wantType checks that m is of type t before it is converted.
func (c *conv) wantType(m peer.Message, t peer.MessageType) {
	if m.Type != t {
		c.fail(fmt.Errorf("convert %s as %s: %w", m.Type, t, ErrUnsupported))
	}
}

// ballotOut fills dst with b.
func (c *conv) ballotOut(field string, dst *peerapi.Ballot, b peer.Ballot) {
	if b.Round > math.MaxInt64 || b.ID > math.MaxInt64 {
		c.fail(fmt.Errorf("%s %v: %w", field, b, ErrOutOfRange))
		return
	}
	dst.Round = int64(b.Round)
	dst.Replica = int64(b.ID)
}

// ballotIn converts a wire ballot; an absent one is an error.
func (c *conv) ballotIn(field string, b *peerapi.Ballot) peer.Ballot {
	if b == nil {
		c.fail(fmt.Errorf("%s: %w", field, ErrMissingField))
		return peer.Ballot{}
	}
	if b.Round < 0 || b.Replica < 0 {
		c.fail(fmt.Errorf("%s %d.%d: %w", field, b.Round, b.Replica, ErrOutOfRange))
		return peer.Ballot{}
	}
	return peer.Ballot{Round: uint64(b.Round), ID: uint64(b.Replica)}
}

// entriesOut converts entries with three allocations however many there are.
func (c *conv) entriesOut(es []peer.Entry) []*peerapi.Entry {
	if len(es) == 0 {
		return nil
	}
	ents := make([]peerapi.Entry, len(es))
	ballots := make([]peerapi.Ballot, len(es))
	out := make([]*peerapi.Entry, len(es))
	for i := range es {
		e := &es[i]
		te := &ents[i]
		te.Slot = c.out("entry slot", e.Slot)
		c.ballotOut("entry ballot", &ballots[i], e.Ballot)
		te.Ballot = &ballots[i]
		switch e.Kind {
		case peer.KindCommands:
			te.Kind = peerapi.EntryKind_COMMANDS
		case peer.KindNoop:
			te.Kind = peerapi.EntryKind_NOOP
		case peer.KindConfig:
			te.Kind = peerapi.EntryKind_CONFIG
		default:
			c.fail(fmt.Errorf("entry at slot %d: kind %d: %w", e.Slot, e.Kind, ErrUnsupported))
		}
		te.Data = e.Data
		out[i] = te
	}
	return out
}

// entriesIn converts wire entries; a nil element is an error.
func (c *conv) entriesIn(es []*peerapi.Entry) []peer.Entry {
	if len(es) == 0 {
		return nil
	}
	out := make([]peer.Entry, len(es))
	for i, te := range es {
		if te == nil {
			c.fail(fmt.Errorf("entry %d: %w", i, ErrMissingField))
			return nil
		}
		e := &out[i]
		e.Slot = c.in("entry slot", te.Slot)
		e.Ballot = c.ballotIn("entry ballot", te.Ballot)
		switch te.Kind {
		case peerapi.EntryKind_COMMANDS:
			e.Kind = peer.KindCommands
		case peerapi.EntryKind_NOOP:
			e.Kind = peer.KindNoop
		case peerapi.EntryKind_CONFIG:
			e.Kind = peer.KindConfig
		default:
			c.fail(fmt.Errorf("entry at slot %d: kind %d: %w", te.Slot, te.Kind, ErrUnsupported))
		}
		if len(te.Data) > 0 {
			// An empty binary reads as an empty slice; the core's empty data is nil.
			e.Data = te.Data
		}
	}
	return out
}

// BallotToThrift converts a ballot for the wire.
func BallotToThrift(b peer.Ballot) (*peerapi.Ballot, error) {
	var c conv
	out := new(peerapi.Ballot)
	c.ballotOut("ballot", out, b)
	if c.err != nil {
		return nil, c.err
	}
	return out, nil
}

// BallotFromThrift converts a ballot from the wire; nil is an error.
func BallotFromThrift(b *peerapi.Ballot) (peer.Ballot, error) {
	var c conv
	out := c.ballotIn("ballot", b)
	return out, c.err
}

// EntryToThrift converts one log entry for the wire.
func EntryToThrift(e peer.Entry) (*peerapi.Entry, error) {
	var c conv
	out := c.entriesOut([]peer.Entry{e})
	if c.err != nil {
		return nil, c.err
	}
	return out[0], nil
}

// EntryFromThrift converts one log entry from the wire; nil is an error.
func EntryFromThrift(e *peerapi.Entry) (peer.Entry, error) {
	var c conv
	out := c.entriesIn([]*peerapi.Entry{e})
	if c.err != nil {
		return peer.Entry{}, c.err
	}
	return out[0], nil
}

// PrepareToThrift converts a MsgPrepare (a pre-vote when m.Probe is set).
func PrepareToThrift(m peer.Message) (*peerapi.PrepareRequest, error) {
	var c conv
	c.wantType(m, peer.MsgPrepare)
	r := &peerapi.PrepareRequest{
		SenderAddr: m.FromAddr,
		Epoch:      c.out("epoch", m.Epoch),
		Sender:     c.out("sender", m.From),
		Ballot:     new(peerapi.Ballot),
		FirstSlot:  c.out("first slot", m.Slot),
		Probe:      m.Probe,
	}
	c.ballotOut("ballot", r.Ballot, m.Ballot)
	if c.err != nil {
		return nil, fmt.Errorf("prepare to thrift: %w", c.err)
	}
	return r, nil
}

// PrepareFromThrift converts a PrepareRequest into a MsgPrepare.
func PrepareFromThrift(r *peerapi.PrepareRequest) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("prepare from thrift: request: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:     peer.MsgPrepare,
		FromAddr: r.SenderAddr,
		Epoch:    c.in("epoch", r.Epoch),
		From:     c.in("sender", r.Sender),
		Ballot:   c.ballotIn("ballot", r.Ballot),
		Slot:     c.in("first slot", r.FirstSlot),
		Probe:    r.Probe,
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("prepare from thrift: %w", c.err)
	}
	return m, nil
}

// PromiseToThrift converts a MsgPromise.
func PromiseToThrift(m peer.Message) (*peerapi.Promise, error) {
	var c conv
	c.wantType(m, peer.MsgPromise)
	r := &peerapi.Promise{
		Epoch:     c.out("epoch", m.Epoch),
		Probe:     m.Probe,
		Sender:    c.out("sender", m.From),
		Ok:        m.OK,
		Promised:  new(peerapi.Ballot),
		Accepted:  c.entriesOut(m.Entries),
		Chosen:    c.out("chosen", m.Commit),
		Compacted: c.out("compacted", m.Snapshot),
	}
	c.ballotOut("promised", r.Promised, m.Ballot)
	if c.err != nil {
		return nil, fmt.Errorf("promise to thrift: %w", c.err)
	}
	return r, nil
}

// PromiseFromThrift converts a Promise into a MsgPromise. From is the sender; To
// and Token are the caller's to fill in.
func PromiseFromThrift(r *peerapi.Promise) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("promise from thrift: reply: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:     peer.MsgPromise,
		Epoch:    c.in("epoch", r.Epoch),
		From:     c.in("sender", r.Sender),
		OK:       r.Ok,
		Ballot:   c.ballotIn("promised", r.Promised),
		Entries:  c.entriesIn(r.Accepted),
		Commit:   c.in("chosen", r.Chosen),
		Probe:    r.Probe,
		Snapshot: c.in("compacted", r.Compacted),
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("promise from thrift: %w", c.err)
	}
	return m, nil
}

// AcceptToThrift converts a MsgAccept.
func AcceptToThrift(m peer.Message) (*peerapi.AcceptRequest, error) {
	var c conv
	c.wantType(m, peer.MsgAccept)
	r := &peerapi.AcceptRequest{
		SenderAddr: m.FromAddr,
		Epoch:      c.out("epoch", m.Epoch),
		Sender:     c.out("sender", m.From),
		Ballot:     new(peerapi.Ballot),
		Entries:    c.entriesOut(m.Entries),
		Commit:     c.out("commit", m.Commit),
		RoundTrip:  c.out("round trip", m.RoundTrip),
	}
	c.ballotOut("ballot", r.Ballot, m.Ballot)
	if c.err != nil {
		return nil, fmt.Errorf("accept to thrift: %w", c.err)
	}
	return r, nil
}

// AcceptFromThrift converts an AcceptRequest into a MsgAccept.
func AcceptFromThrift(r *peerapi.AcceptRequest) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("accept from thrift: request: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:      peer.MsgAccept,
		FromAddr:  r.SenderAddr,
		Epoch:     c.in("epoch", r.Epoch),
		From:      c.in("sender", r.Sender),
		Ballot:    c.ballotIn("ballot", r.Ballot),
		Entries:   c.entriesIn(r.Entries),
		Commit:    c.in("commit", r.Commit),
		RoundTrip: c.in("round trip", r.RoundTrip),
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("accept from thrift: %w", c.err)
	}
	return m, nil
}

// AcceptedToThrift converts a MsgAccepted.
func AcceptedToThrift(m peer.Message) (*peerapi.Accepted, error) {
	var c conv
	c.wantType(m, peer.MsgAccepted)
	r := &peerapi.Accepted{
		Epoch:     c.out("epoch", m.Epoch),
		Sender:    c.out("sender", m.From),
		Ok:        m.OK,
		Promised:  new(peerapi.Ballot),
		Chosen:    c.out("chosen", m.Commit),
		RoundTrip: c.out("round trip", m.RoundTrip),
	}
	c.ballotOut("promised", r.Promised, m.Ballot)
	if c.err != nil {
		return nil, fmt.Errorf("accepted to thrift: %w", c.err)
	}
	return r, nil
}

// AcceptedFromThrift converts an Accepted into a MsgAccepted. From is the sender;
// To and Token are the caller's to fill in.
func AcceptedFromThrift(r *peerapi.Accepted) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("accepted from thrift: reply: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:      peer.MsgAccepted,
		Epoch:     c.in("epoch", r.Epoch),
		From:      c.in("sender", r.Sender),
		OK:        r.Ok,
		Ballot:    c.ballotIn("promised", r.Promised),
		Commit:    c.in("chosen", r.Chosen),
		RoundTrip: c.in("round trip", r.RoundTrip),
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("accepted from thrift: %w", c.err)
	}
	return m, nil
}

// ExecuteToThrift converts a MsgExecute.
func ExecuteToThrift(m peer.Message) (*peerapi.ExecuteRequest, error) {
	var c conv
	c.wantType(m, peer.MsgExecute)
	r := &peerapi.ExecuteRequest{
		SenderAddr: m.FromAddr,
		Epoch:      c.out("epoch", m.Epoch),
		Sender:     c.out("sender", m.From),
		Ballot:     new(peerapi.Ballot),
		Entries:    c.entriesOut(m.Entries),
		Commit:     c.out("commit", m.Commit),
		Snapshot:   c.out("snapshot", m.Snapshot),
	}
	c.ballotOut("ballot", r.Ballot, m.Ballot)
	if c.err != nil {
		return nil, fmt.Errorf("execute to thrift: %w", c.err)
	}
	return r, nil
}

// ExecuteFromThrift converts an ExecuteRequest into a MsgExecute.
func ExecuteFromThrift(r *peerapi.ExecuteRequest) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("execute from thrift: request: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:     peer.MsgExecute,
		FromAddr: r.SenderAddr,
		Epoch:    c.in("epoch", r.Epoch),
		From:     c.in("sender", r.Sender),
		Ballot:   c.ballotIn("ballot", r.Ballot),
		Entries:  c.entriesIn(r.Entries),
		Commit:   c.in("commit", r.Commit),
		Snapshot: c.in("snapshot", r.Snapshot),
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("execute from thrift: %w", c.err)
	}
	return m, nil
}

// ExecutedToThrift converts a MsgExecuted.
func ExecutedToThrift(m peer.Message) (*peerapi.Executed, error) {
	var c conv
	c.wantType(m, peer.MsgExecuted)
	r := &peerapi.Executed{
		Epoch:  c.out("epoch", m.Epoch),
		Sender: c.out("sender", m.From),
		Chosen: c.out("chosen", m.Commit),
	}
	if c.err != nil {
		return nil, fmt.Errorf("executed to thrift: %w", c.err)
	}
	return r, nil
}

// ExecutedFromThrift converts an Executed into a MsgExecuted. From is the sender;
// To and Token are the caller's to fill in.
func ExecutedFromThrift(r *peerapi.Executed) (peer.Message, error) {
	if r == nil {
		return peer.Message{}, fmt.Errorf("executed from thrift: reply: %w", ErrMissingField)
	}
	var c conv
	m := peer.Message{
		Type:   peer.MsgExecuted,
		Epoch:  c.in("epoch", r.Epoch),
		From:   c.in("sender", r.Sender),
		Commit: c.in("chosen", r.Chosen),
	}
	if c.err != nil {
		return peer.Message{}, fmt.Errorf("executed from thrift: %w", c.err)
	}
	return m, nil
}

// Inquiry is a replica's answer to inquire: what a replica starting without its
// acceptor state must know before it votes (see peer.Durable.RebuildTo).
type Inquiry struct {
	From     uint64
	Promised peer.Ballot // highest ballot promised or accepted at
	Highest  uint64      // highest slot accepted, applied or being rebuilt to
	Starting bool        // the replica is starting without state itself
	Epoch    uint64      // the configuration it is in; 0: none yet
	Members  []uint64    // that configuration's members
	// StartNonce: while Starting, a random number the replica's process chose
	// when it started.
	StartNonce uint64
	// FoundedWith: the asker's StartNonce as this replica heard it in the round
	// in which it founded the cluster; 0 if it did not.
	FoundedWith uint64
}

// InquiryToThrift converts an Inquiry.
func InquiryToThrift(q Inquiry) (*peerapi.Inquiry, error) {
	var c conv
	r := &peerapi.Inquiry{
		Sender:      c.out("sender", q.From),
		Promised:    new(peerapi.Ballot),
		Highest:     c.out("highest", q.Highest),
		Starting:    q.Starting,
		Epoch:       c.out("epoch", q.Epoch),
		StartNonce:  c.out("start nonce", q.StartNonce),
		FoundedWith: c.out("founded with", q.FoundedWith),
	}
	for _, m := range q.Members {
		r.Members = append(r.Members, c.out("member", m))
	}
	c.ballotOut("promised", r.Promised, q.Promised)
	if c.err != nil {
		return nil, fmt.Errorf("inquiry to thrift: %w", c.err)
	}
	return r, nil
}

// InquiryFromThrift converts an Inquiry reply.
func InquiryFromThrift(r *peerapi.Inquiry) (Inquiry, error) {
	if r == nil {
		return Inquiry{}, fmt.Errorf("inquiry from thrift: reply: %w", ErrMissingField)
	}
	var c conv
	q := Inquiry{
		From:        c.in("sender", r.Sender),
		Promised:    c.ballotIn("promised", r.Promised),
		Highest:     c.in("highest", r.Highest),
		Starting:    r.Starting,
		Epoch:       c.in("epoch", r.Epoch),
		StartNonce:  c.in("start nonce", r.StartNonce),
		FoundedWith: c.in("founded with", r.FoundedWith),
	}
	for _, m := range r.Members {
		q.Members = append(q.Members, c.in("member", m))
	}
	if c.err != nil {
		return Inquiry{}, fmt.Errorf("inquiry from thrift: %w", c.err)
	}
	return q, nil
}
