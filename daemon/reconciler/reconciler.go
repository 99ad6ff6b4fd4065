// Package reconciler brings the load-balancing maps to the desired state
// by diff. It is the only writer of the maps. Updates are idempotent,
// bookkeeping is trusted only after the kernel accepted a batch, and after
// any failure the next sync re-reads the maps and diffs everything.
//
// The desired state is not stored here: each sync receives the changed
// Services' frontends (all of them on a full sync) from the change
// tracker, which already holds the model.
package reconciler

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"

	lb "github.com/hivelet/hivelet/daemon/loadbalancer"
	"github.com/hivelet/hivelet/daemon/logfields"
	"github.com/hivelet/hivelet/datapath"
)

// chunkFrontends bounds one batch handed to the map writer. While the
// writer is in the kernel with one batch, the diff of the next runs.
const chunkFrontends = 1024

// Reconciler owns the LB maps.
type Reconciler struct {
	lbmap datapath.LBMap
	log   *slog.Logger
	chunk int // frontends per batch; chunkFrontends except in tests
	// maglevSize is the slot count of Maglev tables; it must match the
	// datapath's.
	maglevSize int

	mu sync.Mutex
	// byService lists the frontends each Service owns. Guarded by mu.
	byService map[lb.ServiceName][]datapath.Frontend
	// state is nil until the first sync and after any failure. Guarded by mu.
	state *realized
	// lastFrontends sizes the tables of the next full sync. Guarded by mu.
	lastFrontends int
	// losers lists, per frontend, the Services that claimed it and lost
	// to another: when the winner lets go, they are offered it again
	// (Stats.Reoffer). Rebuilt by full syncs. Guarded by mu.
	losers map[datapath.Frontend]map[lb.ServiceName]struct{}
	// touched collects what syncs write while Verify reads the maps; nil
	// otherwise. Guarded by mu.
	touched *touchedSet
}

// Stats describes one sync.
type Stats struct {
	Full      bool
	Frontends int // frontends examined
	Upserts   int // services written
	Deletes   int // services removed
	Backends  int // backends written
	// Reoffer lists Services that lost a frontend to another Service
	// which has now let go of it: sync them again so one takes it.
	Reoffer []lb.ServiceName
}

// New returns a reconciler for lbmap.
func New(lbmap datapath.LBMap, log *slog.Logger) *Reconciler {
	return &Reconciler{lbmap: lbmap, log: log, chunk: chunkFrontends, maglevSize: datapath.DefaultMaglevTableSize}
}

// ExpectFrontends says how many frontends the next full sync will likely
// write, when the caller knows better than the last sync (the first one:
// at 10k Services its tables would otherwise grow from empty, 11 MB of
// rehashing garbage on the path from start to programmed).
func (r *Reconciler) ExpectFrontends(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastFrontends = max(r.lastFrontends, n)
}

// SetMaglevTableSize sets the Maglev table size (the datapath's
// MaglevTableSize) before the first sync.
func (r *Reconciler) SetMaglevTableSize(m int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maglevSize = m
}

// NeedsFull reports whether the next Sync must be a full one: before the
// first sync and after a failure.
func (r *Reconciler) NeedsFull() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == nil
}

// Sync writes what the changes need. With full set, changes must hold
// every Service: the maps are re-read, ownership is rebuilt and whatever
// nobody asked for is removed. A full sync is forced when NeedsFull says so.
// When two Services claim one frontend, the one whose namespace/name sorts
// first gets it, whatever order changes arrive in.
func (r *Reconciler) Sync(changes iter.Seq[lb.Change], full bool) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil && !full {
		return Stats{}, fmt.Errorf("sync: a full sync is needed first (call with every Service)")
	}
	if full {
		st, err := r.lbmap.Dump(nil)
		if err != nil {
			return Stats{Full: true}, fmt.Errorf("read LB maps: %w", err)
		}
		bl, rl := r.lbmap.IDLimits()
		r.state = fromDump(st, r.lastFrontends, bl, rl)
		r.losers = nil
		r.byService = make(map[lb.ServiceName][]datapath.Frontend, max(len(r.byService), r.lastFrontends))
	}

	var seen func(*datapath.Changes)
	if r.touched != nil {
		seen = r.touched.add
	}
	w := newPipeline(r.lbmap, r.chunk, seen)

	stats := Stats{Full: full}
	for c := range changes {
		stats.Frontends += r.apply(c, w, &stats.Reoffer)
		w.maybeFlush()
	}
	if full {
		for f, fe := range r.state.fes {
			if fe.owner == (lb.ServiceName{}) {
				r.remove(f, w.ch) // in the maps, wanted by nobody
			}
		}
	}
	r.collectUnused(w.ch, full)
	r.state.freedRevNats = nil
	r.lastFrontends = len(r.state.fes)
	err := errors.Join(w.finish(), r.state.exhausted)
	stats.Upserts, stats.Deletes, stats.Backends = w.upserts, w.deletes, w.backends
	if err != nil {
		r.state = nil // the maps are in an unknown state: re-read them next time
		return stats, fmt.Errorf("write LB maps: %w", err)
	}
	return stats, nil
}

// apply diffs one Service's frontends into the pipeline's current batch
// and returns how many frontends it examined; Services that may now take
// a frontend it let go of are added to reoffer.
func (r *Reconciler) apply(c lb.Change, w *pipeline, reoffer *[]lb.ServiceName) int {
	old := r.byService[c.Name]
	wanted := make([]datapath.Frontend, 0, len(c.Entries))
	for i := range c.Entries {
		e := &c.Entries[i]
		if o := r.state.fes[e.Frontend].owner; o != (lb.ServiceName{}) && o != c.Name {
			if !nameLess(c.Name, o) {
				r.lost(e.Frontend, c.Name)
				r.log.Warn("Frontend already used by another Service; ignoring it here",
					logfields.Service, c.Name.String(), logfields.Frontend, e.Frontend.String(), logfields.Owner, o.String())
				continue
			}
			r.log.Warn("Frontend claimed by two Services; the first by name takes it",
				logfields.Service, c.Name.String(), logfields.Frontend, e.Frontend.String(), logfields.PreviousOwner, o.String())
			f := e.Frontend
			r.lost(f, o)
			r.byService[o] = slices.DeleteFunc(slices.Clone(r.byService[o]), func(x datapath.Frontend) bool { return x == f })
		}
		wanted = append(wanted, e.Frontend)
		r.upsert(c.Name, e, w.ch)
	}
	for _, f := range old {
		if !slices.Contains(wanted, f) {
			r.remove(f, w.ch)
			for n := range r.losers[f] {
				if n != c.Name {
					*reoffer = append(*reoffer, n)
				}
			}
			delete(r.losers, f)
		}
	}
	if len(wanted) == 0 && c.Entries == nil {
		delete(r.byService, c.Name)
	} else {
		r.byService[c.Name] = wanted
	}
	return len(wanted) + len(old)
}

// lost records that Service n claimed frontend f and did not get it.
func (r *Reconciler) lost(f datapath.Frontend, n lb.ServiceName) {
	if r.losers == nil {
		r.losers = map[datapath.Frontend]map[lb.ServiceName]struct{}{}
	}
	if r.losers[f] == nil {
		r.losers[f] = map[lb.ServiceName]struct{}{}
	}
	r.losers[f][n] = struct{}{}
}

func nameLess(a, b lb.ServiceName) bool {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)) < 0
}

// upsert adds to ch what frontend e needs and updates the bookkeeping as if
// ch will be applied (on failure the bookkeeping is dropped).
func (r *Reconciler) upsert(owner lb.ServiceName, e *lb.Entry, ch *datapath.Changes) {
	s := r.state
	f := e.Frontend
	have, present := s.fes[f]
	ids := make([]datapath.BackendID, 0, len(e.Backends))
	for _, b := range e.Backends {
		ids = append(ids, s.acquireBackend(b, ch))
	}
	revnat := s.revNatFor(f, have, ch)
	if s.exhausted != nil {
		return // out of ids: the frontend keeps what it has; the sync fails
	}
	s.releaseBackends(have.backends)
	var affine []datapath.BackendID
	if e.AffinityTimeout > 0 {
		affine = ids
	}
	s.syncAffinity(&have, revnat, affine, ch)
	if have.same(revnat, e, ids) {
		have.owner = owner
		s.fes[f] = have
		return // already right
	}
	svc := datapath.Service{Frontend: f, RevNat: revnat, Flags: e.Flags, Backends: ids, AffinityTimeout: e.AffinityTimeout,
		Algorithm: e.Algorithm, SourceRanges: e.SourceRanges}
	if e.Algorithm == datapath.AlgMaglev && len(ids) > 0 {
		table := lb.MaglevTable(e.Backends, r.maglevSize)
		svc.Maglev = make([]datapath.BackendID, len(table))
		for i, b := range table {
			svc.Maglev[i] = ids[b]
		}
	}
	ch.UpsertServices = append(ch.UpsertServices, datapath.ServiceUpdate{Service: svc, PrevSlots: have.slots})
	s.fes[f] = feState{owner: owner, revnat: revnat, flags: e.Flags, affinity: e.AffinityTimeout, alg: e.Algorithm,
		ranges: e.SourceRanges, complete: true, slots: len(ids), backends: ids}
	if present {
		s.entries -= 1 + have.slots
	}
	s.entries += 1 + len(ids)
}

// remove deletes frontend f from the maps, if it is there.
func (r *Reconciler) remove(f datapath.Frontend, ch *datapath.Changes) {
	s := r.state
	have, present := s.fes[f]
	if !present {
		return
	}
	ch.DeleteServices = append(ch.DeleteServices, datapath.ServiceDelete{Frontend: f, PrevSlots: have.slots})
	s.syncAffinity(&have, have.revnat, nil, ch)
	s.releaseBackends(have.backends)
	if have.complete && have.revnat != 0 {
		ch.DeleteRevNats = append(ch.DeleteRevNats, have.revnat)
		delete(s.revnats, have.revnat)
		if s.freedRevNats == nil {
			s.freedRevNats = map[datapath.RevNatID]struct{}{}
		}
		s.freedRevNats[have.revnat] = struct{}{}
	}
	delete(s.fes, f)
	s.entries -= 1 + have.slots
}

// collectUnused deletes backends no frontend references any more and, on
// a full sync, reverse-NAT entries no frontend uses.
func (r *Reconciler) collectUnused(ch *datapath.Changes, full bool) {
	s := r.state
	for id := range s.unused {
		ref, ok := s.backends[id]
		if !ok || ref.refs > 0 {
			continue
		}
		ch.DeleteBackends = append(ch.DeleteBackends, id)
		delete(s.backends, id)
		if s.backendByAddr[ref.k] == id {
			delete(s.backendByAddr, ref.k)
		}
	}
	s.unused = map[datapath.BackendID]struct{}{}
	slices.Sort(ch.DeleteBackends) // for stable logs and tests
	if !full {
		return
	}
	used := make(map[datapath.RevNatID]bool, len(s.fes))
	justified := map[datapath.AffinityMatch]bool{}
	for _, fe := range s.fes {
		if fe.complete {
			used[fe.revnat] = true
		}
		if fe.complete && fe.affinity > 0 {
			for _, id := range fe.backends {
				justified[datapath.AffinityMatch{Backend: id, RevNat: fe.revnat}] = true
			}
		}
	}
	for m := range s.affm {
		if !justified[m] {
			delete(s.affm, m)
			ch.DeleteAffinity = append(ch.DeleteAffinity, m)
		}
	}
	for id := range s.revnats {
		if !used[id] {
			ch.DeleteRevNats = append(ch.DeleteRevNats, id)
			delete(s.revnats, id)
		}
	}
	slices.Sort(ch.DeleteRevNats)
}

// Usage is how much of the maps the programmed state takes.
type Usage struct {
	Frontends      int
	ServiceEntries int // slot 0 plus backend slots, both families
	Backends       int
	RevNats        int
}

// Usage reports the state as of the last sync; zero before the first one
// and after a failure until the next full sync.
func (r *Reconciler) Usage() Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		return Usage{}
	}
	return Usage{Frontends: len(r.state.fes), ServiceEntries: r.state.entries, Backends: len(r.state.backends), RevNats: len(r.state.revnats)}
}

func newChanges(n int) *datapath.Changes {
	return &datapath.Changes{
		UpsertBackends: make([]datapath.BackendEntry, 0, 3*n),
		UpsertRevNats:  make([]datapath.RevNatEntry, 0, n),
		UpsertServices: make([]datapath.ServiceUpdate, 0, n),
	}
}
