package harness

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) []time.Duration {
		var ds []time.Duration
		for i := n; i >= 1; i-- { // unsorted on purpose
			ds = append(ds, time.Duration(i)*time.Millisecond)
		}
		return ds
	}
	for _, c := range []struct {
		n    int
		p    float64
		want int
	}{{100, 0.99, 99}, {100, 0.5, 50}, {100, 1, 100}, {30, 0.99, 30}, {30, 0.5, 15}, {1, 0.99, 1}} {
		if got := Percentile(ms(c.n), c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("p%v of 1..%d ms = %v, want %d ms", c.p*100, c.n, got, c.want)
		}
	}
}
