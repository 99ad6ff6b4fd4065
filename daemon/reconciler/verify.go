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
//
// pause, when not nil, is called every few thousand entries, never with
// the lock held: the caller spaces the check out there.
func (r *Reconciler) Verify(pause func()) ([]string, error) {
	r.mu.Lock()
	if r.state == nil {
		r.mu.Unlock()
		return nil, nil // a full sync is due anyway
	}
	r.touched = newTouchedSet()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.touched = nil
		r.mu.Unlock()
	}()

	st, err := r.lbmap.Dump(pause)
	if err != nil {
		return nil, fmt.Errorf("read LB maps: %w", err)
	}
	// The comparison takes the lock a chunk at a time: at 100k Services
	// it is ~100 ms in all, and a change must not wait for all of it.
	// Entries a sync writes between chunks join the touched set.
	r.mu.Lock()
	if r.state == nil {
		r.mu.Unlock()
		return nil, nil // a sync failed meanwhile: a full one is due
	}
	c := newComparison(r.state, st)
	r.mu.Unlock()
	for {
		if done, gone := r.verifyStep(c); gone {
			return nil, nil // a sync failed meanwhile: a full one is due
		} else if done {
			return c.out, nil
		}
		if pause != nil {
			pause()
		}
	}
}

// verifyStep runs one locked step of c; gone reports a record dropped by
// a failed sync.
func (r *Reconciler) verifyStep(c *comparison) (done, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		return true, true
	}
	return c.step(r.state, r.touched, verifyChunk), false
}

// verifyChunk is how many entries one locked step of Verify compares
// (a variable for tests).
var verifyChunk = 4096

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

// comparison walks the record and a dump of the maps, a chunk at a time,
// collecting up to maxDifferences ways they differ. Key lists are taken
// at the start; each step looks the current record up, so an entry a sync
// changed since is either touched (and skipped) or compared as it is now.
type comparison struct {
	got      *datapath.State
	fes      []datapath.Frontend // the record's, then the dump's
	backends []datapath.BackendID
	revnats  []datapath.RevNatID
	phase    int // 0 record frontends, 1 dump frontends, 2 record backends, 3 dump backends, 4 revnats, 5 affinity
	pos      int
	out      []string
}

const maxDifferences = 5

func newComparison(want *realized, got *datapath.State) *comparison {
	return &comparison{got: got, fes: slices.Collect(maps.Keys(want.fes)), backends: slices.Collect(maps.Keys(want.backends)),
		revnats: slices.Collect(maps.Keys(want.revnats))}
}

func (c *comparison) add(format string, args ...any) {
	if len(c.out) < maxDifferences {
		c.out = append(c.out, fmt.Sprintf(format, args...))
	}
}

// step compares up to n entries and reports whether the walk is done.
func (c *comparison) step(want *realized, touched *touchedSet, n int) bool {
	for ; n > 0 && len(c.out) < maxDifferences; n-- {
		switch c.phase {
		case 0:
			if c.pos == len(c.fes) {
				c.next(slices.Collect(maps.Keys(c.got.Services)), nil)
				continue
			}
			f := c.fes[c.pos]
			c.pos++
			w, ok := want.fes[f]
			if _, t := touched.fes[f]; ok && !t {
				g := c.got.Services[f]
				switch {
				case g == nil:
					c.add("frontend %s missing", f)
				case w.complete == g.Incomplete || w.complete && (w.revnat != g.RevNat || w.flags != g.Flags ||
					w.affinity != g.AffinityTimeout || w.alg != g.Algorithm || !slices.Equal(w.backends, g.Backends)):
					c.add("frontend %s differs", f)
				}
			}
		case 1:
			if c.pos == len(c.fes) {
				c.next(nil, nil)
				continue
			}
			f := c.fes[c.pos]
			c.pos++
			_, t := touched.fes[f]
			if _, ok := want.fes[f]; !ok && !t {
				c.add("frontend %s not written by this agent", f)
			}
		case 2:
			if c.pos == len(c.backends) {
				c.next(nil, slices.Collect(maps.Keys(c.got.Backends)))
				continue
			}
			id := c.backends[c.pos]
			c.pos++
			w, ok := want.backends[id]
			if _, t := touched.backends[id]; ok && !t {
				if g, found := c.got.Backends[id]; !found || keyOf(g) != w.k {
					c.add("backend %d missing or changed", id)
				}
			}
		case 3:
			if c.pos == len(c.backends) {
				c.next(nil, nil)
				continue
			}
			id := c.backends[c.pos]
			c.pos++
			_, t := touched.backends[id]
			if _, ok := want.backends[id]; !ok && !t {
				c.add("backend %d not written by this agent", id)
			}
		case 4:
			if c.pos == len(c.revnats) {
				c.next(nil, nil)
				continue
			}
			id := c.revnats[c.pos]
			c.pos++
			w, ok := want.revnats[id]
			if _, t := touched.revnats[id]; ok && !t && c.got.RevNats[id] != w {
				c.add("reverse-NAT %d missing or changed", id)
			}
		default:
			for id := range c.got.RevNats {
				_, t := touched.revnats[id]
				if _, ok := want.revnats[id]; !ok && !t {
					c.add("reverse-NAT %d not written by this agent", id)
				}
			}
			if !touched.affinity && !maps.Equal(want.affm, c.got.Affinity) {
				c.add("affinity-match entries differ")
			}
			return true
		}
	}
	return len(c.out) >= maxDifferences
}

// next moves to the following phase; fes or backends, when given, are
// the keys it walks.
func (c *comparison) next(fes []datapath.Frontend, backends []datapath.BackendID) {
	c.phase++
	c.pos = 0
	if fes != nil {
		c.fes = fes
	}
	if backends != nil {
		c.backends = backends
	}
}
