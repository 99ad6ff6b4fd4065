package harness

import (
	"math"
	"slices"
	"time"
)

// Percentile is the nearest-rank p-th percentile of ds (0 < p ≤ 1): the
// smallest sample with at least p of all samples at or below it. The
// p99 of 100 samples is the 99th smallest, not the largest.
func Percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	rank := int(math.Ceil(p * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}
