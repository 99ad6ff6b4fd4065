package ctgc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hivelet/hivelet/daemon/metrics"
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
		if got := NextInterval(c.prev, c.st); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

type fakeTable struct {
	calls chan struct{}
	st    datapath.CTGCStats
	err   error
}

func (f *fakeTable) GCConntrack() (datapath.CTGCStats, error) {
	f.calls <- struct{}{}
	return f.st, f.err
}

// A collection's figures reach the metrics, and a nearly full table
// brings the next one as close as the floor allows.
func TestRunReportsAndAdapts(t *testing.T) {
	m := metrics.New()
	f := &fakeTable{calls: make(chan struct{}, 1), st: datapath.CTGCStats{CT: 900, NAT: 3, Deleted: 2, CTMax: 1000, NATMax: 1000}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		run(ctx, f, m, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Millisecond)
		close(done)
	}()
	<-f.calls
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.ConntrackGCInterval) != gcMinInterval.Seconds() {
		if time.Now().After(deadline) {
			t.Fatalf("interval %v after a nearly full table, want %v", testutil.ToFloat64(m.ConntrackGCInterval), gcMinInterval.Seconds())
		}
		time.Sleep(time.Millisecond)
	}
	if ct := testutil.ToFloat64(m.ConntrackEntries.WithLabelValues("ct")); ct != 900 {
		t.Errorf("ct entries %v, want 900", ct)
	}
	if del := testutil.ToFloat64(m.ConntrackGCDeleted); del != 2 {
		t.Errorf("deleted %v, want 2", del)
	}
	cancel()
	<-done
}
