package peer

import "testing"

// A pre-vote only asks whether the acceptors would promise (Raft thesis, 9.6), so
// an answer to a probe reports no entries. One that does anyway (an acceptor that
// is faulty, or not this implementation) must not crash the candidate: it counts
// as a promise to the pre-vote, and the prepare that follows asks for the
// entries again.
func TestProbeAnswerReportingEntries(t *testing.T) {
	r := newTestReplica(t, Durable{})
	r.Campaign()
	rd := r.Ready()
	r.Advance(rd)
	var probe Message
	for _, m := range rd.Messages {
		if m.Type == MsgPrepare && m.Probe && m.To == 2 {
			probe = m
		}
	}
	if probe.Type == 0 {
		t.Fatalf("no probe to replica 2 in %+v", rd.Messages)
	}
	r.Step(Message{Type: MsgPromise, From: 2, To: 1, OK: true, Probe: true, Ballot: probe.Ballot,
		Entries: commandEntries(1, 3, Ballot{Round: 1, ID: 2})})
	rd = r.Ready()
	r.Advance(rd)
	asked := map[uint64]bool{}
	for _, m := range rd.Messages {
		if m.Type == MsgPrepare && !m.Probe {
			asked[m.To] = true
		}
	}
	if !asked[2] || !asked[3] {
		t.Fatalf("after a majority answered the pre-vote, prepares went to %v; want 2 and 3", asked)
	}
}
