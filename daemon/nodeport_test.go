package daemon

import (
	"testing"
	"time"

	"github.com/hivelet/hivelet/datapath"
)

func TestNextGCInterval(t *testing.T) {
	const big = 1 << 18
	for _, c := range []struct {
		name string
		prev time.Duration
		st   datapath.CTGCStats
		want time.Duration
	}{
		{"idle map: back off", 30 * time.Second, datapath.CTGCStats{CTMax: big, NATMax: big}, time.Minute},
		{"backs off up to the cap", 4 * time.Minute, datapath.CTGCStats{CT: 100, CTMax: big, NATMax: big}, gcMaxInterval},
		{"high churn: sooner", 30 * time.Second, datapath.CTGCStats{CT: 100, Deleted: 100, CTMax: big, NATMax: big}, 15 * time.Second},
		{"not below the floor", gcMinInterval, datapath.CTGCStats{CT: 1, Deleted: 100, CTMax: big, NATMax: big}, gcMinInterval},
		{"moderate churn: keep", 30 * time.Second, datapath.CTGCStats{CT: 90, Deleted: 10, CTMax: big, NATMax: big}, 30 * time.Second},
		{"nearly full: at once", 4 * time.Minute, datapath.CTGCStats{CT: 900, CTMax: 1000, NATMax: big}, gcMinInterval},
	} {
		if got := nextGCInterval(c.prev, c.st); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
