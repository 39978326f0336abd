package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram keeps subBuckets linear buckets per power of two above
// 2*subBuckets ns, and one bucket per nanosecond below, so a recorded value is off
// by less than 1/subBuckets of itself. Values at or above 2^maxBits ns (about 4.9
// hours) are clamped.
const (
	subBits    = 6
	subBuckets = 1 << subBits
	maxBits    = 44
	numBuckets = (maxBits - subBits + 1) * subBuckets
)

// Histogram records latencies in log-spaced buckets, as HdrHistogram does: Record
// is a few arithmetic operations and one increment, with no allocation after the
// first, so each worker keeps its own and they are merged at the end. The zero
// value is empty and ready to use; a Histogram is not safe for concurrent use.
type Histogram struct {
	counts []uint64 // numBuckets long once anything has been recorded
	n      uint64
	sum    float64 // ns, for the mean
	min    int64   // ns, valid when n > 0
	max    int64   // ns, valid when n > 0
}

// bucketOf returns the bucket index of v ns, for v in [0, 2^maxBits).
func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketBounds returns the smallest and largest value (ns) of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < 2*subBuckets {
		return uint64(i), uint64(i)
	}
	shift := i/subBuckets - 1
	lo = uint64(i%subBuckets+subBuckets) << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one latency; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if v >= 1<<maxBits {
		v = 1<<maxBits - 1
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest value recorded, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest value recorded, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average of the values recorded; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at or below which a fraction q of the recorded values
// lie (q=0.99 is p99), as the upper end of its bucket but within [Min, Max]. It is
// 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(max(q, 0) * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return time.Duration(min(max(int64(hi), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Buckets calls fn for every non-empty bucket in increasing order, with the
// bucket's smallest and largest value and its count.
func (h *Histogram) Buckets(fn func(lo, hi time.Duration, n uint64)) {
	for i, c := range h.counts {
		if c > 0 {
			lo, hi := bucketBounds(i)
			fn(time.Duration(lo), time.Duration(hi), c)
		}
	}
}
