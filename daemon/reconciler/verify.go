package reconciler

import (
	"fmt"
	"maps"
	"slices"
)

// Verify reads the maps and compares them with the reconciler's record of
// what it wrote: the periodic check for drift (someone else wrote or
// deleted entries). It reads without holding up syncs (at 100k Services
// the read takes seconds, and a change must not wait for it); when a sync
// ran meanwhile the comparison would be meaningless, and Verify reports
// it inconclusive. differences lists the first few mismatches; any means
// the caller should run a full sync, which repairs them.
//
// Only what Dump reads is compared: the services, backends, reverse-NAT
// and affinity-match maps (not Maglev tables or source ranges).
func (r *Reconciler) Verify() (differences []string, conclusive bool, err error) {
	r.mu.Lock()
	if r.state == nil {
		r.mu.Unlock()
		return nil, true, nil // a full sync is due anyway
	}
	syncs, hint := r.syncs, r.lastFrontends
	r.mu.Unlock()

	st, err := r.lbmap.Dump()
	if err != nil {
		return nil, false, fmt.Errorf("read LB maps: %w", err)
	}
	inMaps := fromDump(st, hint)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.syncs != syncs || r.state == nil {
		return nil, false, nil
	}
	return diff(r.state, inMaps, 5), true, nil
}

// diff describes up to limit ways the maps' content (got) differs from
// the record (want).
func diff(want, got *realized, limit int) []string {
	var out []string
	add := func(format string, args ...any) bool {
		out = append(out, fmt.Sprintf(format, args...))
		return len(out) < limit
	}
	for f, w := range want.fes {
		g, ok := got.fes[f]
		switch {
		case !ok:
			if !add("frontend %s missing", f) {
				return out
			}
		case w.complete != g.complete || w.revnat != g.revnat || w.flags != g.flags || w.affinity != g.affinity ||
			w.alg != g.alg || !slices.Equal(w.backends, g.backends):
			if !add("frontend %s differs", f) {
				return out
			}
		}
	}
	for f := range got.fes {
		if _, ok := want.fes[f]; !ok && !add("frontend %s not written by this agent", f) {
			return out
		}
	}
	for id, w := range want.backends {
		if g, ok := got.backends[id]; !ok || g.k != w.k {
			if !add("backend %d missing or changed", id) {
				return out
			}
		}
	}
	for id := range got.backends {
		if _, ok := want.backends[id]; !ok && !add("backend %d not written by this agent", id) {
			return out
		}
	}
	if !maps.Equal(want.revnats, got.revnats) && !add("reverse-NAT entries differ") {
		return out
	}
	if !maps.Equal(want.affm, got.affm) {
		add("affinity-match entries differ")
	}
	return out
}
