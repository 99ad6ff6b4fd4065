// Package ctgc collects the datapath's expired connection-tracking and
// NAT entries, more often when churn is high and rarely when it is not.
package ctgc

import (
	"context"
	"log/slog"
	"time"

	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/metrics"
	"github.com/hivelet/hivelet/datapath"
)

// Table is the datapath as the collector uses it (a fake in tests).
type Table interface {
	GCConntrack() (datapath.CTGCStats, error)
}

// GC interval bounds: expired entries cost nothing to the programs (they
// are ignored), only LRU room, so collecting rarely is fine unless churn
// is high.
const (
	gcMinInterval   = 5 * time.Second
	gcMaxInterval   = 5 * time.Minute
	gcStartInterval = 30 * time.Second
)

// NextInterval adapts the interval to churn, as Cilium does: many
// expired entries or a nearly full map mean sooner, few mean later.
func NextInterval(prev time.Duration, st datapath.CTGCStats) time.Duration {
	total := st.CT + st.NAT + st.Deleted
	full := float64(st.CT) > 0.8*float64(st.CTMax) || float64(st.NAT) > 0.8*float64(st.NATMax)
	switch {
	case full:
		return gcMinInterval
	case total > 0 && float64(st.Deleted) > 0.25*float64(total):
		return max(gcMinInterval, prev/2)
	case float64(st.Deleted) < 0.05*float64(max(total, 1)):
		return min(gcMaxInterval, prev*2)
	}
	return prev
}

// Run collects until ctx ends, the first time gcStartInterval from now.
func Run(ctx context.Context, dp Table, m *metrics.Metrics, log *slog.Logger) {
	run(ctx, dp, m, log, gcStartInterval)
}

func run(ctx context.Context, dp Table, m *metrics.Metrics, log *slog.Logger, interval time.Duration) {
	for {
		m.ConntrackGCInterval.Set(interval.Seconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		st, err := dp.GCConntrack()
		if err != nil {
			log.Warn("Conntrack GC failed; retrying", logfields.Error, err)
			interval = gcMinInterval
			continue
		}
		m.ConntrackEntries.WithLabelValues("ct").Set(float64(st.CT))
		m.ConntrackEntries.WithLabelValues("nat").Set(float64(st.NAT))
		m.ConntrackGCDeleted.Add(float64(st.Deleted))
		interval = NextInterval(interval, st)
		log.Debug("Conntrack GC", logfields.Deleted, st.Deleted, logfields.Count, st.CT+st.NAT, logfields.Interval, interval)
	}
}
