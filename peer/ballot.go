package peer

import "fmt"

// Ballot is a proposal number. Ballots are ordered by Round, then by ID; every
// replica uses its own ID, so no two replicas ever propose with the same ballot
// ("Paxos Made Simple", section 2.2: "different proposals have different numbers").
type Ballot struct {
	Round uint64
	ID    uint64
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.ID < o.ID
}

// IsZero reports whether b is the zero ballot, lower than every ballot a replica uses.
func (b Ballot) IsZero() bool { return b == Ballot{} }

func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.ID) }

// maxBallot returns the higher of a and b.
func maxBallot(a, b Ballot) Ballot {
	if a.Less(b) {
		return b
	}
	return a
}
