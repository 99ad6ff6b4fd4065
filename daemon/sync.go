package daemon

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hivelet/hivelet/daemon/health"
	"github.com/hivelet/hivelet/daemon/healthcheck"
	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/daemon/metrics"
	"github.com/hivelet/hivelet/daemon/reconciler"
	"github.com/hivelet/hivelet/daemon/tracker"
	"github.com/hivelet/hivelet/datapath"
)

// syncer is the runner's sync function: changes from the tracker into the
// reconciler, outcomes into metrics, health and the log.
type syncer struct {
	rec     *reconciler.Reconciler
	tracker *tracker.Tracker
	metrics *metrics.Metrics
	health  *health.Tracker
	hcs     *healthcheck.Servers
	log     *slog.Logger
	loaded  bool // the first successful sync has happened
	// forceFull asks the next sync to be a full one (drift found).
	forceFull atomic.Bool
}

func (s *syncer) sync(full bool) error {
	start := time.Now()
	full = s.forceFull.Swap(false) || full || s.rec.NeedsFull()
	if full {
		// Each Service has one frontend or more.
		svcs, _ := s.tracker.Counts()
		s.rec.ExpectFrontends(svcs)
	}
	changes, triggers := s.tracker.Take(full)
	seen := map[lb.ServiceName]bool{}
	stats, err := s.rec.Sync(s.withHealth(changes, full, seen), full)
	took := time.Since(start)
	s.metrics.SyncDuration.Observe(took.Seconds())
	s.observeUsage()
	attrs := []any{logfields.Full, stats.Full, logfields.Frontends, stats.Frontends, logfields.Upserts, stats.Upserts,
		logfields.Deletes, stats.Deletes, logfields.Backends, stats.Backends, logfields.Duration, took}
	if err != nil {
		s.metrics.SyncErrors.Inc()
		if errors.Is(err, datapath.ErrMapFull) {
			s.metrics.MapFull.Inc()
		}
		s.log.Error("Sync failed; retrying with a full sync", append(attrs, logfields.Error, err)...)
		return err
	}
	if full && s.hcs != nil {
		s.hcs.Retain(seen)
	}
	s.tracker.Touch(stats.Reoffer...)
	done := time.Now()
	s.health.Synced(start)
	s.metrics.LastSync.Set(float64(done.Unix()))
	for _, t := range triggers {
		s.metrics.NetworkProgrammingLatency.Observe(done.Sub(t).Seconds())
	}
	if full {
		s.log.Info("Synced", attrs...)
	} else {
		s.log.Debug("Synced", attrs...)
	}
	if !s.loaded {
		s.loaded = true
		gcForSteady()
	}
	return nil
}

// verifyLoop is the periodic resync. A full sync every period would hold
// every change up behind it (~0.2 s at 10k Services, seconds at 100k), so
// instead the maps are compared with what the agent wrote, without
// blocking syncs (Reconciler.Verify), and a full sync runs only when they
// differ or the check fails. trigger wakes the runner.
func (s *syncer) verifyLoop(ctx context.Context, period time.Duration, trigger func()) {
	if period <= 0 {
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		diffs, err := s.verify()
		result := "ok"
		switch {
		case err != nil:
			result = "error"
			s.log.Warn("Checking the LB maps failed; running a full sync", logfields.Error, err)
		case len(diffs) > 0:
			result = "drift"
			s.log.Warn("The LB maps differ from what the agent wrote; repairing with a full sync", logfields.Differences, diffs)
		}
		s.metrics.Verifications.WithLabelValues(result).Inc()
		if result != "ok" {
			s.forceFull.Store(true)
			trigger()
		}
	}
}

// verify runs one check. Its read of the maps is garbage the moment the
// comparison ends (~100 MB at 100k Services): under the steady GC target
// it would set off several collections in a row, each competing with the
// changes for the CPUs, so the target is loosened for the check and the
// garbage handed back to the OS at once after it, in one collection.
func (s *syncer) verify() ([]string, error) {
	setGCPercent(loadGCPercent)
	defer debug.FreeOSMemory()
	defer setGCPercent(steadyGCPercent)
	return s.rec.Verify(newPacer(checkCPUShare).pause)
}

func (s *syncer) observeUsage() {
	svcs, slices := s.tracker.Counts()
	s.metrics.Services.Set(float64(svcs))
	s.metrics.EndpointSlices.Set(float64(slices))
	u := s.rec.Usage()
	s.metrics.Frontends.Set(float64(u.Frontends))
	s.metrics.Backends.Set(float64(u.Backends))
	s.metrics.MapEntries.WithLabelValues("services").Set(float64(u.ServiceEntries))
	s.metrics.MapEntries.WithLabelValues("backends").Set(float64(u.Backends))
	s.metrics.MapEntries.WithLabelValues("revnat").Set(float64(u.RevNats))
}

func setCapacity(m *metrics.Metrics, sizes datapath.MapSizes) {
	m.MapCapacity.WithLabelValues("services").Set(float64(sizes.Services))
	m.MapCapacity.WithLabelValues("backends").Set(float64(sizes.Backends))
	m.MapCapacity.WithLabelValues("revnat").Set(float64(sizes.RevNat))
	m.MapCapacity.WithLabelValues("sock_revnat").Set(float64(sizes.SockRevNat))
}

// withHealth passes changes through, keeping the healthCheckNodePort
// servers in step; on a full sync it records which Services exist.
func (s *syncer) withHealth(changes iter.Seq[lb.Change], full bool, seen map[lb.ServiceName]bool) iter.Seq[lb.Change] {
	return func(yield func(lb.Change) bool) {
		for c := range changes {
			if s.hcs != nil {
				s.hcs.Update(c.Name, c.Health)
				if full && c.Entries != nil {
					seen[c.Name] = true
				}
			}
			if !yield(c) {
				return
			}
		}
	}
}
