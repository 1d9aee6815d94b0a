package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBucketBounds(t *testing.T) {
	// Every value lies in its bucket, buckets grow with values, and a bucket is
	// at most 1/128 of its values wide.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<62 + 7} {
		i := bucket(v)
		if i < prev {
			t.Errorf("bucket(%d) = %d, below the previous %d", v, i, prev)
		}
		prev = i
		hi := bucketHigh(i)
		lo := int64(0)
		if i > 0 {
			lo = bucketHigh(i-1) + 1
		}
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if width := hi - lo + 1; width > 1 && float64(width) > float64(lo)/128+1 {
			t.Errorf("bucket %d [%d, %d] wider than 1/128 of its values", i, lo, hi)
		}
	}
	if i := bucket(1<<63 - 1); i >= nBuckets {
		t.Errorf("largest value's bucket %d >= %d", i, nBuckets)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		want   Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []time.Duration{42 * time.Microsecond},
			Summary{Count: 1, MinUS: 42, MeanUS: 42, P50US: 42, P90US: 42, P99US: 42, P999US: 42, MaxUS: 42}},
		{"small exact values", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			Summary{Count: 10, MinUS: 0.001, MeanUS: 0.0055, P50US: 0.005, P90US: 0.009, P99US: 0.010, P999US: 0.010, MaxUS: 0.010}},
		{"negative counts as zero", []time.Duration{-5, 0},
			Summary{Count: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistogram()
			for _, v := range tc.values {
				h.Record(v)
			}
			if diff := cmp.Diff(tc.want, h.Summary()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQuantileAccuracy compares against exact percentiles of sorted samples.
func TestQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var vs []time.Duration
	for range 100_000 {
		// Log-uniform from 1 us to 100 ms, like round-trip times.
		v := time.Duration(1e3 * math.Pow(10, rng.Float64()*5))
		vs = append(vs, v)
		h.Record(v)
	}
	slices.Sort(vs)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vs[max(int(q*float64(len(vs)))-1, 0)]
		got := h.Quantile(q)
		if rel := float64(got-exact) / float64(exact); rel < 0 || rel > 1.0/128 {
			t.Errorf("q%.3f = %v, exact %v: off by %.4f", q, got, exact, rel)
		}
	}
}

func TestMerge(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	if diff := cmp.Diff(all.Summary(), a.Summary()); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
}
