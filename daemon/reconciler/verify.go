package reconciler

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hivelet/hivelet/datapath"
)

// Verify reads the maps and compares them with the reconciler's record of
// what it wrote: the periodic check for drift (entries written or deleted
// by someone else). It reads without holding up syncs (at 100k Services
// the read takes a second or more, and a change must not wait for it);
// whatever a sync writes meanwhile is left out of the comparison, since
// the read may have seen it before or after. It returns the first few
// differences; any means the caller should run a full sync, which
// repairs them.
//
// Only what Dump reads is compared: the services, backends, reverse-NAT
// and affinity-match maps (not Maglev tables or source ranges).
func (r *Reconciler) Verify() ([]string, error) {
	r.mu.Lock()
	if r.state == nil {
		r.mu.Unlock()
		return nil, nil // a full sync is due anyway
	}
	r.touched = newTouchedSet()
	r.mu.Unlock()

	st, err := r.lbmap.Dump()

	r.mu.Lock()
	defer r.mu.Unlock()
	touched := r.touched
	r.touched = nil
	if err != nil {
		return nil, fmt.Errorf("read LB maps: %w", err)
	}
	if r.state == nil {
		return nil, nil // a sync failed meanwhile: a full one is due
	}
	return diff(r.state, st, touched, 5), nil
}

// touchedSet is what syncs wrote while a Verify read the maps.
type touchedSet struct {
	fes      map[datapath.Frontend]struct{}
	backends map[datapath.BackendID]struct{}
	revnats  map[datapath.RevNatID]struct{}
	affinity bool
}

func newTouchedSet() *touchedSet {
	return &touchedSet{fes: map[datapath.Frontend]struct{}{}, backends: map[datapath.BackendID]struct{}{},
		revnats: map[datapath.RevNatID]struct{}{}}
}

func (t *touchedSet) add(ch *datapath.Changes) {
	for _, u := range ch.UpsertServices {
		t.fes[u.Service.Frontend] = struct{}{}
	}
	for _, d := range ch.DeleteServices {
		t.fes[d.Frontend] = struct{}{}
	}
	for _, b := range ch.UpsertBackends {
		t.backends[b.ID] = struct{}{}
	}
	for _, id := range ch.DeleteBackends {
		t.backends[id] = struct{}{}
	}
	for _, rn := range ch.UpsertRevNats {
		t.revnats[rn.ID] = struct{}{}
	}
	for _, id := range ch.DeleteRevNats {
		t.revnats[id] = struct{}{}
	}
	t.affinity = t.affinity || len(ch.UpsertAffinity) > 0 || len(ch.DeleteAffinity) > 0
}

// diff describes up to limit ways the maps' content (got) differs from
// the record (want), leaving out what was touched while got was read.
func diff(want *realized, got *datapath.State, touched *touchedSet, limit int) []string {
	var out []string
	add := func(format string, args ...any) bool {
		out = append(out, fmt.Sprintf(format, args...))
		return len(out) < limit
	}
	skipFE := func(f datapath.Frontend) bool { _, ok := touched.fes[f]; return ok }
	for f, w := range want.fes {
		if skipFE(f) {
			continue
		}
		g := got.Services[f]
		switch {
		case g == nil:
			if !add("frontend %s missing", f) {
				return out
			}
		case w.complete == g.Incomplete || w.complete && (w.revnat != g.RevNat || w.flags != g.Flags ||
			w.affinity != g.AffinityTimeout || w.alg != g.Algorithm || !slices.Equal(w.backends, g.Backends)):
			if !add("frontend %s differs", f) {
				return out
			}
		}
	}
	for f := range got.Services {
		if _, ok := want.fes[f]; !ok && !skipFE(f) && !add("frontend %s not written by this agent", f) {
			return out
		}
	}
	for id, w := range want.backends {
		if _, t := touched.backends[id]; t {
			continue
		}
		if g, ok := got.Backends[id]; !ok || keyOf(g) != w.k {
			if !add("backend %d missing or changed", id) {
				return out
			}
		}
	}
	for id := range got.Backends {
		_, t := touched.backends[id]
		if _, ok := want.backends[id]; !ok && !t && !add("backend %d not written by this agent", id) {
			return out
		}
	}
	for id, w := range want.revnats {
		if _, t := touched.revnats[id]; !t && got.RevNats[id] != w && !add("reverse-NAT %d missing or changed", id) {
			return out
		}
	}
	for id := range got.RevNats {
		_, t := touched.revnats[id]
		if _, ok := want.revnats[id]; !ok && !t && !add("reverse-NAT %d not written by this agent", id) {
			return out
		}
	}
	if !touched.affinity && !maps.Equal(want.affm, got.Affinity) {
		add("affinity-match entries differ")
	}
	return out
}
