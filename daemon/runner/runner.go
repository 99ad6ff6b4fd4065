// Package runner runs a sync function no more often than a minimum
// interval, at least once per period, and again with back-off after a
// failure; bursts of triggers merge into one run.
package runner

import (
	"context"
	"time"
)

// SyncFunc does one sync. full asks for a complete resync: periodic, or
// the first run after a failure.
type SyncFunc func(full bool) error

// Runner is a bounded-frequency runner in the style of kube-proxy's.
type Runner struct {
	fn         SyncFunc
	minGap     time.Duration
	period     time.Duration
	maxBackoff time.Duration
	kick       chan struct{}
}

// New returns a runner; call Run to start it. A period of 0 means no
// periodic syncs: only the first one, triggered ones and retries.
func New(fn SyncFunc, minInterval, period time.Duration) *Runner {
	return &Runner{fn: fn, minGap: minInterval, period: period, maxBackoff: 30 * time.Second, kick: make(chan struct{}, 1)}
}

// Trigger asks for a sync soon. It never blocks.
func (r *Runner) Trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run syncs once (fully) at once, then on triggers, periods and retries
// until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	var (
		last     time.Time
		backoff  time.Duration
		failed   bool
		periodic = time.NewTimer(r.period)
		retry    = time.NewTimer(time.Hour)
	)
	retry.Stop()
	rearm := func() {
		if r.period > 0 {
			periodic.Reset(r.period)
		}
	}
	if r.period <= 0 {
		periodic.Stop()
	}
	defer periodic.Stop()
	defer retry.Stop()

	run := func(full bool) {
		if wait := r.minGap - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		err := r.fn(full || failed)
		if err != nil {
			failed = true
			backoff = min(max(2*backoff, time.Second), r.maxBackoff)
			retry.Reset(backoff)
			return
		}
		failed, backoff = false, 0
		retry.Stop()
		rearm()
	}

	run(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			run(false)
		case <-retry.C:
			run(true)
		case <-periodic.C:
			run(true)
			rearm()
		}
	}
}
