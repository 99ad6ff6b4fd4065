package daemon

import (
	"testing"
	"time"
)

// A pacer at share s sleeps (1-s)/s times the work since its last pause.
func TestPacer(t *testing.T) {
	now := time.Unix(0, 0)
	var slept []time.Duration
	p := &pacer{share: 0.25, now: func() time.Time { return now }, sleep: func(d time.Duration) {
		slept = append(slept, d)
		now = now.Add(d)
	}, last: now}
	for _, work := range []time.Duration{10 * time.Millisecond, 0, 4 * time.Millisecond} {
		now = now.Add(work)
		p.pause()
	}
	want := []time.Duration{30 * time.Millisecond, 0, 12 * time.Millisecond}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	for i := range want {
		if slept[i] != want[i] {
			t.Errorf("pause %d slept %v, want %v (work at a quarter of the time)", i, slept[i], want[i])
		}
	}
}
