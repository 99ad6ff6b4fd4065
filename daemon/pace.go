package daemon

import "time"

// checkCPUShare is the share of one CPU the periodic check of the LB maps
// may take. Run flat out it is ~1.5 s of work at 100k Services, and every
// change it meets waits for the CPU with it (the API server, the agent's
// syncs and the check share the node's CPUs): spread out, it still ends
// well within a sync period and a change meets at most one small piece.
const checkCPUShare = 0.25

// pacer spaces a background task's work out: each pause sleeps so that the
// work done since the previous pause is at most share of the time.
type pacer struct {
	share float64
	now   func() time.Time
	sleep func(time.Duration)
	last  time.Time
}

func newPacer(share float64) *pacer {
	return &pacer{share: share, now: time.Now, sleep: time.Sleep, last: time.Now()}
}

func (p *pacer) pause() {
	work := p.now().Sub(p.last)
	p.sleep(time.Duration(float64(work) * (1 - p.share) / p.share))
	p.last = p.now()
}
