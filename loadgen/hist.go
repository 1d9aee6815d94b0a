package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: every power of two is split into
// 2^subBits buckets, so a recorded value is known to within 1/128 (0.8%).
const subBits = 7

const (
	subCount = 1 << subBits
	nBuckets = (64 - subBits) * subCount
)

// Histogram counts non-negative durations in log-linear buckets (the layout
// of an HDR histogram with two to three significant digits): fixed memory,
// constant-time Record, exact counts, min, max and mean, percentiles within
// 0.8%. Histograms from several goroutines are combined with Merge. The zero
// value is not usable; use NewHistogram.
type Histogram struct {
	counts   []uint64
	n        uint64
	sum      float64
	min, max int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, nBuckets), min: math.MaxInt64}
}

// bucket returns v's bucket: values below subCount have one each, above it
// every power of two has subCount buckets.
func bucket(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	top := int(v >> shift) // in [subCount, 2*subCount)
	return (shift+1)*subCount + top - subCount
}

// bucketHigh is the largest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	top := int64(i%subCount + subCount)
	return (top+1)<<shift - 1
}

// Record counts one value; negative values count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucket(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the value below or at which a fraction q (0 to 1) of the
// recorded values lie: the upper end of the bucket holding that rank,
// clamped to the recorded minimum and maximum. It is 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(min(max(q, 0), 1) * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Summary is a histogram's figures in microseconds, for JSON.
type Summary struct {
	Count  uint64  `json:"count"`
	MinUS  float64 `json:"min_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P90US  float64 `json:"p90_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`
}

// Summary returns the usual percentiles.
func (h *Histogram) Summary() Summary {
	if h.n == 0 {
		return Summary{}
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Summary{
		Count:  h.n,
		MinUS:  us(time.Duration(h.min)),
		MeanUS: h.sum / float64(h.n) / 1e3,
		P50US:  us(h.Quantile(0.50)),
		P90US:  us(h.Quantile(0.90)),
		P99US:  us(h.Quantile(0.99)),
		P999US: us(h.Quantile(0.999)),
		MaxUS:  us(time.Duration(h.max)),
	}
}
