package peer

import "math/bits"

// quorum tracks which members have answered, as a bit set over member positions.
type quorum struct {
	votes uint64
}

func (q *quorum) add(pos int) { q.votes |= 1 << uint(pos) }

func (q quorum) has(pos int) bool { return q.votes&(1<<uint(pos)) != 0 }

func (q quorum) count() int { return bits.OnesCount64(q.votes) }

// majority is the size of the smallest majority of n members: any two majorities
// share at least one member, which is what makes a chosen value unique.
func majority(n int) int { return n/2 + 1 }
