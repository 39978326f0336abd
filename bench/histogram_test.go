package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsTileTheRange(t *testing.T) {
	var next uint64
	for i := range numBuckets {
		lo, hi := bucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		// The width of a bucket is under 1/subBuckets of its values.
		if lo > 0 && float64(hi-lo) >= float64(lo)/subBuckets {
			t.Fatalf("bucket %d [%d, %d] is too wide", i, lo, hi)
		}
		next = hi + 1
	}
	if next != 1<<maxBits {
		t.Fatalf("buckets end at %d, want %d", next, uint64(1)<<maxBits)
	}
}

func TestHistogramQuantilesMatchSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var exact []time.Duration
	for range 100_000 {
		// Log-normal around 2 ms, as latencies are.
		d := time.Duration(math.Exp(rng.NormFloat64()*1.2) * 2e6)
		h.Record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(math.Ceil(q*float64(len(exact)))), 1)
		want := exact[rank-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/subBuckets {
			t.Errorf("Quantile(%v) = %v, exact %v: off by %.2f%%", q, got, want, 100*rel)
		}
	}
	if h.Min() != exact[0] || h.Max() != exact[len(exact)-1] || h.Count() != uint64(len(exact)) {
		t.Errorf("min %v max %v count %d; want %v, %v, %d", h.Min(), h.Max(), h.Count(), exact[0], exact[len(exact)-1], len(exact))
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // an empty one changes nothing
	for _, q := range []float64{0.1, 0.5, 0.99} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("Quantile(%v): merged %v, recorded together %v", q, m.Quantile(q), all.Quantile(q))
		}
	}
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || m.Mean() != all.Mean() {
		t.Errorf("merged count/min/max/mean %d %v %v %v, want %d %v %v %v",
			m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram reports non-zero figures")
	}
	h.Record(-time.Second)
	h.Record(1000 * time.Hour) // over the range: clamped
	if h.Min() != 0 {
		t.Errorf("negative duration recorded as %v, want 0", h.Min())
	}
	if h.Max() != time.Duration(1<<maxBits-1) {
		t.Errorf("huge duration recorded as %v, want the clamp %v", h.Max(), time.Duration(1<<maxBits-1))
	}
	var n uint64
	h.Buckets(func(lo, hi time.Duration, c uint64) { n += c })
	if n != 2 {
		t.Errorf("Buckets counted %d values, want 2", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	d := make([]time.Duration, 1024)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range d {
		d[i] = time.Duration(rng.Int64N(int64(50 * time.Millisecond)))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.Record(d[i&1023])
	}
}

func BenchmarkHistogramQuantile(b *testing.B) {
	var h Histogram
	for i := range 100_000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for b.Loop() {
		h.Quantile(0.99)
	}
}
